"""Saliency samplers: a learned, non-uniform sampling grid that spends output pixels where the task needs them.

Recasens, Kellnhofer, Stent, Matusik & Torralba, "Learning to Zoom: a Saliency-Based Sampling Layer for Neural
Networks" (ECCV 2018), and its separable form (Thavamani et al., FOVEA, ICCV 2021; LZU, CVPR 2023)::

    s = saliency_net(resize(x, (n, n)))                # a few plain convolutions on a low-resolution copy
    S = softmax over the positions of s                # (B, 1, n/4, n/4), per image
    grid = attraction(S)                               # Gaussian attraction (resizers/warps.py): 2-D, or per axis
    y = sum_l  a_l(zoom) * grid_sample(level_l, grid)  # read from the pyramid level that matches the local zoom

Anti-aliasing: the output samples a pyramid of the input, ``level_l = resize(x, (h * 2^l, w * 2^l))`` with the base
resize (Pillow-style antialiased bilinear by default) for ``l = -1, 0, 1, ...`` and the input itself as the finest
level. The local zoom of each output pixel (output pixels per pixel of the uniform resize, from the grid's finite
differences, the smaller of the two axes) picks the level of matching resolution, with linear weights between the two
nearest levels in ``log2`` (as trilinear mip-mapping): where the warp magnifies, finer levels are read; where it
compresses, coarser ones, so no level is read with a step of more than about one of its pixels.

The uniform grid reads level 0, ``resize(x, (h, w))``, at its pixel centres: with a uniform saliency map (the
default ``init="identity"`` zero-initialises the last convolution) the sampler reproduces its base resize up to
float rounding, so the papers' two-phase protocol starts where the baseline is. The saliency network has no
normalisation layers: each image's result depends on that image only, in training and eval alike.

``saliency-separable`` marginalises the saliency map to one curve per axis: rows and columns stay straight, each
axis's map is strictly increasing, and :meth:`SeparableSaliencySampler.zoom` returns the warp with its exact
inverse (:class:`~taskresize.resizers.warps.SeparableWarp`) to bring dense outputs back to the input frame.

FLOPs (:mod:`taskresize.flops`): the saliency network's and the attraction's convolutions (counted by the counter),
the pyramid's resizes (by the classic resizer's formula), and every sampling tap: 4 bilinear taps per output value
and pyramid level, the grid's up-sampling likewise.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskresize.flops import counted_by_formula
from taskresize.resizers.base import INITS, Resizer
from taskresize.resizers.classic import METHODS, in_float32, resize
from taskresize.resizers.registry import OneOf, OutputSize, Range, register_resizer
from taskresize.resizers.warps import SeparableWarp, attraction_grid, separable_grid, separable_maps
from taskresize.sizes import Size

SALIENCY_FLOOR = 1e-3  # the share of a saliency map spread uniformly (see SaliencySampler.saliency)


class SaliencyNet(nn.Sequential):
    """``(B, 3, n, n) -> (B, 1, n/4, n/4)`` saliency logits: two stride-2 and one plain 3x3 convolution with
    ReLU, then a 1x1 convolution.

    The three hidden convolutions are He-initialised (normal, fan-in, ReLU gain; zero bias), so their features
    keep the input's scale (RMS 0.7-0.9 for an input of RMS 1). PyTorch's default initialisation shrinks them about
    10-fold over the three layers (RMS 0.07-0.10), and the gradient of the last convolution with them: a
    zero-started saliency map then barely moved in training, even with the saliency network's learning rate 1000 x
    the backbone's (docs/results.md, "The saliency network's initialisation")."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(3, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 1, 1),
        )
        for layer in list(self)[:-1]:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)


@register_resizer("saliency", learned=True)
class SaliencySampler(Resizer):
    """Saliency sampler (Recasens et al., ECCV 2018): a learned 2-D sampling grid read from an input pyramid.

    Args:
        output_size: default output ``(h, w)`` (or one int); ``forward(x, size)`` may override it per call.
        saliency_input: side of the low-resolution copy the saliency network sees; its map is a quarter of it.
        channels: width of the saliency network.
        sigma: the attraction kernel's standard deviation, as a fraction of the saliency map's side (Recasens et
            al. use 13 / 2.355 cells of a 31-cell map, about 0.18).
        interpolation: the base resize (of the pyramid levels and the saliency network's input).
        antialias: Pillow-style antialiasing in the base resize.
        init: ``"identity"`` zero-initialises the last convolution (uniform saliency: the sampler starts as its
            base resize); ``"paper"`` keeps PyTorch's default initialisation of every layer.
    """

    separable = False
    warps_space = True  # its output is not the input frame scaled (dense tasks need the warp's inverse)
    # the saliency network's rate beside a pretrained backbone, as `compare` sets it: the uniform resizers' 0.001 x
    # would keep the map near its start; at 10 x it collapsed onto one point, at 1 x it trained stably (docs/results.md,
    # "Saliency samplers with a pretrained backbone on openclipart, He initialisation")
    pretrained_lr_scale = 1.0

    def __init__(
        self,
        output_size: OutputSize = (224, 224),
        saliency_input: Annotated[int, Range(ge=8)] = 64,
        channels: Annotated[int, Range(ge=1)] = 16,
        sigma: Annotated[float, Range(gt=0, le=4)] = 0.18,
        interpolation: Annotated[str, OneOf(("bilinear", "bicubic", "area", "lanczos"))] = "bilinear",
        antialias: bool = True,
        init: Annotated[str, OneOf(INITS)] = "identity",
    ) -> None:
        super().__init__(output_size)
        if interpolation not in METHODS or interpolation == "nearest":
            raise ValueError(f"interpolation {interpolation!r} is not one of bilinear, bicubic, area, lanczos")
        if init not in INITS:
            raise ValueError(f"init {init!r} is not one of {', '.join(INITS)}")
        self.saliency_input, self.channels, self.sigma = saliency_input, channels, float(sigma)
        self.interpolation, self.antialias, self.init = interpolation, antialias, init
        self.net = SaliencyNet(channels)
        if init == "identity":
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def saliency(self, x: Tensor) -> Tensor:
        """The saliency map of ``x`` ``(B, 3, H, W)``: ``(B, 1, g, g)``, positive, summing to 1 per image.

        The softmax over positions mixed with a uniform floor (``SALIENCY_FLOOR`` of the mass): a softmax collapsed
        onto one position in training had left the attraction kernel's windows far from it empty, and the grid
        their 0 / 0. A uniform map stays uniform."""
        n = self.saliency_input
        logits = self.net(resize(x, (n, n), self.interpolation, self.antialias))
        b, _, gh, gw = logits.shape
        softmax = torch.softmax(logits.reshape(b, -1), dim=1)
        return (softmax * (1 - SALIENCY_FLOOR) + SALIENCY_FLOOR / (gh * gw)).view(b, 1, gh, gw)

    def grid(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """The sampling grid ``(B, h, w, 2)`` (``F.grid_sample``'s layout) of ``x`` ``(B, 3, H, W)``."""
        saliency = self.saliency(x)
        return attraction_grid(saliency, self.target_size(size), self.sigma * saliency.shape[-1])

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resample ``x`` ``(B, 3, H, W)`` to ``(B, 3, h, w)``, ``(h, w) = size`` or ``output_size``.

        Under autocast, computed in float32 (a float16 / bfloat16 input gives a float32 output)."""
        size = self.target_size(size)
        return in_float32(lambda t: self._forward(t, size), x)

    def _forward(self, x: Tensor, size: Size) -> Tensor:
        return sample_pyramid(x, self.grid(x, size), self.interpolation, self.antialias)


@register_resizer("saliency-separable", learned=True)
class SeparableSaliencySampler(SaliencySampler):
    """Separable saliency sampler (FOVEA / LZU): per-axis learned zoom, straight rows and columns, exact inverse.

    Takes the arguments of :class:`SaliencySampler`; the saliency map is marginalised to one curve per axis and
    each axis is warped by the 1-D Gaussian attraction of its curve. :meth:`zoom` also returns the warp, whose
    :meth:`~taskresize.resizers.warps.SeparableWarp.unwarp` (dense outputs) and
    :meth:`~taskresize.resizers.warps.SeparableWarp.unzoom` (a model's features) map back to the image's frame.
    """

    separable = True

    def warp(self, x: Tensor, size: int | tuple[int, int] | None = None) -> SeparableWarp:
        """The per-axis maps of ``x`` ``(B, 3, H, W)`` at the output size."""
        saliency = self.saliency(x)
        ux, uy = separable_maps(saliency, self.target_size(size), self.sigma * saliency.shape[-1])
        return SeparableWarp(ux, uy)

    def grid(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        warp = self.warp(x, size)
        return separable_grid(warp.x, warp.y)

    def zoom(self, x: Tensor, size: int | tuple[int, int] | None = None) -> tuple[Tensor, SeparableWarp]:
        """``(forward(x, size), the warp it applied)``: the same computation as :meth:`forward`."""
        size = self.target_size(size)
        return in_float32(lambda t: self._zoom(t, size), x)

    def _zoom(self, x: Tensor, size: Size) -> tuple[Tensor, SeparableWarp]:
        warp = self.warp(x, size)
        return sample_pyramid(x, separable_grid(warp.x, warp.y), self.interpolation, self.antialias), warp

    def _forward(self, x: Tensor, size: Size) -> Tensor:
        return self._zoom(x, size)[0]


def pyramid_sizes(in_size: Size, size: Size) -> list[tuple[Size | None, float]]:
    """The pyramid an output of ``size`` reads from an input of ``in_size``: ``[(level size, log2 zoom)]`` with
    increasing zoom; ``None`` stands for the input itself (the finest level when it is larger than the output)."""
    (big_h, big_w), (h, w) = in_size, size
    levels: list[tuple[Size | None, float]] = []
    half = (max(1, round(h / 2)), max(1, round(w / 2)))
    if half != (h, w):
        levels.append((half, math.log2(min(half[0] / h, half[1] / w))))
    levels.append(((h, w), 0.0))
    factor = min(big_h / h, big_w / w)
    j = 1
    while 2**j < factor:
        level = (min(big_h, round(h * 2**j)), min(big_w, round(w * 2**j)))
        levels.append((level, math.log2(min(level[0] / h, level[1] / w))))
        j += 1
    if factor > 1 and math.log2(factor) > levels[-1][1] + 1e-6:
        levels.append((None, math.log2(factor)))
    return levels


def local_log_zoom(grid: Tensor) -> Tensor:
    """``log2`` of each output pixel's zoom ``(B, h, w)``: the uniform grid's step over the grid's local step (from
    central differences, one-sided at the borders), the larger step of the two axes."""
    _, h, w, _ = grid.shape
    units = grid.new_tensor([w / 2, h / 2])  # normalised -> pixels of the uniform output, per component

    def step(dim: int, n: int) -> Tensor:
        if n == 1:
            return grid.new_ones(grid.shape[:3])
        first = grid.narrow(dim, 1, 1) - grid.narrow(dim, 0, 1)
        last = grid.narrow(dim, n - 1, 1) - grid.narrow(dim, n - 2, 1)
        middle = (grid.narrow(dim, 2, n - 2) - grid.narrow(dim, 0, n - 2)) / 2
        return (torch.cat([first, middle, last], dim=dim) * units).square().sum(-1).sqrt()

    largest = torch.maximum(step(2, w), step(1, h))
    return -torch.log2(largest.clamp(min=1e-6))


def level_weights(log_zoom: Tensor, positions: list[float]) -> list[Tensor]:
    """Linear ("hat") weights of each level at ``log_zoom``, clamped to the levels' range; they sum to 1."""
    t = log_zoom.clamp(positions[0], positions[-1])
    weights = []
    for i, p in enumerate(positions):
        rising = (t - positions[i - 1]) / (p - positions[i - 1]) if i > 0 else torch.ones_like(t)
        falling = (positions[i + 1] - t) / (positions[i + 1] - p) if i + 1 < len(positions) else torch.ones_like(t)
        weights.append(torch.minimum(rising, falling).clamp(0, 1))
    return weights


def sample_pyramid(x: Tensor, grid: Tensor, method: str = "bilinear", antialias: bool = True) -> Tensor:
    """Read ``x`` ``(B, C, H, W)`` at ``grid`` ``(B, h, w, 2)`` from the pyramid level matching the local zoom.

    See the module docstring. Borders are replicated; a channels-last ``x`` gives a channels-last result.
    """
    _, c, h_in, w_in = x.shape
    b, h, w, _ = grid.shape
    levels = pyramid_sizes((h_in, w_in), (h, w))
    grid = grid.to(x.dtype)
    weights = [None] if len(levels) == 1 else level_weights(local_log_zoom(grid), [t for _, t in levels])
    out = None
    for (level_size, _), weight in zip(levels, weights, strict=True):
        level = x if level_size is None else resize(x, level_size, method, antialias)
        with counted_by_formula(lambda: 2 * 4 * b * c * h * w):
            sampled = F.grid_sample(level, grid, mode="bilinear", padding_mode="border", align_corners=False)
        term = sampled if weight is None else sampled * weight.unsqueeze(1)
        out = term if out is None else out + term
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out
