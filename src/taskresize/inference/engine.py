"""What runs a resizer on batches of float pixels: eager PyTorch, ``torch.compile`` or ONNX Runtime."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from taskresize.inference.export import export_resizer, run_onnx
from taskresize.inference.pixels import PixelResizer
from taskresize.sizes import Size, to_size

ENGINES = ("torch", "compile", "onnxruntime")


class Engine:
    """What runs a :class:`PixelResizer` on float pixels: eager PyTorch, ``torch.compile`` or ONNX Runtime.

    ``compile`` compiles once per input and output shape (seconds to tens of seconds); ``onnxruntime`` exports the
    resizer per input and output shape with :func:`taskresize.inference.export.export_resizer`, which checks the file
    against eager PyTorch before it is used. Both pay off on folders of many images of one size; the results equal
    eager PyTorch's up to float rounding (at most one grey level after rounding to uint8).
    """

    def __init__(self, pixels: PixelResizer, kind: str = "torch") -> None:
        if kind not in ENGINES:
            raise ValueError(f"engine {kind!r} is not one of {', '.join(ENGINES)}")
        self.pixels, self.kind = pixels, kind
        self._compiled = torch.compile(pixels) if kind == "compile" else None
        self._sessions: dict[tuple[Size, Size], Callable[[Tensor], Tensor]] = {}

    def __call__(self, pixels: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        if self.kind == "torch":
            return self.pixels(pixels, size)
        out = tuple(to_size(size)) if size is not None else tuple(self.pixels.output_size)
        if self._compiled is not None:
            return self._compiled(pixels, out)
        key = (tuple(pixels.shape[-2:]), out)
        if key not in self._sessions:
            self._sessions[key] = self._onnx_session(*key)
        return self._sessions[key](pixels.contiguous())

    def _onnx_session(self, in_size: Size, out: Size) -> Callable[[Tensor], Tensor]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resizer.onnx"
            export_resizer(self.pixels, path, "onnx", in_size, out)
            return run_onnx(path, self.pixels.mean.device)  # the session holds the model; the file can go
