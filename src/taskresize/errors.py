"""The root of every error a user can fix, and the one way hints at a close name are worded.

Each module raises its own subclass of :class:`TaskresizeError` (``ConfigError``, ``DataError``, ...) with a
message that names the file, key or value and what to do instead; the command line catches the root once and
prints that message as one line, without a traceback. The subclasses are also ``ValueError``\\ s, as they were
before the root existed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TaskresizeError(ValueError):
    """A mistake in what the user gave (a file, a setting, a name); the message says what to do instead."""


def close_matches(name: object, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``name`` (``difflib``'s ratio at least ``cutoff``), best first."""
    return difflib.get_close_matches(str(name), list(choices), n=n, cutoff=cutoff)


def suggestion(close: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``); ``""`` when ``close`` is empty."""
    close = list(close)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def did_you_mean(name: object, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """:func:`suggestion` of the choices close to ``name``."""
    return suggestion(close_matches(name, choices, n=n, cutoff=cutoff))


class DataError(TaskresizeError):
    """A data folder or table that cannot be used as given; the message names it and what is expected."""


class UserError(TaskresizeError):
    """A mistake in a command's arguments that the library does not check itself (e.g. two options that exclude
    each other)."""


class BackboneError(TaskresizeError):
    """An unknown backbone or weights that do not fit it; the message says what would be accepted."""
