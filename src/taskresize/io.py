"""Shareable resizer files: safetensors weights with the resizer's JSON config in the header. No pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .resizers import Resizer, create_resizer

FORMAT_VERSION = 1
METADATA_KEY = "taskresize"
RESIZER_FILENAME = "resizer.safetensors"


class ResizerFileError(ValueError):
    """A file that is not a taskresize resizer; the message names the file and what was expected."""


def save_resizer(module: Resizer, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``module``'s weights and config to a safetensors file, atomically.

    Args:
        module: a registered resizer (anything :func:`create_resizer` can rebuild).
        path: destination, conventionally ``*.safetensors``.
        provenance: JSON-serialisable facts stored with the weights (backbone, data, sizes, metrics, ...).

    Returns:
        The path written.
    """
    from . import __version__

    path = Path(path)
    header = {
        "format": FORMAT_VERSION,
        "name": module.resizer_name,
        "config": module.config(),
        "taskresize_version": __version__,
        "provenance": provenance or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    expected = set(create_resizer(module.resizer_name, **module.config()).state_dict())
    if set(tensors) != expected:
        raise ValueError(
            f"{module.resizer_name} has parameters its config does not rebuild (a fused copy?): save the resizer "
            "before fuse(), and fuse after loading"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(header)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def resolve_resizer_path(path: str | os.PathLike) -> Path:
    """A resizer file, or the ``resizer.safetensors`` inside a run folder."""
    path = Path(path)
    if path.is_dir():
        candidate = path / RESIZER_FILENAME
        if not candidate.is_file():
            raise ResizerFileError(
                f"{path} is a folder without {RESIZER_FILENAME}: pass a .safetensors resizer file or the folder "
                "of a run that trained a learned resizer"
            )
        return candidate
    if not path.is_file():
        raise ResizerFileError(f"{path} does not exist: pass a .safetensors resizer file or a run folder")
    return path


def read_resizer_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header saved with a resizer: ``name``, ``config``, ``taskresize_version``, ``provenance``."""
    path = resolve_resizer_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ResizerFileError(
            f"{path} is not a safetensors file ({error}); resizers are saved by save_resizer"
        ) from None
    if METADATA_KEY not in metadata:
        raise ResizerFileError(f"{path} is a safetensors file without a taskresize header; it holds no resizer config")
    try:
        header = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ResizerFileError(f"{path}: the taskresize header is not valid JSON ({error})") from None
    if header.get("format") != FORMAT_VERSION or "name" not in header or "config" not in header:
        raise ResizerFileError(f"{path}: unsupported taskresize header (format {header.get('format')!r})")
    return header


def load_resizer(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Resizer:
    """Rebuild a resizer from a file written by :func:`save_resizer` (or a run folder), in eval mode.

    Only safetensors is read: no pickle, so a file cannot run code when loaded.
    """
    path = resolve_resizer_path(path)
    header = read_resizer_header(path)
    module = create_resizer(header["name"], **header["config"])
    state = {}
    with safe_open(str(path), framework="pt", device=str(map_location)) as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            state[key] = f.get_tensor(key)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ResizerFileError(f"{path}: the weights do not fit the saved config: {error}") from None
    return module.to(map_location).eval()
