"""Atomic file writes: a temporary file in the same folder, then a rename. A crash leaves the old file or the new."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


class UnsafeFileError(ValueError):
    """A pickled file that weights-only loading refuses, or that is not a PyTorch file at all."""


def torch_load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only, so a crafted file cannot
    run code. Refusals become :class:`UnsafeFileError` with a one-line reason (torch's own message is a page)."""
    import re

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it is about to refuse
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
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
