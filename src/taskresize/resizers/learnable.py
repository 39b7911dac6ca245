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
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from taskresize.resizers.base import INITS, Resizer
from taskresize.resizers.classic import METHODS, resize
from taskresize.resizers.fuse import fused_copy
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
        return y + self.body(y)


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
        checkpoint: activation checkpointing of the stem's two input-resolution convolutions in training: their
            outputs are recomputed in the backward pass instead of stored, which cuts the training memory at large
            inputs for one more forward pass of those convolutions. The output is the same either way.
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

    def base_resize(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """The classic resize of ``x`` to ``size`` that the skip and the feature resize use."""
        return resize(x, size, self.interpolation, self.antialias)

    def stem_stride(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> int:
        """The stride of the stem's 7x7 convolution: 1, the paper's (see ``learnable-strided``)."""
        return 1

    def stem_convolutions(self, x: Tensor, stride: int) -> Tensor:
        """``LReLU(conv1x1(LReLU(conv7x7(x))))`` at the input resolution, the 7x7 convolution at ``stride``."""
        first = self.stem[0]
        h = F.conv2d(x, first.weight, first.bias, stride, first.padding)
        return self.stem[3](self.stem[2](self.stem[1](h)))

    def features(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``z = base_resize(BN(stem_convolutions(x)), size)``: the stem's features, computed at the input resolution
        (or a stride of it), resized to ``size``."""
        stride = self.stem_stride(tuple(x.shape[-2:]), size)
        if self.checkpoint and self.training and torch.is_grad_enabled():
            h = recompute_in_backward(self.stem_convolutions, x, stride, use_reentrant=False)
        else:
            h = self.stem_convolutions(x, stride)
        return self.base_resize(self.stem[4](h), size)

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize ``x`` ``(B, C, H, W)`` to ``(B, C, h, w)``, ``(h, w) = size`` or ``output_size``."""
        size = self.target_size(size)
        z = self.features(x, size)
        y = self.merge(self.blocks(z)) + z
        return self.head(y) + self.base_resize(x, size)

    def fuse(self) -> LearnableResizer:
        """The inference form (see :meth:`Resizer.fuse`): every BatchNorm folded; the stem's, an affine map once
        folded, applied after the feature resize, on the output's pixels instead of the input's (the two commute,
        as the weights of every classic resize sum to one; measured by ``benchmarks/alternatives.py --only
        inference_form``). Equal to the eval-mode original up to float rounding."""
        fused = fused_copy(self)
        fused.__class__ = _inference_form(type(self))
        return fused


class _AffineAfterResize:
    """The inference form's feature map: the stem's affine map (a folded eval-mode BatchNorm) after the resize."""

    def features(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        stride = self.stem_stride(tuple(x.shape[-2:]), size)
        return self.stem[4](self.base_resize(self.stem_convolutions(x, stride), size))


@functools.cache
def _inference_form(cls: type[LearnableResizer]) -> type[LearnableResizer]:
    """``cls`` with the inference form's feature map (one class per resizer class, so ``learnable-strided`` keeps its
    stride)."""
    return type(f"Fused{cls.__name__}", (_AffineAfterResize, cls), {"__doc__": f"Inference form of {cls.__name__}."})
