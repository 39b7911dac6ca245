"""The installed package's version (``0+unknown`` in a source tree that is not installed)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taskresize")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
