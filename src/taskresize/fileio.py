"""Atomic file writes: a temporary file in the same folder, then a rename. A crash leaves the old file or the new."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from taskresize.errors import TaskresizeError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, sync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` (with its suffix) for a writer that takes a file name; when the block
    ends without an error the file is synced (``sync``) and renamed to ``path``, otherwise removed. So ``path``
    holds the old file or the new one whole, whatever happens while writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"))
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies, as to open(path, "w")
    try:
        yield Path(tmp)
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write that appears at ``path`` whole or not at all (see :func:`atomic_path`)."""
    with atomic_path(path, sync=sync) as tmp, open(tmp, "wb") as f:
        yield f


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync: bool = True) -> Path:
    with atomic_open(path, sync=sync) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


class UnsafeFileError(TaskresizeError):
    """A pickled file that weights-only loading refuses, or that is not a PyTorch file at all."""


class DamagedFileError(UnsafeFileError):
    """A PyTorch file that is cut short or corrupted (an interrupted write or copy), not one refused as unsafe."""


def _damage(path: str | os.PathLike, error: Exception) -> str | None:
    """Why ``path`` looks damaged rather than unsafe (empty, or a zip archive torch or zipfile cannot read whole)."""
    import zipfile

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if size == 0:
        return "the file is empty"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive; anything else is not a damaged one of them
        return None
    if "PytorchStreamReader" in str(error) or isinstance(error, EOFError) or not zipfile.is_zipfile(path):
        return f"its zip archive of {size} bytes is cut short or corrupted"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return f"its zip archive of {size} bytes cannot be read"
    return f"{bad} in its zip archive fails its checksum" if bad else None


def torch_load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only, so a crafted file cannot
    run code. Refusals become :class:`UnsafeFileError` with a one-line reason (torch's own message is a page), and a
    file cut short or corrupted :class:`DamagedFileError`."""
    import re

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it is about to refuse
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        damage = _damage(path, error)
        if damage:
            raise DamagedFileError(
                f"{path} is damaged or incomplete: {damage} (an interrupted write or copy?)"
            ) from None
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            reason = f"it holds a Python object ({found.group(1)}) that weights-only loading refuses to build"
        elif "Weights only load failed" in text:
            reason = "weights-only loading refused it"
        else:
            reason = (
                f"not a PyTorch file ({type(error).__name__}: {text.strip().splitlines()[0] if text.strip() else ''})"
            )
        raise UnsafeFileError(f"{path}: {reason}; only tensors and plain values are accepted") from None
