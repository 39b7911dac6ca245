"""Shareable resizer files: safetensors weights with the resizer's JSON config in the header. No pickle."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from taskresize.data.normalization import Normalization
from taskresize.errors import TaskresizeError
from taskresize.fileio import atomic_write_bytes
from taskresize.hub import hub_file, is_hub_name
from taskresize.resizers import Resizer, create_resizer
from taskresize.runs import RunFolder
from taskresize.version import __version__

FORMAT_VERSION = 1
METADATA_KEY = "taskresize"
RESIZER_FILENAME = RunFolder.RESIZER


class ResizerFileError(TaskresizeError):
    """A file that is not a taskresize resizer; the message names the file and what was expected."""


@dataclass
class Provenance:
    """What a resizer file records about the run that trained it (all optional: a file may record nothing).

    Stored as one flat JSON mapping: these fields, then the run's final metrics (``top1_error``, ``flops_total``,
    ...) beside them, and any keys a newer version wrote kept in ``extra``.
    """

    task: str | None = None
    backbone: str | None = None
    data: str | None = None
    in_size: list[int] | None = None  # the resizer's input size in training (the loader pre-resized to it)
    out_size: list[int] | None = None
    pre_resize: str | None = None  # the loader's classic pre-resize (None: not recorded)
    pre_resize_antialias: bool = True
    normalization: Normalization | None = None  # what the resizer's inputs were normalised with
    run: str | None = None
    date: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("metrics", "extra")}
        values = {k: v for k, v in values.items() if v is not None}
        if self.normalization is not None:
            values["normalization"] = self.normalization.to_dict()
        return {**self.metrics, **values, **self.extra}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Provenance:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"metrics", "extra"}
        known = {k: values.pop(k) for k in list(values) if k in names}
        if known.get("normalization"):
            known["normalization"] = Normalization.from_dict(known["normalization"])
        numbers = [k for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        metrics = {k: values.pop(k) for k in numbers}
        return cls(**known, metrics=metrics, extra=values)


def save_resizer(
    module: Resizer, path: str | os.PathLike, provenance: Provenance | dict[str, Any] | None = None
) -> Path:
    """Write ``module``'s weights and config to a safetensors file, atomically.

    Args:
        module: a registered resizer (anything :func:`create_resizer` can rebuild).
        path: destination, conventionally ``*.safetensors``.
        provenance: what the training run was (backbone, data, sizes, metrics, ...), a :class:`Provenance` or a
            JSON-serialisable mapping.

    Returns:
        The path written.
    """
    path = Path(path)
    if isinstance(provenance, Provenance):
        provenance = provenance.to_dict()
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
    return atomic_write_bytes(path, save(tensors, metadata={METADATA_KEY: json.dumps(header)}))


def resolve_resizer_path(path: str | os.PathLike) -> Path:
    """A resizer file, the ``resizer.safetensors`` inside a run folder, or a hub repository's
    (``hf-hub:ORG/NAME[@REVISION]``, through huggingface_hub's cache: :func:`taskresize.hub.hub_file`)."""
    if is_hub_name(path):
        return hub_file(str(path))
    path = Path(path)
    if path.is_dir():
        candidate = RunFolder(path).resizer_file
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
    """Rebuild a resizer from a file written by :func:`save_resizer`, a run folder, or a hub name
    (``hf-hub:ORG/NAME[@REVISION]``, read through huggingface_hub's cache; ``HF_HUB_OFFLINE=1`` reads only the
    cache), in eval mode.

    Only safetensors is read: no pickle, so a file cannot run code when loaded.
    """
    path = resolve_resizer_path(path)
    header = read_resizer_header(path)
    module = create_resizer(header["name"], **header["config"])
    state = {}
    with safe_open(str(path), framework="pt", device=str(map_location)) as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            state[key] = f.get_tensor(key)
    damaged = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if damaged:  # would turn every image into NaN, written as black
        raise ResizerFileError(
            f"{path}: {len(damaged)} of its weight tensors hold NaN or infinite values ({', '.join(damaged[:3])}"
            f"{', ...' if len(damaged) > 3 else ''}): the file is damaged or its run diverged; use another resizer file"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ResizerFileError(f"{path}: the weights do not fit the saved config: {error}") from None
    return module.to(map_location).eval()
