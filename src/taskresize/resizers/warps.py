"""Sampling grids from saliency maps, and the inverse of a separable warp (functional core of the saliency samplers).

Coordinates are normalised as ``F.grid_sample(align_corners=False)`` reads them: ``-1`` and ``1`` are the outer
edges of the first and last pixel, pixel ``i`` of ``n`` has its centre at ``(2 i + 1) / n - 1``. A *warp* maps each
output pixel to the input coordinate it reads.

* :func:`attraction_grid` (Recasens et al., ECCV 2018): ``u(x) = sum_x' S(x') k(x, x') x' / sum_x' S(x') k(x, x')``
  with a Gaussian ``k``, on a saliency grid padded by replicating its border values and whose coordinates continue
  linearly into the padding, so that a uniform ``S`` gives exactly the uniform grid (borders are not pulled in).
* :func:`separable_maps` (Thavamani et al., FOVEA, ICCV 2021 and LZU, CVPR 2023): the same attraction in 1-D on the
  saliency's marginals, one map per axis. Each 1-D map is the mean of ``x'`` under weights ``S(x') k(x, x')``; its
  derivative is their variance over ``sigma^2`` (a Gaussian kernel's property), so it is strictly increasing, rows
  and columns stay straight, and the warp inverts exactly (:class:`SeparableWarp`).

The warps are computed on the coarse saliency grid as displacements from the uniform grid and brought to the
output size by linear interpolation of the displacements, so a zero displacement is the exact uniform grid at any
output size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from taskresize.errors import TaskresizeError
from taskresize.flops import counted_by_formula
from taskresize.sizes import Size


def centres(n: int, *, like: Tensor) -> Tensor:
    """Normalised centres of ``n`` pixels, ``(n,)``, on ``like``'s device and dtype."""
    return (torch.arange(n, device=like.device, dtype=like.dtype) * 2 + 1) / n - 1


def gaussian_taps(sigma: float, *, like: Tensor) -> tuple[Tensor, int]:
    """1-D Gaussian taps of standard deviation ``sigma`` (in grid cells) out to 3 sigma, and their radius."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    return torch.exp(-(offsets**2) / (2 * sigma**2)), radius


def _padded_coordinates(n: int, radius: int, *, like: Tensor) -> Tensor:
    """Centres of an ``n``-cell grid continued linearly over ``radius`` cells on each side: ``(n + 2 radius,)``."""
    k = torch.arange(-radius, n + radius, device=like.device, dtype=like.dtype)
    return (2 * k + 1) / n - 1


def _displacement_1d(weights: Tensor, sigma: float) -> Tensor:
    """1-D attraction: ``weights`` ``(B, n)`` (non-negative, not all zero) -> displacement ``u - x`` ``(B, n)``."""
    n = weights.shape[1]
    taps, radius = gaussian_taps(sigma, like=weights)
    padded = F.pad(weights.unsqueeze(1), (radius, radius), mode="replicate")  # (B, 1, n + 2r)
    coords = _padded_coordinates(n, radius, like=weights)
    stacked = torch.cat([padded, padded * coords], dim=1)  # (B, 2, n + 2r): S and S x'
    sums = F.conv1d(stacked, taps.view(1, 1, -1).expand(2, 1, -1), groups=2)  # (B, 2, n)
    return sums[:, 1] / sums[:, 0] - centres(n, like=weights)


def attraction_grid(saliency: Tensor, size: Size, sigma: float) -> Tensor:
    """The 2-D sampling grid of a saliency map (Recasens et al.).

    Args:
        saliency: ``(B, 1, g_h, g_w)``, non-negative, each map not all zero (e.g. a softmax over positions).
        size: the output ``(h, w)``.
        sigma: the Gaussian kernel's standard deviation in saliency-grid cells.

    Returns:
        ``(B, h, w, 2)``: the ``(x, y)`` input coordinate each output pixel reads (``F.grid_sample``'s layout).
    """
    _, _, gh, gw = saliency.shape
    taps, radius = gaussian_taps(sigma, like=saliency)
    padded = F.pad(saliency, (radius, radius, radius, radius), mode="replicate")
    ys = _padded_coordinates(gh, radius, like=saliency).view(1, 1, -1, 1)
    xs = _padded_coordinates(gw, radius, like=saliency).view(1, 1, 1, -1)
    stacked = torch.cat([padded, padded * xs, padded * ys], dim=1)  # S, S x', S y'
    rows = F.conv2d(stacked, taps.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)  # the Gaussian is separable
    sums = F.conv2d(rows, taps.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)  # (B, 3, g_h, g_w)
    dx = sums[:, 1:2] / sums[:, 0:1] - centres(gw, like=saliency).view(1, 1, 1, -1)
    dy = sums[:, 2:3] / sums[:, 0:1] - centres(gh, like=saliency).view(1, 1, -1, 1)
    h, w = size
    displacement = upsample_linear(torch.cat([dx, dy], dim=1), size)  # (B, 2, h, w)
    grid = displacement.permute(0, 2, 3, 1)
    return grid + torch.stack(
        [centres(w, like=saliency).view(1, w).expand(h, w), centres(h, like=saliency).view(h, 1).expand(h, w)],
        dim=-1,
    )


def separable_maps(saliency: Tensor, size: Size, sigma: float) -> tuple[Tensor, Tensor]:
    """The per-axis maps of a saliency map's marginals (FOVEA / LZU).

    Args:
        saliency: ``(B, 1, g_h, g_w)``, non-negative, each map not all zero.
        size: the output ``(h, w)``.
        sigma: the Gaussian kernel's standard deviation in saliency-grid cells.

    Returns:
        ``(ux, uy)``, ``(B, w)`` and ``(B, h)``: the input x coordinate output column ``j`` reads, and the input y
        coordinate output row ``i`` reads; each strictly increasing.
    """
    h, w = size
    dx = _displacement_1d(saliency.sum(dim=(1, 2)), sigma)  # columns: sum over rows
    dy = _displacement_1d(saliency.sum(dim=(1, 3)), sigma)
    ux = upsample_linear(dx.view(dx.shape[0], 1, 1, -1), (1, w)).flatten(1) + centres(w, like=saliency)
    uy = upsample_linear(dy.view(dy.shape[0], 1, 1, -1), (1, h)).flatten(1) + centres(h, like=saliency)
    return ux, uy


def upsample_linear(x: Tensor, size: Size) -> Tensor:
    """``F.interpolate(bilinear, align_corners=False)`` of ``(B, C, H, W)``, counted as 2x2 taps per output value."""
    with counted_by_formula(lambda: 2 * 4 * x.shape[0] * x.shape[1] * size[0] * size[1]):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def separable_grid(ux: Tensor, uy: Tensor) -> Tensor:
    """``(B, h, w, 2)`` grid of per-axis maps ``ux`` ``(B, w)`` and ``uy`` ``(B, h)``."""
    b, w = ux.shape
    h = uy.shape[1]
    return torch.stack([ux.view(b, 1, w).expand(b, h, w), uy.view(b, h, 1).expand(b, h, w)], dim=-1)


def interpolate_monotone(knots_x: Tensor, knots_y: Tensor, query: Tensor) -> Tensor:
    """The piecewise-linear function through ``(knots_x, knots_y)`` at ``query``, continued with slope 1 beyond
    the first and last knot.

    Args:
        knots_x: ``(B, n)``, strictly increasing along the last dimension.
        knots_y: ``(B, n)``.
        query: ``(B, m)``.

    With ``knots_y`` strictly increasing too, swapping the knots gives the exact inverse function (slope 1 is its
    own inverse outside the knots).
    """
    n = knots_x.shape[-1]
    if n == 1:
        return knots_y + (query - knots_x)
    index = torch.searchsorted(knots_x.contiguous(), query.contiguous()).clamp(1, n - 1)
    x0, x1 = knots_x.gather(-1, index - 1), knots_x.gather(-1, index)
    y0, y1 = knots_y.gather(-1, index - 1), knots_y.gather(-1, index)
    inside = y0 + (y1 - y0) / (x1 - x0).clamp(min=torch.finfo(query.dtype).tiny) * (query - x0)
    below = knots_y[..., :1] + (query - knots_x[..., :1])
    above = knots_y[..., -1:] + (query - knots_x[..., -1:])
    return torch.where(query < knots_x[..., :1], below, torch.where(query > knots_x[..., -1:], above, inside))


@dataclass(frozen=True)
class SeparableWarp:
    """A separable warp and its exact inverse, for dense outputs and a model's features (LZU's "unzoom").

    The forward map of an axis is the piecewise-linear function through ``(output pixel centre, input coordinate
    it reads)``, continued with slope 1 beyond the outer centres; it is strictly increasing, and its inverse is the
    piecewise-linear function through the same knots swapped.

    Attributes:
        x: ``(B, w)``, the input x coordinate (normalised) each output column reads.
        y: ``(B, h)``, the input y coordinate each output row reads.
    """

    x: Tensor
    y: Tensor

    @property
    def output_size(self) -> Size:
        return self.y.shape[1], self.x.shape[1]

    @classmethod
    def uniform(cls, batch: int, size: Size, *, like: Tensor) -> SeparableWarp:
        """The warp of a plain resize to ``size = (h, w)``: every output pixel reads its own centre."""
        h, w = size
        return cls(centres(w, like=like).expand(batch, w), centres(h, like=like).expand(batch, h))

    def _axis(self, axis: int) -> tuple[Tensor, Tensor]:
        """(output centres, input coordinates) knots of ``axis`` (0: y, 1: x), each ``(B, n)``."""
        coords = self.y if axis == 0 else self.x
        return centres(coords.shape[1], like=coords).expand_as(coords), coords

    def to_input(self, coords: Tensor, axis: int) -> Tensor:
        """Normalised output coordinates ``(B, m)`` along ``axis`` -> the input coordinates they read."""
        out, into = self._axis(axis)
        return interpolate_monotone(out, into, coords)

    def to_output(self, coords: Tensor, axis: int) -> Tensor:
        """Normalised input coordinates ``(B, m)`` along ``axis`` -> the output coordinates that read them."""
        out, into = self._axis(axis)
        return interpolate_monotone(into, out, coords)

    def unwarp(self, z: Tensor, size: Size) -> Tensor:
        """Dense outputs in the warped frame ``(B, C, h, w)`` -> the input frame ``(B, C, H, W)``, ``size = (H, W)``.

        Each input pixel's centre is mapped by the inverse warp into the warped frame and ``z`` is read there
        bilinearly (borders replicated), as :meth:`unzoom` reads (at the warp's precision at least, returned in
        ``z``'s dtype). With the uniform warp this is ``F.interpolate(z, size, mode="bilinear", align_corners=False)``.
        """
        h_in, w_in = size
        b = z.shape[0]
        qx = centres(w_in, like=self.x).expand(b, w_in)
        qy = centres(h_in, like=self.y).expand(b, h_in)
        return _read(z, self.to_output(qx, 1), self.to_output(qy, 0))

    def unzoom(self, z: Tensor, canvas: Size | None = None) -> Tensor:
        """A model's features of the warped image ``(B, C, h_f, w_f)`` -> the same cells of the image's frame (LZU).

        ``z`` covers the warped frame (the output size ``(h, w)``) padded at the bottom and right to ``canvas``
        ``(H_c, W_c)`` (default: not padded), as a detector batches its images. The result has ``z``'s shape and
        holds, at each cell, what the model's features would hold there had it seen the image uniformly resized to
        ``(h, w)`` and padded alike: the cell's centre, a point of the image's frame, is mapped by the inverse warp
        into the warped frame and ``z`` is read there bilinearly (borders replicated; beyond the image, in the
        padding, the warp continues with slope 1), in ``z``'s dtype or the warp's, whichever is wider, and returned
        in ``z``'s. Differentiable in ``z`` and in the warp. The uniform warp gives ``z`` back (up to float rounding
        of the cell centres).
        """
        h, w = self.output_size
        h_c, w_c = canvas if canvas is not None else (h, w)
        b, _, h_f, w_f = z.shape
        # cell centres in the image frame's normalised coordinates (the image spans [-1, 1], the padding beyond it)
        qx = ((centres(w_f, like=self.x) + 1) * (w_c / w) - 1).expand(b, w_f)
        qy = ((centres(h_f, like=self.y) + 1) * (h_c / h) - 1).expand(b, h_f)
        gx = (self.to_output(qx, 1) + 1) * (w / w_c) - 1  # the warped frame's, as z's cells read them
        gy = (self.to_output(qy, 0) + 1) * (h / h_c) - 1
        return _read(z, gx, gy)


def _read(z: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """``z`` ``(B, C, h, w)`` read bilinearly (borders replicated) at the separable grid of normalised coordinates
    ``gx`` ``(B, W)``, ``gy`` ``(B, H)``, in ``z``'s dtype or the grid's, whichever is wider, returned in ``z``'s:
    a bfloat16 grid would misplace the reads by up to ``w / 512`` of a pixel."""
    dtype = torch.promote_types(z.dtype, gx.dtype)
    grid = separable_grid(gx, gy).to(dtype)
    with counted_by_formula(lambda: 2 * 4 * z.shape[0] * z.shape[1] * grid.shape[1] * grid.shape[2]):
        out = F.grid_sample(z.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(z.dtype)


def zooms(resizer: torch.nn.Module) -> bool:
    """Whether ``resizer`` warps with an exact inverse (a ``zoom`` method giving its :class:`SeparableWarp`)."""
    return getattr(resizer, "zoom", None) is not None


def resize_with_warp(resizer: torch.nn.Module, x: Tensor, size: Size) -> tuple[Tensor, SeparableWarp | None]:
    """``resizer(x, size)`` and the warp it applied, for tasks whose outputs live in the image's frame.

    Uniform resizers give ``None``: their output frame is the input frame scaled. A resizer with a ``zoom`` method
    (the separable saliency sampler) gives its :class:`SeparableWarp`, whose inverse maps dense outputs back.

    Raises:
        TaskresizeError: a resizer that warps space without an exact inverse (the 2-D saliency sampler).
    """
    if zooms(resizer):
        return resizer.zoom(x, size)
    if getattr(resizer, "warps_space", False):
        raise TaskresizeError(
            f"resizer {resizer.resizer_name!r} warps the image without an exact inverse, so segmentation outputs "
            "and detection features cannot be mapped back to the image; use saliency-separable for segmentation "
            "and detection"
        )
    return resizer(x, size), None
