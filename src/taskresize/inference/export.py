"""Exporting a resizer to ONNX, TorchScript or a ``torch.export`` program, checked against the eager model.

The exported model is a :class:`~taskresize.inference.pixels.PixelResizer` with its BatchNorms folded: float32 pixel
values
in [0, 255] ``(B, 3, H, W)`` -> float32 pixel values clipped to [0, 255] ``(B, 3, h, w)``, the normalisation
inside, no rounding (round to uint8 yourself). With ``normalized=True`` it is the bare resizer instead, on the
normalised images a model trained here expects (``(pixels - mean) / std``), unclipped. The output size is fixed;
the batch size is always free; with ``dynamic`` the input height and width are free too.

Every export is run before it is kept: on random inputs, in onnxruntime (ONNX) or in torch (the others), and
compared with the eager module. The largest absolute difference is reported, and a file whose difference exceeds
the tolerance is not written: a dynamic export that silently bakes in the example's size (as the ONNX export of
``area`` without antialias does) fails at the second input size.

What exports (torch 2.14, onnxruntime 1.32; the learnable resizer by its base resizer, DownsizeNet, MULLER):

==========================================  ======  ============  ===========  ===============  ===  =======
base resizer                                onnx    onnx dynamic  torchscript  torchscript dyn  pt2  pt2 dyn
==========================================  ======  ============  ===========  ===============  ===  =======
bilinear, bicubic (antialias or not)        yes     yes           yes          yes              yes  yes
area without antialias                      yes     no (1)        yes          yes              yes  yes
lanczos, area with antialias                yes     no            no           no               yes  no
DownsizeNet (2x2, 4x4), MULLER (bilinear)   yes     yes           yes          yes              yes  yes
==========================================  ======  ============  ===========  ===============  ===  =======

(1) it exports, but the ONNX file bakes in the example's pooling kernel: the check at a second input size fails
and the file is not written. ``lanczos`` and antialiased ``area`` compute Pillow's weight tables in Python from
the sizes, which only a fixed-size export can capture (as constants). TorchScript (``torch.jit.trace``) is
deprecated in torch 2.14 and warns on every trace and load; it is kept for LibTorch (C++) users, with those
warnings silenced here. In Python, prefer ``pt2`` (``torch.export.save``; ``torch.export.load(path).module()``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from taskresize.errors import TaskresizeError
from taskresize.fileio import atomic_path
from taskresize.inference.pixels import PixelResizer
from taskresize.sizes import Size

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
DEFAULT_TOLERANCE = 0.05  # in the output's units: grey levels for pixels
METADATA_FILE = "taskresize.json"  # the metadata's name in TorchScript and pt2 archives


class ExportError(TaskresizeError):
    """An export that failed or does not match the eager model; the message says which and what to try."""


class _Fixed(nn.Module):
    """``forward(x)`` of a resizer at a fixed output size, on pixels or on normalised images."""

    def __init__(self, model: PixelResizer, size: Size, normalized: bool) -> None:
        super().__init__()
        self.model, self.size, self.normalized = model, tuple(size), normalized

    def forward(self, x: Tensor) -> Tensor:
        return self.model.resizer(x, self.size) if self.normalized else self.model(x, self.size)


@dataclass
class ExportReport:
    """What :func:`export_resizer` wrote and how closely the file matches the eager module."""

    path: Path
    format: str
    input_size: Size
    output_size: Size
    dynamic: bool
    checks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # (input shape, max |difference|)
    seconds: float = 0.0

    @property
    def max_difference(self) -> float:
        return max(d for _, d in self.checks)


def check_shapes(input_size: Size, dynamic: bool) -> list[tuple[int, int, int, int]]:
    """Input shapes the export is checked at: another batch size than the example's, and with ``dynamic`` a second
    input size of another aspect ratio."""
    h, w = input_size
    shapes = [(1, 3, h, w)]
    if dynamic:
        shapes.append((3, 3, max(2, h - h // 4 + 1), w + w // 4 + 3))
    return shapes


def _inputs(shape: tuple[int, ...], normalized: bool, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    if normalized:
        return torch.randn(shape, generator=generator)
    return torch.rand(shape, generator=generator) * 255


@contextlib.contextmanager
def _quiet_jit():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


@contextlib.contextmanager
def _quiet_tracing():
    """Warnings of the tracers about what *might* not generalise: the parity check afterwards decides."""
    with warnings.catch_warnings():
        # the classic resizers' weight tables are cached per size; tracing calls through the cache, correctly
        warnings.filterwarnings("ignore", message=r"Dynamo detected a call to a `functools\.lru_cache`")
        # torch.tensor(size) on traced sizes (DownsizeNet's coordinates): the traced graph is checked below
        warnings.filterwarnings("ignore", message=r"To copy construct from a tensor", category=UserWarning)
        yield


def _export_onnx(module: nn.Module, example: Tensor, dynamic: bool, path: Path, metadata: dict[str, str]) -> None:
    import onnx
    from torch.export import Dim

    axes = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC} if dynamic else {0: Dim.DYNAMIC}
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            module, (example,), None, dynamo=True, dynamic_shapes=(axes,), input_names=["pixels"],
            output_names=["resized"], verbose=False,
        )  # fmt: skip
    model = program.model_proto
    names = {0: "batch", 2: "height", 3: "width"}
    for axis, name in names.items():
        dim = model.graph.input[0].type.tensor_type.shape.dim[axis]
        if dim.dim_param:
            dim.dim_param = name
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    if out_dims[0].dim_param:
        out_dims[0].dim_param = "batch"
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnx_providers(device: torch.device) -> list[str]:
    """ONNX Runtime's execution providers for ``device``: CUDA's first where the installed onnxruntime has it
    (the ``onnxruntime-gpu`` package), else the CPU's, saying so."""
    import onnxruntime as ort

    if device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        print("warning: this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu): ONNX Runtime "
              "runs on the CPU", file=sys.stderr)  # fmt: skip
    return ["CPUExecutionProvider"]


def run_onnx(path: Path, device: torch.device | str = "cpu") -> Callable[[Tensor], Tensor]:
    """An ONNX file as a function of tensors, run by ONNX Runtime with the providers for ``device``; the result
    comes back on the input's device. Raises ExportError when ONNX Runtime silently fell back to another
    provider than the first one asked for."""
    import onnxruntime as ort

    providers = onnx_providers(torch.device(device))
    session = ort.InferenceSession(str(path), providers=providers)
    if session.get_providers()[0] != providers[0]:
        raise ExportError(f"ONNX Runtime was asked for {providers[0]} but runs {session.get_providers()[0]}")
    name = session.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        out = session.run(None, {name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out)).to(x.device)

    return run


def _export_torchscript(module: nn.Module, example: Tensor, dynamic: bool, path: Path, metadata: dict) -> None:
    del dynamic  # a trace records the operations; whether they generalise to other sizes is checked afterwards
    with _quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(module, (example,))
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def _run_torchscript(path: Path, device: torch.device | str = "cpu") -> Callable[[Tensor], Tensor]:
    with _quiet_jit():
        loaded = torch.jit.load(str(path), map_location=device)
    return loaded


def _export_pt2(module: nn.Module, example: Tensor, dynamic: bool, path: Path, metadata: dict) -> None:
    from torch.export import Dim

    axes = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC} if dynamic else {0: Dim.DYNAMIC}
    program = torch.export.export(module, (example,), dynamic_shapes=(axes,))
    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(metadata)})


def _run_pt2(path: Path, device: torch.device | str = "cpu") -> Callable[[Tensor], Tensor]:
    return torch.export.load(str(path)).module().to(device)


_EXPORTERS = {
    "onnx": (_export_onnx, run_onnx),
    "torchscript": (_export_torchscript, _run_torchscript),
    "pt2": (_export_pt2, _run_pt2),
}


def export_resizer(
    model: PixelResizer,
    path: str | os.PathLike,
    fmt: str,
    input_size: Size,
    output_size: Size | None = None,
    *,
    dynamic: bool = False,
    normalized: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    metadata: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> ExportReport:
    """Export ``model``, run the file on random inputs, and keep it only if it matches the eager module.

    ONNX and TorchScript files are made from a CPU copy of ``model`` (they are moved to a device when loaded); a
    ``pt2`` program is made on ``device`` itself, because ``torch.export`` keeps the constants it lifts (the
    classic resizers' weight blocks, DownsizeNet's neighbour indices) on the device it traced on, and a program
    moved afterwards still reads them there. The check runs the file on ``device`` (for ONNX: with CUDA's
    execution provider on ``cuda``) against the eager module on the CPU.

    Args:
        model: the resizer on pixels (its learned part fused, see :class:`PixelResizer`).
        path: the file to write.
        fmt: ``onnx``, ``torchscript`` or ``pt2``.
        input_size: the example's ``(H, W)``: the only input size unless ``dynamic``.
        output_size: the fixed output ``(h, w)`` (default the resizer's).
        dynamic: leave the input height and width free (the batch size always is).
        normalized: export the bare resizer on normalised images instead of the pixel pipeline.
        tolerance: the largest absolute difference from the eager module accepted.
        metadata: JSON-serialisable facts stored in the file (ONNX metadata_props; ``taskresize.json`` in the
            TorchScript and pt2 archives).
        device: where the exported file is run for the check; for ``pt2`` also where it is made (and runs).

    Raises:
        ExportError: the exporter failed, or the exported model differs from the eager one by more than
            ``tolerance``; nothing is written then.
    """
    if fmt not in _EXPORTERS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(_EXPORTERS)}")
    started = time.perf_counter()
    path = Path(path)
    output_size = tuple(output_size or model.output_size)
    if model.mean.device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    module = _Fixed(model.eval(), output_size, normalized).eval()
    device = torch.device(device)
    traced = module  # what the exporter sees: for pt2 on the device the program will run on
    if fmt == "pt2" and device.type != "cpu":
        traced = _Fixed(copy.deepcopy(model).to(device).eval(), output_size, normalized).eval()
    export, load = _EXPORTERS[fmt]
    metadata = {key: value if isinstance(value, str) else json.dumps(value) for key, value in (metadata or {}).items()}
    # batch 2: a batch of 1 would be specialised
    example = _inputs((2, 3, *input_size), normalized, seed=0).to(traced.model.mean.device)
    with torch.no_grad():
        traced(example)  # builds (and caches) the classic resizers' weight tables for this size
    report = ExportReport(path, fmt, tuple(input_size), output_size, dynamic)
    with atomic_path(path, sync=False) as tmp:  # written only if every check below passes
        try:
            with _quiet_tracing():
                export(traced, example, dynamic, tmp, metadata)
            run = load(tmp, device)
        except Exception as error:  # the exporters raise many kinds; the first line says what failed
            first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
            hint = (
                " Base resizers lanczos and antialiased area build their weight tables from concrete sizes: they"
                " export to onnx and pt2 without --dynamic, not to torchscript; bilinear and bicubic export to all."
            )
            raise ExportError(f"{fmt} export failed: {type(error).__name__}: {first[:300]}.{hint}") from None
        for i, shape in enumerate(check_shapes(tuple(input_size), dynamic)):
            x = _inputs(shape, normalized, seed=i + 1)
            with torch.no_grad():
                expected = module(x)
                try:
                    got = run(x.to(device)).cpu()
                except Exception as error:
                    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
                    raise ExportError(f"the exported {fmt} model fails on input {shape}: {first[:300]}") from None
            hint = ": the export does not generalise to other input sizes, drop --dynamic" if i > 0 else ""
            if tuple(got.shape) != tuple(expected.shape):
                raise ExportError(
                    f"the exported {fmt} model gives shape {tuple(got.shape)} for input {shape}, the eager model "
                    f"{tuple(expected.shape)}; not written{hint}"
                )
            difference = float((got.float() - expected).abs().max())
            report.checks.append((shape, difference))
            if not difference <= tolerance:
                raise ExportError(
                    f"the exported {fmt} model differs from the eager model by {difference:.4g} (more than "
                    f"{tolerance:g}) on input {shape}; not written{hint}"
                )
    report.seconds = time.perf_counter() - started
    return report
