"""Classic resizers: differentiable, any size and aspect ratio, Pillow-exact with ``antialias=True``.

Conventions (the same for every method):

* Pixel centres sit at half-integers (``align_corners=False``), as in Pillow, OpenCV, TensorFlow 2 and
  ``F.interpolate``.
* ``antialias=True`` widens the filter by the down-scaling factor, exactly as Pillow's ``Image.resize`` does
  (BILINEAR, BICUBIC with a = -0.5, LANCZOS with a = 3, BOX for ``area``), renormalising the weights at the
  borders. Up-scaling uses the filter unwidened, again as Pillow. This is *not* Kornia's "antialias", which is a
  Gaussian pre-blur followed by plain interpolation.
* ``antialias=False`` is the plain interpolation of ``F.interpolate(..., align_corners=False)``: bilinear,
  bicubic (a = -0.75, border pixels replicated), area (``adaptive_avg_pool2d``). Lanczos without antialias
  evaluates the a = 3 kernel at the input sampling rate with Pillow's border handling.
* ``nearest`` picks the pixel whose centre is nearest (``floor((i + 0.5) * scale)``), as Pillow's NEAREST and
  ``F.interpolate(mode="nearest-exact")``; it never filters, whatever ``antialias`` says.

Float inputs stay float and are differentiable. A ``uint8`` input gives a ``uint8`` output: this is the
data-loader path. It rounds and clips between its two passes, as Pillow does, and runs them in Pillow's order
(:func:`pillow_vertical_first`), so it matches Pillow within one grey level even on saturated images, where bicubic
and Lanczos overshoot and the order of the passes decides what is clipped. A contiguous ``(B, C, H, W)`` uint8
tensor on a CPU (what ``torchvision.io.decode_*`` gives) takes compiled passes (:mod:`uint8_kernels`, numba, imported
on the first such call): bicubic and Lanczos in Pillow's fixed-point arithmetic and order, equal to Pillow;
bilinear and box vertically first with one rounding, within one grey level. The float path does not
clip between passes (clipping would break differentiability and is wrong for normalised inputs), so on images that
reach 0 or 255 it differs from Pillow by design where the filter overshoots.
CUDA has no uint8 bilinear or bicubic kernel: there a uint8 plain bilinear resize is computed in float32 and rounded
once, and an antialiased one takes the separable path (as lanczos and box do everywhere).

Under ``torch.compile`` the weight tables are built outside the graph, once per size, and taken as constants
(``torch.compiler.assume_constant_result``): every method compiles with ``fullgraph=True``, one graph per input and
output size (compile with ``dynamic=False`` to resize several sizes in one compiled module).

Under autocast (bf16 / fp16 mixed precision) the float paths still compute in float32: autocast would run the
banded matrix products in bf16, 8 bits of mantissa, far from Pillow. :func:`resize` then disables autocast, computes
a float16 / bfloat16 input in float32 and returns float32, as autocast's own float32 ops (softmax, losses) do; a
float32 or float64 input keeps its dtype, a uint8 input stays exact and uint8. Without autocast nothing changes (no
autocast context is entered, so traced and exported graphs are the plain ones), except that a float16 / bfloat16
input is resized in float32 and the result cast back to its dtype: the filters' taps in 8 or 11 bits of mantissa are
far from Pillow, and torch has no half-precision kernel for some filters on a CPU. In both cases a batch is
taken in slices of whole images (:data:`FLOAT32_SLICE` elements at most), so that the float32 copy of a large
low-precision input stays bounded; a resize is per image, so the result is the same, to the bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taskresize.flops import counted_by_formula, counting_flops
from taskresize.resizers.base import Resizer
from taskresize.resizers.registry import OutputSize, register_resizer
from taskresize.sizes import Size, to_size

METHODS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
LOW_PRECISION = (torch.float16, torch.bfloat16)
# Elements of a float16 / bfloat16 input copied to float32 at once (64 MiB): a learnable resizer's 16-channel
# full-resolution map at batch 64 and 448 px would otherwise take a 0.8 GB float32 copy on top of itself.
FLOAT32_SLICE = 2**24


def autocast_enabled(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device type (False for device types autocast does not know, e.g. meta)."""
    device_type = x.device.type
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def in_float32(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` computed in float32 where autocast is on: autocast disabled, a float16 / bfloat16 ``x`` cast to
    float32 (a float32, float64 or integer ``x`` as it is). Without autocast, plainly ``fn(x)``: no autocast context
    is entered, so what exporters trace is unchanged."""
    if not autocast_enabled(x):
        return fn(x)
    with torch.autocast(x.device.type, enabled=False):
        return fn(x.float() if x.dtype in LOW_PRECISION else x)


def _box(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _keys_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos3(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


# method -> (support radius, kernel), Pillow's filters (src/libImaging/Resample.c).
_PILLOW_FILTERS: dict[str, tuple[float, Callable[[float], float]]] = {
    "area": (0.5, _box),
    "bilinear": (1.0, _triangle),
    "bicubic": (2.0, _keys_cubic),
    "lanczos": (3.0, _lanczos3),
}


def _windows(in_size: int, out_size: int, method: str, antialias: bool) -> tuple[float, list[tuple[float, int, int]]]:
    """``(filterscale, [(centre, first, end), ...])``: the input window of each output pixel, as Pillow's."""
    support_radius = _PILLOW_FILTERS[method][0]
    scale = in_size / out_size
    filterscale = max(scale, 1.0) if antialias else 1.0
    support = support_radius * filterscale
    windows = []
    for i in range(out_size):
        center = (i + 0.5) * scale
        windows.append((center, max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)))
    return filterscale, windows


@lru_cache(maxsize=256)
def _taps(in_size: int, out_size: int, method: str, antialias: bool) -> int:
    """Multiply-adds of one resampling pass along an axis, summed over its output pixels."""
    if method == "area" and not antialias:  # adaptive average pooling's windows
        return sum(-(-(i + 1) * in_size // out_size) - i * in_size // out_size for i in range(out_size))
    return sum(hi - lo for _, lo, hi in _windows(in_size, out_size, method, antialias)[1])


def resize_flops(shape: Sequence[int], size: int | Sequence[int], method: str, antialias: bool = True) -> int:
    """FLOPs of :func:`resize` on a tensor of ``shape`` ``(..., H, W)``, by the convention of ``taskresize.flops``.

    A multiply-add counts 2, every tap of every pass. Separable resampling counts its passes in Pillow's order;
    torch's plain bilinear / bicubic (2x2 / 4x4 taps per output pixel) and plain area (a 2-D pooling window) are
    not separable; ``nearest`` only selects (0).
    """
    size = to_size(size)
    in_size = (int(shape[-2]), int(shape[-1]))
    planes = math.prod(int(d) for d in shape[:-2])
    if method == "nearest" or in_size == size:
        return 0
    if not antialias and method in ("bilinear", "bicubic"):
        return 2 * planes * size[0] * size[1] * (4 if method == "bilinear" else 16)
    if not antialias and method == "area":
        return 2 * planes * _taps(in_size[0], size[0], method, False) * _taps(in_size[1], size[1], method, False)
    extent = {-2: in_size[0], -1: in_size[1]}
    flops = 0
    for dim, length, out_length in _passes(in_size, size):
        other = extent[-1 if dim == -2 else -2]
        flops += 2 * planes * other * _taps(length, out_length, method, antialias)
        extent[dim] = out_length
    return flops


@lru_cache(maxsize=256)
def resample_weights(in_size: int, out_size: int, method: str, antialias: bool = True) -> tuple[Tensor, Tensor]:
    """Pillow's resampling coefficients for one axis (``precompute_coeffs`` in Resample.c).

    Args:
        in_size: input length along the axis.
        out_size: output length along the axis.
        method: ``area``, ``bilinear``, ``bicubic`` or ``lanczos``.
        antialias: widen the filter by the down-scaling factor (Pillow always does).

    Returns:
        ``(starts, weights)``: output pixel ``i`` is ``sum_k weights[i, k] * input[starts[i] + k]``. ``starts`` is
        int64 ``(out_size,)``, ``weights`` float64 ``(out_size, K)`` with ``K`` the longest window; shorter
        windows are padded with zero weights (their indices may run past the input: callers clamp them).
    """
    kernel = _PILLOW_FILTERS[method][1]
    filterscale, windows = _windows(in_size, out_size, method, antialias)
    taps = max(hi - lo for _, lo, hi in windows)
    starts = torch.empty(out_size, dtype=torch.int64)
    weights = torch.zeros(out_size, taps, dtype=torch.float64)
    used = 0
    ss = 1.0 / filterscale  # Pillow multiplies by the reciprocal: the same float64 operations, to the last bit
    for i, (center, lo, hi) in enumerate(windows):
        row = [kernel((j - center + 0.5) * ss) for j in range(lo, hi)]
        total = sum(row)
        if total != 0.0:
            row = [w / total for w in row]
        starts[i] = lo
        weights[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
        used = max(used, len(row))
    return starts, weights[:, :used].contiguous()


_MAX_BLOCKS = 64


@lru_cache(maxsize=256)
def _banded_plan(in_size: int, out_size: int, method: str, antialias: bool) -> tuple[list[int], Tensor]:
    """The resampling matrix of one axis cut into dense diagonal blocks.

    Output pixels are grouped in blocks of ``b`` consecutive pixels; block ``j`` reads the ``span`` input pixels
    from ``first[j]`` on. Returns ``(first, blocks)`` with ``blocks`` ``(nblocks, b, span)`` float64. ``b`` is
    chosen so that a block spans about two filter windows (at most ``_MAX_BLOCKS`` blocks): the products then do
    about twice the work of the filter's taps, where a dense matrix would do ``in_size / taps`` times more.
    """
    starts, weights = resample_weights(in_size, out_size, method, antialias)
    taps = weights.shape[1]
    b = max(round(taps * out_size / in_size) + 1, -(-out_size // _MAX_BLOCKS))
    b = min(b, out_size)
    nblocks = -(-out_size // b)
    first = starts[::b].clone()
    last = torch.stack([starts[min((j + 1) * b, out_size) - 1] for j in range(nblocks)]) + taps
    span = int((last - first).max())
    if span >= in_size:
        span = in_size
        first.zero_()
    else:
        first.clamp_(max=in_size - span)
    blocks = torch.zeros(nblocks, b, span, dtype=torch.float64)
    for o in range(out_size):
        j, row = divmod(o, b)
        offset = int(starts[o] - first[j])
        length = min(taps, span - offset)  # zero-weight padding taps may run past the block
        blocks[j, row, offset : offset + length] = weights[o, :length]
    return tuple(first.tolist()), blocks


@lru_cache(maxsize=256)
def _cached_banded_plan_on(
    in_size: int, out_size: int, method: str, antialias: bool, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[int, ...], Tensor]:
    first, blocks = _banded_plan(in_size, out_size, method, antialias)
    with torch.inference_mode(False), torch.no_grad():  # usable by a later training step (see downsizenet)
        return first, blocks.to(device=device, dtype=dtype)


@torch.compiler.assume_constant_result
def _banded_plan_on(
    in_size: int, out_size: int, method: str, antialias: bool, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[int, ...], Tensor]:
    """:func:`_banded_plan` with its blocks on ``device`` in ``dtype``, kept there: no host-to-device copy (and
    sync) per axis and call on a GPU, no float64 conversion per call on a CPU. Built once per sizes, outside any
    ``torch.compile`` graph: the compiler takes the result as a constant (no graph break at the Python loops that
    build it, nothing rebuilt per call), so a compiled graph holds one input size (compile with ``dynamic=False``
    to resize several sizes with ``fullgraph=True``)."""
    return _cached_banded_plan_on(in_size, out_size, method, antialias, device, dtype)


def _resample_axis(
    x: Tensor, dim: int, plan: tuple[tuple[int, ...], Tensor], out_size: int, dtype: torch.dtype
) -> Tensor:
    """Resample dim -1 or -2 of ``x`` ``(..., H, W)``, computing in ``dtype``.

    One small matrix product per block, on views of ``x``: no gather of the input (gathers are slow, and
    temporaries over 32 MiB are fresh pages from the kernel on every call), and the block products run at BLAS
    speed. A uint8 ``x`` is converted block by block for the same reason. Autograd handles the backward pass.
    """
    first, blocks = plan
    span = blocks.shape[-1]

    def window(f: int) -> Tensor:  # the input a block reads: row slices for the horizontal pass
        return x[..., f : f + span] if dim == -1 else x[..., f : f + span, :]

    if x.dtype == dtype:
        inputs = (window(f) for f in first)
    else:  # uint8: converted block by block into one buffer, reused (fresh pages for every block cost more)
        buffer = torch.empty(window(first[0]).shape, dtype=dtype, device=x.device)
        inputs = (buffer.copy_(window(f)) for f in first)
    if dim == -1:
        pieces = [torch.matmul(rows, block.T) for rows, block in zip(inputs, blocks, strict=True)]
        return torch.cat(pieces, dim=-1)[..., :out_size]
    pieces = [torch.matmul(block, columns) for columns, block in zip(inputs, blocks, strict=True)]
    return torch.cat(pieces, dim=-2)[..., :out_size, :]


def pillow_vertical_first(in_size: Size, out_size: Size) -> bool:
    """Whether Pillow runs the vertical pass before the horizontal one for this resize.

    Pillow 13 (``ImagingResampleInner`` in ``Resample.c``, python-pillow/Pillow#9549) resizes vertically first
    when the height shrinks by more than twice as many pixels as the width does; otherwise horizontally first,
    as every earlier Pillow. On uint8 images the order matters: each pass rounds and clips, so where a filter
    overshoots (bicubic, Lanczos) the two orders differ by up to tens of grey levels.
    """
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    return out_h < in_h and in_h - out_h > 2 * (in_w - out_w)


def _passes(in_size: Size, out_size: Size) -> list[tuple[int, int, int]]:
    """``(dim, in_length, out_length)`` of each pass that changes the size, in Pillow's order."""
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    passes = [(-1, in_w, out_w), (-2, in_h, out_h)]
    if pillow_vertical_first(in_size, out_size):
        passes.reverse()
    return [p for p in passes if p[1] != p[2]]


def _separable_pillow(x: Tensor, size: Size, method: str, antialias: bool) -> Tensor:
    """Pillow's two-pass resampling, in Pillow's order of the passes.

    uint8 follows Pillow: the result of each pass is rounded and clipped to [0, 255] before the next one.
    (Pillow's 22-bit fixed-point coefficients are not emulated: float32 arithmetic can round a pixel the
    other way, so uint8 results are within one grey level of Pillow.)
    """
    integer = x.dtype == torch.uint8
    dtype = torch.float32 if integer else x.dtype
    y = x
    for dim, in_size, out_size in _passes(tuple(x.shape[-2:]), size):
        plan = _banded_plan_on(in_size, out_size, method, antialias, y.device, dtype)
        y = _resample_axis(y, dim, plan, out_size, dtype)
        if integer:
            y = torch.floor_(y + 0.5).clamp_(0, 255)
        y = y.contiguous()
    if y is x:
        return x.clone()
    return y.to(torch.uint8) if integer else y


# Filters without negative lobes: nothing is clipped, so the compiled path may take the cheap order of the passes
# and round once (within one grey level of Pillow); the others follow Pillow's order and arithmetic exactly.
_NON_NEGATIVE = ("bilinear", "area")
_COMPILED = ("bilinear", "area", "bicubic", "lanczos")
_NO_TORCH_UINT8 = ("area", "lanczos")  # no uint8 kernel in torch: its channels-last inputs are copied to planes
_PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images


@lru_cache(maxsize=256)
def _compiled_plan(in_size: int, out_size: int, method: str, fixed: bool) -> tuple[Any, Any]:
    """``(first, coeffs)`` of one axis for :mod:`uint8_kernels`: int64 ``(out_size,)`` and ``(out_size, K)``, int32
    22-bit fixed point as Pillow's ``normalize_coeffs_8bpc`` (``fixed``) or float32. Every window is padded with
    zero weights to the same ``K`` (a multiple of 8 where the input allows) and shifted to end inside the input."""
    starts, weights = resample_weights(in_size, out_size, method)
    taps = min(-(-weights.shape[1] // 8) * 8, in_size)
    first = starts.clamp(max=in_size - taps)
    if fixed:  # normalize_coeffs_8bpc: round half away from zero
        one = 1 << _PRECISION_BITS
        weights = torch.where(weights < 0, -0.5 + weights * one, 0.5 + weights * one).trunc()
    coeffs = torch.zeros(out_size, taps, dtype=torch.int32 if fixed else torch.float32)
    for i in range(out_size):
        offset = int(starts[i] - first[i])
        length = min(weights.shape[1], taps - offset)  # the zero weights padding a short window may not fit
        coeffs[i, offset : offset + length] = weights[i, :length].to(coeffs.dtype)
    return first.numpy(), coeffs.numpy()


@lru_cache(maxsize=1)
def _uint8_kernels() -> Any:
    """The compiled passes (imported on first use: numba takes a second to import); None, with a warning, where
    numba is missing or cannot compile (e.g. no writable cache directory): uint8 then takes the torch path."""
    try:
        from taskresize.resizers import uint8_kernels
    except (ImportError, RuntimeError) as error:  # numba is a dependency: a broken install or a read-only cache
        warnings.warn(
            f"taskresize: the compiled uint8 resize passes are unavailable ({error}); uint8 resizes take the slower "
            "torch path (install numba, or set NUMBA_CACHE_DIR to a writable folder)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return uint8_kernels


def kernel_device(x: Tensor) -> str:
    """The device type whose kernels run on ``x``: ``x.device.type``. The one place the resizers ask which device
    they run on (to pick a kernel that exists there); tests of the CUDA route on a CPU replace it."""
    return x.device.type


def _compiled_fits(x: Tensor, size: Size, method: str, antialias: bool) -> bool:
    """Whether the compiled uint8 path runs this resize: a uint8 tensor on a CPU, Pillow's antialiased filters, a
    change of size; contiguous (B, C, H, W), or channels-last for the filters torch has no uint8 kernel for (torch's
    channels-last bilinear and bicubic kernels are the faster ones there)."""
    planar = x.is_contiguous() or (method in _NO_TORCH_UINT8 and x.is_contiguous(memory_format=torch.channels_last))
    return (
        x.dtype == torch.uint8
        and kernel_device(x) == "cpu"
        and antialias
        and method in _COMPILED
        and planar
        and tuple(x.shape[-2:]) != size
        and _uint8_kernels() is not None
    )


def _compiled_uint8(x: Tensor, size: Size, method: str) -> Tensor:
    """Resize a contiguous uint8 ``x`` ``(B, C, H, W)`` with the compiled passes: for bilinear / box vertically
    first in float32 with one rounding; for bicubic / Lanczos Pillow's arithmetic in Pillow's order (equal to
    Pillow)."""
    b, c, h, w = x.shape
    kernels = _uint8_kernels()
    channels_last = not x.is_contiguous()  # read as interleaved rows or copied to planes; back to channels-last
    interleaved = x.permute(0, 2, 3, 1).numpy() if channels_last else None
    if method in _NON_NEGATIVE:
        plans = [None if n == m else _compiled_plan(n, m, method, False) for n, m in ((h, size[0]), (w, size[1]))]
        rows = interleaved.reshape(b, h, w * c) if channels_last else x.numpy().reshape(b * c, h, w)
        out = kernels.resample_float(rows, *plans, channels=c if channels_last else 0)
    else:
        planes = kernels.planar(interleaved) if channels_last else x.numpy()
        passes = [(dim, _compiled_plan(n, m, method, True)) for dim, n, m in _passes((h, w), size)]
        out = kernels.resample_fixed(planes.reshape(b * c, h, w), passes)
    y = torch.from_numpy(out).reshape(b, c, *size)
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"resize expects a torch.Tensor of shape (B, C, H, W) or (C, H, W), got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(f"resize expects a tensor of shape (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise TypeError(f"resize expects a floating-point or uint8 tensor, got {x.dtype}")
    if min(x.shape[-2:]) == 0:
        raise ValueError(f"cannot resize an empty image of shape {tuple(x.shape)}")


def _upscales(x: Tensor, size: Size) -> bool:
    return size[0] > x.shape[-2] or size[1] > x.shape[-1]


def _via_float(x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Run ``fn`` in float32 on a uint8 tensor and round back (for kernels torch has no uint8 version of)."""
    return fn(x.float()).round_().clamp_(0, 255).to(torch.uint8)


def resize(x: Tensor, size: int | Sequence[int], method: str = "bilinear", antialias: bool = True) -> Tensor:
    """Resize images with a classic filter.

    Args:
        x: ``(B, C, H, W)`` or ``(C, H, W)``, floating point (differentiable) or ``uint8`` (data-loader path).
        size: output ``(h, w)``, or one int for a square output.
        method: one of ``nearest``, ``bilinear``, ``bicubic``, ``area``, ``lanczos``.
        antialias: Pillow's antialiasing when down-scaling (see the module docstring).

    Returns:
        The resized tensor, same dtype, same number of dimensions, channels-last if ``x`` was. Under autocast it is
        computed in float32, and a float16 / bfloat16 ``x`` gives a float32 result (see the module docstring).
    """
    _check_input(x)
    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}; known: {', '.join(METHODS)}")
    size = to_size(size)
    if x.dtype in LOW_PRECISION and not autocast_enabled(x):  # float32 inside, returned in x's dtype (see above)
        return _in_slices(lambda part: resize(part.float(), size, method, antialias).to(x.dtype), x)

    def compute(t: Tensor) -> Tensor:
        return in_float32(lambda u: _resize(u, size, method, antialias), t)

    if x.dtype in LOW_PRECISION:  # under autocast: computed in float32, in slices of the batch (see above)
        compute = partial(_in_slices, compute)
    if not counting_flops():
        return compute(x)
    with counted_by_formula(lambda: resize_flops(x.shape, size, method, antialias)):
        return compute(x)


def _in_slices(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn`` applied to slices of the batch ``x`` ``(B, C, H, W)`` of whole images, each of at most
    :data:`FLOAT32_SLICE` elements (one image at least), the results concatenated; ``fn(x)`` when one slice holds
    the batch. Only for computations that treat each image on its own, as a classic resize does."""
    per_slice = max(1, FLOAT32_SLICE // max(1, math.prod(x.shape[1:])))
    if x.dim() != 4 or per_slice >= len(x):
        return fn(x)
    y = torch.cat([fn(part) for part in x.split(per_slice)])
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


# The largest down-scaling factors torch's antialiased CUDA kernels take (their weights live in shared memory:
# pytorch/vision#7671); beyond them, and for uint8 (no CUDA kernel), the separable path computes the same filter.
CUDA_ANTIALIAS_LIMIT = {"bilinear": 90.0, "bicubic": 45.0}


def torch_kernel_fits(
    device_type: str, dtype: torch.dtype, in_size: Size, size: Size, method: str, antialias: bool = True
) -> bool:
    """Whether torch's ``F.interpolate`` kernel (antialiased or plain) runs this resize on ``device_type``: CUDA
    has no uint8 bilinear / bicubic kernel, plain or antialiased."""
    if device_type != "cuda":
        return True
    if dtype == torch.uint8:
        return False
    factor = max(in_size[0] / size[0], in_size[1] / size[1])
    return not antialias or factor <= CUDA_ANTIALIAS_LIMIT[method]


def _plain_fits(x: Tensor, size: Size, method: str, antialias: bool = False) -> bool:
    return torch_kernel_fits(kernel_device(x), x.dtype, tuple(x.shape[-2:]), size, method, antialias)


def _resize(x: Tensor, size: Size, method: str, antialias: bool) -> Tensor:
    batched = x.dim() == 4
    if not batched:
        x = x.unsqueeze(0)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    integer = x.dtype == torch.uint8

    if method == "nearest":
        y = F.interpolate(x, size=size, mode="nearest-exact")
    elif _compiled_fits(x, size, method, antialias):
        y = _compiled_uint8(x, size, method)
    elif method == "area" and not antialias:
        y = _via_float(x, lambda t: F.adaptive_avg_pool2d(t, size)) if integer else F.adaptive_avg_pool2d(x, size)
    elif method == "bicubic" and integer and not antialias:  # torch has no uint8 bicubic kernel without antialias
        y = _via_float(x, lambda t: F.interpolate(t, size=size, mode="bicubic", align_corners=False))
    elif integer and not antialias and method == "bilinear" and not _plain_fits(x, size, method):
        y = _via_float(x, lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False))
    elif (
        (method == "bilinear" or (method == "bicubic" and not (integer and _upscales(x, size))))
        and _plain_fits(x, size, method, antialias)
        # torch 2.14's uint8 antialias kernel fails an internal assert on a 1 x 1 output of a contiguous input
        and not (integer and antialias and size == (1, 1))
    ):
        y = x
        # torch's kernel runs the horizontal pass first; a uint8 image rounds between the passes, so where Pillow
        # goes vertically first, so do we (one pass per call). Float results do not depend on the order.
        in_size = tuple(x.shape[-2:])
        steps = [size]
        if integer and antialias and pillow_vertical_first(in_size, size) and in_size[1] != size[1]:
            steps = [(size[0], in_size[1]), size]
        for step in steps:
            y = F.interpolate(y, size=step, mode=method, align_corners=False, antialias=antialias)
    else:
        # Lanczos, box, and uint8 bicubic up-scaling, where torch's uint8 kernel differs from Pillow by up to
        # 2 grey levels on saturated images.
        y = _separable_pillow(x, size, method, antialias)

    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    return y if batched else y.squeeze(0)


class ClassicResizer(Resizer):
    """Module twin of :func:`resize`: a fixed filter, no parameters.

    Registered as ``nearest``, ``bilinear``, ``bicubic``, ``area`` and ``lanczos``.
    """

    def __init__(self, method: str, output_size: int | tuple[int, int] = (224, 224), antialias: bool = True) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown resize method {method!r}; known: {', '.join(METHODS)}")
        super().__init__(output_size)
        self.method = method
        self.antialias = antialias

    not_config = ("method",)  # the registered name: one factory per method

    @property
    def resizer_name(self) -> str:  # type: ignore[override]
        return self.method

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize ``x`` ``(B, C, H, W)`` to ``size`` (default ``output_size``)."""
        return resize(x, self.target_size(size), self.method, self.antialias)


def _classic_factory(method: str) -> Callable[..., ClassicResizer]:
    def factory(output_size: OutputSize = (224, 224), antialias: bool = True) -> ClassicResizer:
        return ClassicResizer(method, output_size, antialias)

    factory.__name__ = factory.__qualname__ = f"{method}_resizer"
    factory.__doc__ = f"Classic {method} resizer (see :func:`taskresize.resize`)."
    return factory


for _method in METHODS:
    register_resizer(_method, learned=False)(_classic_factory(_method))
