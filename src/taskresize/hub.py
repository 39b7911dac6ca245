"""Resizer files on the Hugging Face Hub: ``hf-hub:ORG/NAME[@REVISION]`` names, read through huggingface_hub's cache.

A name resolves to the repository's ``resizer.safetensors``, downloaded into (or found in) huggingface_hub's own
cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``. With ``HF_HUB_OFFLINE=1`` only
the cache is read, and a file that is not there is one error naming the cache. Uploading is
:func:`taskresize.publish.push_resizer` (``taskresize push``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from taskresize.errors import TaskresizeError

PREFIX = "hf-hub:"
FILENAME = "resizer.safetensors"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(TaskresizeError):
    """A hub name that is malformed, or a file that is neither in the cache nor downloadable."""


def is_hub_name(value: object) -> bool:
    """Whether ``value`` is a string that starts with ``hf-hub:``."""
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_hub_name(name: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/NAME[@REVISION]`` (the prefix optional) as ``(repo_id, revision or None)``.

    Raises:
        HubError: not of the form ``ORG/NAME``.
    """
    repo, _, revision = name.removeprefix(PREFIX).partition("@")
    if not _REPO.match(repo) or (revision == "" and "@" in name):
        raise HubError(f"{name!r} is not a hub name: write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return repo, revision or None


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` (``ORG/NAME``, no prefix, no revision), checked."""
    if not _REPO.match(repo_id):
        raise HubError(f"{repo_id!r} is not a hub repository: write ORG/NAME, e.g. my-org/learnable-imagenette")
    return repo_id


def offline() -> bool:
    """Hugging Face's offline switch (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``), read now or at its import."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def hub_cache() -> str:
    """huggingface_hub's cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default (read
    now, not at huggingface_hub's import, so a changed environment counts)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return constants.HF_HUB_CACHE


def hub_file(name: str, filename: str = FILENAME) -> Path:
    """The local path of ``filename`` in the hub repository ``name`` (``hf-hub:ORG/NAME[@REVISION]``).

    Downloaded into huggingface_hub's cache unless it is there already; offline (``HF_HUB_OFFLINE=1``), read from
    the cache only.

    Raises:
        HubError: a malformed name, or a file neither cached nor downloadable (one line naming the cache).
    """
    repo_id, revision = parse_hub_name(name)
    cache = hub_cache()
    where = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    if offline():  # huggingface_hub reads its switch at import: look in the cache directly
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache, revision=revision)
        if isinstance(found, str):
            return Path(found)
        raise HubError(
            f"{PREFIX}{repo_id}: {filename} is not in the cache {where} and the hub is offline (HF_HUB_OFFLINE=1); "
            "download it once with network access (same HF_HOME / HF_HUB_CACHE), or pass a local resizer file"
        )
    from huggingface_hub import hf_hub_download

    from taskresize.version import __version__

    try:
        return Path(
            hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=cache,
                library_name="taskresize", library_version=__version__,
            )
        )  # fmt: skip
    except Exception as error:  # network, hub and file errors alike (huggingface_hub's have no common root)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HubError(
            f"{PREFIX}{repo_id}: {filename} is not in the cache {where} and the download failed ({reason}); check "
            "the name and your network, or pass a local resizer file"
        ) from None
