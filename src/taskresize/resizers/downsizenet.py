"""DownsizeNet of Ma et al., *Task Generalizable Spatial and Texture Aware Image Downsizing Network*.

Each output pixel is a convex combination of the input pixels around its projected position::

    out(Q) = sum_i a_i(Q) * q_i,      a_i >= 0,  sum_i a_i = 1

over the 2x2 (bilinear-like) or 4x4 (bicubic-like) neighbourhood. The coefficients come from a small network:

1. ``layers`` 3x3 convolutions with ``channels`` filters on the full-resolution image give texture features ``F``;
2. *floating-type pooling*: each output pixel is projected to input coordinates with half-pixel centres
   (the convention of ``F.interpolate(align_corners=False)``) and takes ``F`` at the top-left neighbour ``P``;
3. the *relative-distance map* ``v`` encodes the offset ``(dx, dy)`` of the projected point from ``P``: the four
   bilinear weights, or the sixteen bicubic ones (a = -0.75, as ``F.interpolate``);
4. ``concat(F(P), v)`` -> 1x1 convolution -> sigmoid -> divide by the sum (or a softmax) gives ``a_i``.

With a 1x1 convolution that passes ``v`` through and no sigmoid, the module is exactly bilinear (2x2) or bicubic
(4x4) interpolation: :meth:`DownsizeNet.as_interpolation` builds that network. Neighbour indices are clamped at
the borders as ``F.interpolate`` does.

Under autocast only the texture convolutions (the full-resolution work) run in bf16 / fp16: the distance map, the
1x1 convolution, the normalisation and the weighted sum of neighbours are computed in float32 with autocast
disabled, and the output is float32. In bf16 the distance map (8 bits of mantissa) was no longer bilinear.
"""

from __future__ import annotations

import functools
import itertools
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskresize.flops import counted_by_formula, counting_flops
from taskresize.resizers.base import INITS, Resizer
from taskresize.resizers.classic import autocast_enabled, in_float32
from taskresize.resizers.registry import OneOf, OutputSize, Range, register_resizer

NORMALIZATIONS = ("sigmoid", "softmax", "none")
_CUBIC_A = -0.75  # F.interpolate's bicubic coefficient


@functools.lru_cache(maxsize=64)
def _cached_axis_plan(in_size: int, out_size: int, neighbors: int, dtype: torch.dtype, device: torch.device):
    with torch.inference_mode(False), torch.no_grad():
        indices, weights, anchor = _source_coords(in_size, out_size, neighbors, dtype, device)
        return indices, weights, anchor, _even_spacing(_anchors(in_size, out_size, neighbors), in_size)


@torch.compiler.assume_constant_result
def _axis_plan(in_size: int, out_size: int, neighbors: int, dtype: torch.dtype, device: torch.device):
    """:func:`_source_coords` for one axis, built once per sizes, dtype and device (the tensors are never written)
    and outside inference mode, so that a plan first built under ``torch.inference_mode`` can still be saved for
    backward by a later training step; with the anchors' ``(start, step)`` where they are evenly spaced (from the
    sizes in integer arithmetic: no tensor is read back, so no device sync). Made on ``device`` directly. Outside
    any ``torch.compile`` graph: the compiler takes the plan as a constant (no graph break, nothing rebuilt per
    call), so a graph holds one input size: compile with ``dynamic=False`` to resize several sizes with
    ``fullgraph=True`` (``torch.export`` with dynamic sizes takes the traced path of ``forward``)."""
    return _cached_axis_plan(in_size, out_size, neighbors, dtype, device)


def _anchors(in_size: int, out_size: int, neighbors: int) -> list[int]:
    """The anchors of :func:`_source_coords` (the top-left neighbour ``P``) in exact integer arithmetic:
    ``floor(((2i + 1) in - out) / (2 out))``, clamped as there."""
    anchors = [((2 * i + 1) * in_size - out_size) // (2 * out_size) for i in range(out_size)]
    return [min(max(a, 0), in_size - 1) for a in anchors]


def _even_spacing(anchor: list[int], in_size: int) -> tuple[int, int] | None:
    """``(start, step)`` when ``anchor[i] == start + step * i`` with a step of at least 1 and, unless it starts at
    the border, the 3x3 window of the last anchor inside the image (:meth:`DownsizeNet._texture_at` pads only at
    the start); else None."""
    step = anchor[1] - anchor[0] if len(anchor) > 1 else 1
    if step < 1 or any(b - a != step for a, b in itertools.pairwise(anchor)):
        return None
    if anchor[0] > 0 and anchor[-1] > in_size - 2:
        return None
    return anchor[0], step


def _distance_map(wy: Tensor, wx: Tensor) -> Tensor:
    """The K*K separable interpolation weights of every output pixel, ``(1, K*K, h, w)``, row-major taps."""
    k = wy.shape[1]
    return (wy.T[:, None, :, None] * wx.T[None, :, None, :]).reshape(1, k * k, wy.shape[0], wx.shape[0])


@functools.lru_cache(maxsize=64)
def _cached_distance_map_of(in_h: int, in_w: int, out_h: int, out_w: int, k: int, dtype, device) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():  # see _axis_plan
        return _distance_map(
            _cached_axis_plan(in_h, out_h, k, dtype, device)[1], _cached_axis_plan(in_w, out_w, k, dtype, device)[1]
        )


@torch.compiler.assume_constant_result
def _cached_distance_map(in_h: int, in_w: int, out_h: int, out_w: int, k: int, dtype, device) -> Tensor:
    """:func:`_distance_map` of the cached plans, built once per sizes (a constant to ``torch.compile``)."""
    return _cached_distance_map_of(in_h, in_w, out_h, out_w, k, dtype, device)


def _source_coords(in_size: int, out_size: int, neighbors: int, dtype: torch.dtype, device: torch.device):
    """Neighbour indices ``(out, K)`` along one axis and the 1-D interpolation weights ``(out, K)``.

    Mirrors ``upsample_bilinear2d`` / ``upsample_bicubic2d`` (align_corners=False): the source coordinate is
    ``(i + 0.5) * in / out - 0.5``, clamped at 0 for the 2-tap case only; indices are clamped into the image.
    Returns ``(indices, weights, anchor)`` where ``anchor`` ``(out,)`` is the top-left neighbour ``P``.
    """
    # ``((2i + 1) in - out) / (2 out)``: numerator and denominator are exact integers in float64, so a position that
    # falls exactly on an input pixel stays exact and the neighbourhood does not depend on rounding (with
    # ``(i + 0.5) * (in / out) - 0.5``, 15 -> 11 put output row 5 at 6.9999... instead of 7)
    calc = torch.float64
    i = torch.arange(out_size, device=device, dtype=calc)
    src = ((2 * i + 1) * in_size - out_size) / (2 * out_size)
    if neighbors == 2:
        src = src.clamp(min=0)
        base = src.floor().to(torch.int64).clamp(max=in_size - 1)
        t = (src - base.to(calc)).clamp(0, 1)
        indices = torch.stack([base, (base + 1).clamp(max=in_size - 1)], dim=1)
        weights = torch.stack([1 - t, t], dim=1)
        anchor = base
    else:
        base = src.floor()
        t = src - base
        base = base.to(torch.int64)
        indices = torch.stack([(base + k).clamp(0, in_size - 1) for k in (-1, 0, 1, 2)], dim=1)
        weights = torch.stack([_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t)], dim=1)
        anchor = base.clamp(0, in_size - 1)
    return indices, weights.to(dtype), anchor


def _cubic_near(x: Tensor) -> Tensor:
    a = _CUBIC_A
    return ((a + 2) * x - (a + 3)) * x * x + 1


def _cubic_far(x: Tensor) -> Tensor:
    a = _CUBIC_A
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


@register_resizer("downsizenet")
class DownsizeNet(Resizer):
    """Learned interpolation coefficients over a 2x2 or 4x4 neighbourhood; the output stays an image.

    Args:
        output_size: default output ``(h, w)`` (or one int); ``forward(x, size)`` may override it per call.
        layers: 3x3 convolutions of the coefficient network (paper: 2-4, default 3).
        channels: filters per convolution (paper: 16).
        neighbors: 2 (2x2 neighbourhood, bilinear distance encoding) or 4 (4x4, bicubic encoding).
        normalize: ``"sigmoid"`` then divide by the sum (paper), ``"softmax"`` (paper's footnote), or ``"none"``
            (raw coefficients: only for the interpolation special case, the output is then no longer convex).
        in_channels: image channels.
        init: ``"paper"`` (PyTorch's default random init) or ``"identity"``: the 1x1 convolution copies the
            distance map, so the network starts as plain bilinear (2) or bicubic (4) interpolation; it needs
            ``normalize="none"`` (a sigmoid or softmax of the distance map is not the interpolation's weights).
    """

    def __init__(
        self,
        output_size: OutputSize = (224, 224),
        layers: Annotated[int, Range(ge=1)] = 3,
        channels: Annotated[int, Range(ge=1)] = 16,
        neighbors: Annotated[int, OneOf((2, 4))] = 2,
        normalize: Annotated[str, OneOf(NORMALIZATIONS)] = "sigmoid",
        in_channels: Annotated[int, Range(ge=1)] = 3,
        init: Annotated[str, OneOf(INITS)] = "paper",
    ) -> None:
        super().__init__(output_size)
        if init not in INITS:
            raise ValueError(f"init {init!r} is not one of {', '.join(INITS)}")
        if init == "identity" and normalize != "none":
            raise ValueError(f"init 'identity' needs normalize 'none' (got {normalize!r}): a {normalize} of the "
                             "distance map is not the interpolation's weights")  # fmt: skip
        if neighbors not in (2, 4):
            raise ValueError(f"neighbors must be 2 (2x2) or 4 (4x4), got {neighbors!r}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize {normalize!r} is not one of {', '.join(NORMALIZATIONS)}")
        if layers < 1 or channels < 1:
            raise ValueError(f"need layers >= 1 and channels >= 1, got layers={layers}, channels={channels}")
        self.layers, self.channels, self.neighbors, self.normalize, self.in_channels, self.init = (
            layers, channels, neighbors, normalize, in_channels, init,
        )  # fmt: skip
        convs: list[nn.Module] = []
        for i in range(layers):
            # the ReLU in place: the convolution's backward does not read its output
            convs += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.texture = nn.Sequential(*convs)
        taps = neighbors * neighbors
        self.coefficients = nn.Conv2d(channels + taps, taps, 1)
        if init == "identity":
            with torch.no_grad():
                self.coefficients.weight.zero_()
                self.coefficients.bias.zero_()
                for k in range(taps):
                    self.coefficients.weight[k, channels + k] = 1.0

    @classmethod
    def as_interpolation(cls, neighbors: int = 2, **kwargs: Any) -> DownsizeNet:
        """The special case of the paper: weights that make DownsizeNet plain bilinear (2) or bicubic (4).

        The 1x1 convolution copies the relative-distance map to the coefficients and ``normalize="none"`` drops
        the sigmoid, so the output equals ``F.interpolate(mode="bilinear"/"bicubic", align_corners=False)``.
        """
        return cls(neighbors=neighbors, normalize="none", init="identity", **kwargs)

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize ``x`` ``(B, C, H, W)`` to ``(B, C, h, w)``, ``(h, w) = size`` or ``output_size``."""
        out_h, out_w = self.target_size(size)
        in_h, in_w = x.shape[-2:]
        k = self.neighbors
        amp = autocast_enabled(x)
        dtype = torch.float32 if amp and x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        symbolic = not (isinstance(in_h, int) and isinstance(in_w, int))  # torch.export with dynamic sizes
        if not symbolic:  # plans built once per sizes
            rows, wy, anchor_y, spacing_y = _axis_plan(in_h, out_h, k, dtype, x.device)
            cols, wx, anchor_x, spacing_x = _axis_plan(in_w, out_w, k, dtype, x.device)
        else:  # traced as they come, every texture position computed
            rows, wy, anchor_y = _source_coords(in_h, out_h, k, dtype, x.device)
            cols, wx, anchor_x = _source_coords(in_w, out_w, k, dtype, x.device)
            spacing_y = spacing_x = None
        anchors = ((anchor_y, spacing_y), (anchor_x, spacing_x))

        # Floating-type pooling: the texture feature at the top-left neighbour of each projected point.
        features = self._texture_at(x, anchors)
        # Relative-distance map: the K*K separable interpolation weights, (1, K*K, h, w), row-major taps.
        distance = _distance_map(wy, wx) if symbolic else _cached_distance_map(in_h, in_w, out_h, out_w, k, dtype,
                                                                               x.device)  # fmt: skip
        if amp:  # the rest in float32 (see the module docstring)
            return in_float32(lambda t: self._resample(t, features.to(distance.dtype), distance, rows, cols), x)
        return self._resample(x, features, distance, rows, cols)

    def _texture_at(self, x: Tensor, anchors: tuple[tuple[Tensor, tuple[int, int] | None], ...]) -> Tensor:
        """The texture features at the anchors: ``texture(x)[..., anchor_y, :][..., anchor_x]``.

        The last 3x3 convolution (and its ReLU) is evaluated only where it is read: along an axis whose anchors
        are evenly spaced (``start + step * i``, as at every integer down-scaling factor) it runs at that stride
        on the input cropped to start at the first anchor, which is the same sum over the same neighbours; along
        any other axis at every position, then selected.
        """
        *body, last, relu = self.texture
        h = x
        for layer in body:
            h = layer(h)
        stride, padding, selects = [], [], []
        for axis, (anchor, spacing) in zip((-2, -1), anchors, strict=True):
            start, step = spacing if spacing is not None else (0, 1)
            pad = 1 if start == 0 else 0  # the 3x3 window reaches one row before the first anchor
            if offset := start - 1 + pad:
                h = h.narrow(axis, offset, h.shape[axis] - offset)
            stride.append(step)
            padding.append(pad)
            selects.append(None if spacing is not None else anchor)
        y = relu(F.conv2d(h, last.weight, last.bias, tuple(stride), tuple(padding)))
        for axis, (anchor, _), select in zip((-2, -1), anchors, selects, strict=True):
            y = y.index_select(axis, select) if select is not None else y.narrow(axis, 0, anchor.numel())
        return y

    def _resample(self, x: Tensor, features: Tensor, distance: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """The coefficients from ``concat(features, distance)`` and the weighted sum of ``x``'s neighbours.

        The 1x1 convolution over the concatenation is computed as the sum of its two parts, the features' and
        the distance map's; the latter is the same for every image, so it is computed once, without a batch.
        """
        k, out_h, out_w = self.neighbors, distance.shape[-2], distance.shape[-1]
        c = features.shape[1]
        weight, bias = self.coefficients.weight, self.coefficients.bias
        shift = torch.einsum("ok,khw->ohw", weight[:, c:, 0, 0].to(features.dtype), distance[0].to(features.dtype))
        a = torch.nn.functional.conv2d(features, weight[:, :c], bias) + shift
        if self.normalize == "sigmoid":
            a = torch.sigmoid(a)
            a = a / a.sum(dim=1, keepdim=True)
        elif self.normalize == "softmax":
            a = torch.softmax(a, dim=1)

        if counting_flops():  # the weighted sum of neighbours: k * k multiply-adds per output value
            with counted_by_formula(lambda: 2 * x.shape[0] * x.shape[1] * out_h * out_w * k * k):
                return _weighted_sum(x, a, rows, cols, k)
        return _weighted_sum(x, a, rows, cols, k)


def _weighted_sum(x: Tensor, a: Tensor, rows: Tensor, cols: Tensor, k: int) -> Tensor:
    """``sum_ij a_ij * x[rows_i, cols_j]``: each output pixel from its ``k x k`` input neighbours."""
    out = None
    for i in range(k):
        band = x.index_select(-2, rows[:, i])
        for j in range(k):
            term = a[:, i * k + j : i * k + j + 1] * band.index_select(-1, cols[:, j])
            out = term if out is None else out + term
    return out
