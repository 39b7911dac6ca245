"""The learnable resizer of Talebi & Milanfar, *Learning to Resize Images for Computer Vision Tasks* (ICCV 2021).

Figure 3 of the paper, for an input ``x`` and a target size ``(h, w)``::

    r0 = base_resize(x, (h, w))                                       # skip: the classic resize
    f  = BN(LReLU(conv1x1(LReLU(conv7x7(x)))))                        # at the input resolution
    z  = base_resize(f, (h, w))                                       # feature resize
    y  = z;  repeat r times:  y = y + BN(conv3x3(LReLU(BN(conv3x3(y)))))   # chained residual blocks
    y  = BN(conv3x3(y)) + z
    out = conv7x7(y) + r0

LeakyReLU slopes are 0.2, 3x3 convolutions in and after the residual blocks have no bias. Only convolution
weights count towards Table 2's parameter numbers: ``294 n + 10 n^2 + 18 r n^2`` (see ``count_conv_weights``).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from taskresize.hardware import retain_freed_memory_on_cpu
from taskresize.resizers.base import INITS, Resizer
from taskresize.resizers.batchnorm import moments, normalize_resized
from taskresize.resizers.classic import METHODS, resize
from taskresize.resizers.cpu_inference import (
    banded_pair,
    by_image,
    conv,
    fast_path,
    image_chunks,
    resize_by_depthwise,
    run,
)
from taskresize.resizers.registry import OneOf, OutputSize, Range, register_resizer


def _lrelu() -> nn.LeakyReLU:
    # in place: each follows a convolution or a BatchNorm, whose backward does not read its output, and at the
    # input resolution a fresh 16-channel map is as costly to allocate as to compute
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualBlock(nn.Module):
    """``y + BN(conv3x3(LReLU(BN(conv3x3(y)))))``, convolutions without bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            _lrelu(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, y: Tensor) -> Tensor:
        return run(self.body, y, add=y)


@register_resizer("learnable")
class LearnableResizer(Resizer):
    """Talebi–Milanfar learnable resizer: a classic resize plus a learned residual.

    Args:
        output_size: default output ``(h, w)`` (or one int); ``forward(x, size)`` may override it per call.
        n: number of filters of the intermediate convolutions (paper: 16).
        r: number of residual blocks (paper: 1).
        interpolation: the classic resizer used for the skip and the feature resize (paper: bilinear).
        antialias: Pillow-style antialiasing in that resizer. The paper used TensorFlow's default, no antialias.
        init: ``"paper"`` (PyTorch's default random init, as the paper) or ``"identity"`` (the last convolution
            zero-initialised, so the resizer starts as exactly the classic resize).
        in_channels: image channels.
        checkpoint: activation checkpointing of the input-resolution convolutions in training: their outputs
            are recomputed in the backward pass instead of stored, chunk by chunk (image by image at large
            inputs), which cuts the training memory at large inputs (docs/results.md, Peak memory) for one more
            forward pass of the stem.
    """

    def __init__(
        self,
        output_size: OutputSize = (224, 224),
        n: Annotated[int, Range(ge=1)] = 16,
        r: Annotated[int, Range(ge=0)] = 1,
        interpolation: Annotated[str, OneOf(METHODS)] = "bilinear",
        antialias: bool = False,
        init: Annotated[str, OneOf(INITS)] = "paper",
        in_channels: Annotated[int, Range(ge=1)] = 3,
        checkpoint: bool = False,
    ) -> None:
        super().__init__(output_size)
        if interpolation not in METHODS:
            raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(METHODS)}")
        if init not in INITS:
            raise ValueError(f"init {init!r} is not one of {', '.join(INITS)}")
        if n < 1 or r < 0 or in_channels < 1:
            raise ValueError(f"need n >= 1, r >= 0 and in_channels >= 1, got n={n}, r={r}, in_channels={in_channels}")
        self.n, self.r, self.interpolation, self.antialias, self.init, self.in_channels = (
            n, r, interpolation, antialias, init, in_channels,
        )  # fmt: skip
        self.checkpoint = checkpoint
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, n, 7, padding=3),
            _lrelu(),
            nn.Conv2d(n, n, 1),
            _lrelu(),
            nn.BatchNorm2d(n),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(n) for _ in range(r)))
        self.merge = nn.Sequential(nn.Conv2d(n, n, 3, padding=1, bias=False), nn.BatchNorm2d(n))
        self.head = nn.Conv2d(n, in_channels, 7, padding=3)
        if init == "identity":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def config(self) -> dict[str, Any]:
        return {
            "output_size": list(self.output_size),
            "n": self.n,
            "r": self.r,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "init": self.init,
            "in_channels": self.in_channels,
            "checkpoint": self.checkpoint,
        }

    def base_resize(self, x: Tensor, size: tuple[int, int], affine: nn.Module | None = None) -> Tensor:
        """The classic resize of ``x`` to ``size``, then ``affine`` (an eval-mode BatchNorm) where given: on the fast
        path, one depthwise convolution where the resize allows (see ``cpu_inference.resize_by_depthwise``)."""
        y = resize_by_depthwise(x, size, self.interpolation, self.antialias, affine)
        if y is not None:
            return y
        y = resize(x, size, self.interpolation, self.antialias)
        return y if affine is None else affine(y)

    def stem_stride(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> int:
        """The stride of the stem's 7x7 convolution: 1, the paper's (see ``learnable-strided``)."""
        return 1

    def _stem_convolutions(self, x: Tensor, stride: int) -> Tensor:
        return run(self.stem[2:4], conv(x, self.stem[0], activation=self.stem[1], stride=stride))

    def features(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``z``: the stem's features, computed at the input resolution (or a stride of it), resized to ``size``."""
        stride = self.stem_stride(tuple(x.shape[-2:]), size)
        if not self.training:
            # the BatchNorm, an affine map in eval mode, after the resize, on fewer pixels: they commute, as the
            # weights of every classic resize sum to one (under autocast it also spares a float32 copy of the map)
            h = banded_pair(x, self.stem[0], self.stem[1], self.stem[2], self.stem[3], stride, self)
            h = self._stem_convolutions(x, stride) if h is None else h
            return self.base_resize(h, size, affine=self.stem[4])
        bn = self.stem[4]
        if self.training and type(bn) is nn.BatchNorm2d:  # not SyncBatchNorm, whose statistics span processes
            # chunk by chunk (image by image at large inputs), the BatchNorm after the resize (see batchnorm.py):
            # no full-resolution map of the whole batch is held; with checkpoint, not even one chunk's
            stem = functools.partial(self._stem_resized, stride=stride, size=size)
            if self.checkpoint and torch.is_grad_enabled():
                stem = functools.partial(recompute_in_backward, stem, use_reentrant=False)
            return normalize_resized(bn, [stem(chunk) for chunk in image_chunks(x, self.n)])
        return self.base_resize(bn(self._stem_convolutions(x, stride)), size)

    def _stem_resized(self, x: Tensor, stride: int, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor, int]:
        h = self._stem_convolutions(x, stride)
        return (self.base_resize(h, size), *moments(h), h.numel() // h.shape[1])

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize ``x`` ``(B, C, H, W)`` to ``(B, C, h, w)``, ``(h, w) = size`` or ``output_size``."""
        size = self.target_size(size)
        retain_freed_memory_on_cpu(x)
        if fast_path(x) and not self.training:  # image by image (see cpu_inference)
            return by_image(lambda chunk: self._resize(chunk, size), x, self.n, torch.channels_last)
        return self._resize(x, size)

    def _resize(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        skip = self.base_resize(x, size)
        z = self.features(x, size)
        y = run(self.merge, self.blocks(z), add=z)
        return conv(y, self.head, add=skip)
