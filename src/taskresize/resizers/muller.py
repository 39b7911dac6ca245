"""MULLER, the multilayer Laplacian resizer of Tu, Milanfar & Talebi (ICCV 2023).

A classic resize plus learned, tanh-squashed multiples of the image's band-pass (Laplacian) layers::

    y = base_resize(x)
    for l in 1..L:
        b = gauss(x)                                   # separable Gaussian, kernel 5, sigma 1
        y = y + tanh(w_l * base_resize(b - x) + beta_l)
        x = b

Only ``2 L`` scalars are learned. They start at zero, so an untrained MULLER is exactly the base resize.
Borders are padded by replicating edge pixels (the TensorFlow reference pads with zeros, which darkens the
band-pass layers along the borders).

Under autocast the whole forward pass runs in float32 (a float16 / bfloat16 input is cast to float32, the output
is float32): a band ``blur(x) - x`` is a small difference of two close images, and with the blur in bf16 it
cancelled to 7-9 % error. MULLER is a few separable filters, so float32 costs little.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskresize.flops import counted_by_formula
from taskresize.resizers.base import Resizer
from taskresize.resizers.classic import METHODS, in_float32, resize
from taskresize.resizers.registry import Odd, OneOf, OutputSize, Range, register_resizer


def gaussian_kernel1d(kernel_size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian taps ``(kernel_size,)``, float64."""
    radius = kernel_size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


@register_resizer("muller")
class MullerResizer(Resizer):
    """Multilayer Laplacian resizer: ``2 * layers`` learned scalars on top of a classic resize.

    Args:
        output_size: default output ``(h, w)`` (or one int); ``forward(x, size)`` may override it per call.
        layers: number of Laplacian layers ``L`` (paper default 2).
        kernel_size: Gaussian kernel size (odd).
        sigma: Gaussian standard deviation.
        interpolation: the classic base resizer.
        antialias: Pillow-style antialiasing in the base resizer (the reference uses TensorFlow's default, off).
    """

    def __init__(
        self,
        output_size: OutputSize = (224, 224),
        layers: Annotated[int, Range(ge=1)] = 2,
        kernel_size: Annotated[int, Range(ge=1), Odd()] = 5,
        sigma: Annotated[float, Range(gt=0)] = 1.0,
        interpolation: Annotated[str, OneOf(METHODS)] = "bilinear",
        antialias: bool = False,
    ) -> None:
        super().__init__(output_size)
        if interpolation not in METHODS:
            raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(METHODS)}")
        if layers < 1 or kernel_size < 1 or kernel_size % 2 == 0 or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(
                f"need layers >= 1, an odd kernel_size and sigma > 0, got {layers}, {kernel_size}, {sigma}"
            )
        self.layers, self.kernel_size, self.sigma, self.interpolation, self.antialias = (
            layers, kernel_size, float(sigma), interpolation, antialias,
        )  # fmt: skip
        self.weight = nn.Parameter(torch.zeros(layers))
        self.bias = nn.Parameter(torch.zeros(layers))
        self.register_buffer("taps", gaussian_kernel1d(kernel_size, sigma).float(), persistent=False)
        self.tap_values = self.taps.tolist()  # the blur's multipliers, read without a device sync or a graph break

    def blur(self, x: Tensor) -> Tensor:
        """Separable Gaussian blur of ``x`` ``(B, C, H, W)``, edge pixels replicated.

        Each pass is a weighted sum of shifted views of the padded, contiguous image: at 448 x 448 on a CPU that
        is faster than the depthwise convolutions of a channels-last image, and far faster than those of a
        contiguous one (``benchmarks/alternatives.py``): oneDNN spreads a convolution's vector lanes over
        channels, and there are three.
        """
        pad, (h, w) = self.kernel_size // 2, x.shape[-2:]
        taps = self.tap_values
        # counted as the two 1-D filters they are: kernel_size multiply-adds per value and pass
        with counted_by_formula(lambda: 2 * 2 * self.kernel_size * x.numel()):
            padded = F.pad(x.contiguous(), (pad, pad, pad, pad), mode="replicate")
            return _weighted_shifts(_weighted_shifts(padded, taps, -1, w), taps, -2, h)

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize ``x`` ``(B, C, H, W)`` to ``(B, C, h, w)``, ``(h, w) = size`` or ``output_size``.

        Under autocast, computed in float32 (see the module docstring)."""
        size = self.target_size(size)
        return in_float32(lambda t: self._forward(t, size), x)

    def _forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        # base_resize(b - x) as base_resize(b) - base_resize(x) (the resize is linear): each blurred image is
        # resized once, and the differences are taken at the output size, not over the input-resolution maps
        resized = y = resize(x, size, self.interpolation, self.antialias)
        for layer in range(self.layers):
            x = self.blur(x)
            resized, previous = resize(x, size, self.interpolation, self.antialias), resized
            y = y + torch.tanh(self.weight[layer] * (resized - previous) + self.bias[layer])
        return y


def _weighted_shifts(x: Tensor, taps: list[float], dim: int, length: int) -> Tensor:
    """``sum_i taps[i] * x.narrow(dim, i, length)``: a 1-D correlation along ``dim`` without padding."""
    out = x.narrow(dim, 0, length) * taps[0]
    for i, tap in enumerate(taps[1:], start=1):
        out.add_(x.narrow(dim, i, length), alpha=tap)
    return out
