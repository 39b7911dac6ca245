"""Compiled (numba) resampling passes for planar uint8 images: the data-loader path of :mod:`classic`.

Images are planar ``(P, H, W)`` arrays (``P`` = batch x channels, what ``torchvision.io.decode_*`` gives). A pass
is planned as ``(first, coeffs)``: output pixel ``i`` reads the ``K`` input pixels from ``first[i]`` on with
weights ``coeffs[i]`` (every window padded with zero weights to the same ``K``, and ``first[i] + K`` never past the
input). The vertical pass runs along contiguous rows (one accumulator row per output row); the horizontal pass
takes the slice of ``K`` contiguous taps of each output pixel. Both loops are vectorised by the compiler (the
slice matters: indexing a row with ``first[i] + k`` would make numba emit a negative-index check per tap, which
stops the vectorisation, 3-6x slower).

Two arithmetics:

* ``*_fixed``: Pillow's own (``Resample.c``, 8-bit images): 22-bit fixed-point weights, ``2**21 + sum`` in
  integers, shifted right by 22 and clipped to [0, 255] after each pass. Run in Pillow's order of the passes, the
  result *equals* Pillow's.
* ``*_float``: float32 without rounding between the passes, rounded once at the end. For the filters without
  negative lobes (BILINEAR, BOX) nothing is ever clipped, so the order of the passes is free: :mod:`classic`
  takes the cheap one (vertical first) and the result is within one grey level of Pillow's (the exact filter
  output rounded once, where Pillow rounds twice).

This module imports numba, so :mod:`classic` imports it only on the first uint8 resize (``import taskresize`` stays
cheap), and ``cache=True`` keeps the compiled functions on disk between processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PRECISION_BITS = 22  # Pillow's: 32 - 8 (pixel) - 2 (headroom for the negative lobes)


@njit(cache=True, nogil=True, inline="always")
def _to_uint8(acc):  # pragma: no cover - compiled
    """A fixed-point sum -> its uint8 pixel: shifted back, clipped to [0, 255]."""
    v = acc >> PRECISION_BITS
    return 0 if v < 0 else (255 if v > 255 else v)


@njit(cache=True, nogil=True)
def vertical_fixed(src, dst, first, coeffs):  # pragma: no cover - compiled
    """uint8 ``(P, H, W)`` -> uint8 ``(P, n, W)``, Pillow's ``ImagingResampleVertical_8bpc``."""
    planes, _, width = src.shape
    out_h, taps = coeffs.shape
    acc = np.empty(width, dtype=np.int32)
    for p in range(planes):
        for j in range(out_h):
            acc[:] = 1 << (PRECISION_BITS - 1)
            lo = first[j]
            for k in range(taps):
                c = coeffs[j, k]
                if c != 0:
                    row = src[p, lo + k]
                    for x in range(width):
                        acc[x] += np.int32(row[x]) * c
            out = dst[p, j]
            for x in range(width):
                out[x] = _to_uint8(acc[x])


@njit(cache=True, nogil=True)
def horizontal_fixed(src, dst, first, coeffs):  # pragma: no cover - compiled
    """uint8 ``(P, H, W)`` -> uint8 ``(P, H, n)``, Pillow's ``ImagingResampleHorizontal_8bpc``.

    Four rows per step share each window's coefficients (the last step repeats the last row where the rows do not
    divide by four), and the sums are int32 as Pillow's: without the ``np.int32`` of each step numba widens the
    products to int64, half as many vector lanes."""
    planes, rows, _ = src.shape
    out_w, taps = coeffs.shape
    half = np.int32(1 << (PRECISION_BITS - 1))
    last = rows - 1
    for p in range(planes):
        for y0 in range(0, rows, 4):
            y1, y2, y3 = min(y0 + 1, last), min(y0 + 2, last), min(y0 + 3, last)
            for i in range(out_w):
                lo = first[i]
                hi = lo + taps
                w0, w1, w2, w3 = src[p, y0, lo:hi], src[p, y1, lo:hi], src[p, y2, lo:hi], src[p, y3, lo:hi]
                c = coeffs[i]
                a0 = a1 = a2 = a3 = half
                for k in range(taps):
                    ck = c[k]
                    a0 = np.int32(a0 + np.int32(w0[k]) * ck)
                    a1 = np.int32(a1 + np.int32(w1[k]) * ck)
                    a2 = np.int32(a2 + np.int32(w2[k]) * ck)
                    a3 = np.int32(a3 + np.int32(w3[k]) * ck)
                dst[p, y0, i] = _to_uint8(a0)
                dst[p, y1, i] = _to_uint8(a1)
                dst[p, y2, i] = _to_uint8(a2)
                dst[p, y3, i] = _to_uint8(a3)


@njit(cache=True, nogil=True)
def vertical_float(src, dst, first, coeffs):  # pragma: no cover - compiled
    """uint8 or float32 ``(P, H, W)`` -> float32 ``(P, n, W)``, no rounding."""
    planes, _, width = src.shape
    out_h, taps = coeffs.shape
    for p in range(planes):
        for j in range(out_h):
            acc = dst[p, j]
            acc[:] = 0.0
            lo = first[j]
            for k in range(taps):
                c = coeffs[j, k]
                if c != 0:
                    row = src[p, lo + k]
                    for x in range(width):
                        acc[x] += np.float32(row[x]) * c


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def horizontal_float(src, dst, first, coeffs):  # pragma: no cover - compiled
    """uint8 or float32 ``(P, H, W)`` -> float32 ``(P, H, n)``, no rounding (the sum of each window reassociated
    into vector lanes: float32 rounding differences, far below half a grey level)."""
    planes, rows, _ = src.shape
    out_w, taps = coeffs.shape
    for p in range(planes):
        for y in range(rows):
            row = src[p, y]
            out = dst[p, y]
            for i in range(out_w):
                window = row[first[i] : first[i] + taps]
                c = coeffs[i]
                acc = np.float32(0.0)
                for k in range(taps):
                    acc += np.float32(window[k]) * c[k]
                out[i] = acc


@njit(cache=True, nogil=True)
def to_planes(src, dst):  # pragma: no cover - compiled
    """Interleaved ``(B, H, W, C)`` -> planar ``(B, C, H, W)``, any dtype: a channels-last image's copy to planes
    (torch's strided copy of uint8 is several times slower)."""
    batch, height, _, channels = src.shape
    for b in range(batch):
        for y in range(height):
            row = src[b, y]
            for c in range(channels):
                out = dst[b, c, y]
                for x in range(out.shape[0]):
                    out[x] = row[x, c]


@njit(cache=True, nogil=True)
def round_to_uint8(src, dst):  # pragma: no cover - compiled
    """``dst = clip(floor(src + 0.5), 0, 255)`` elementwise, flat float32 -> uint8."""
    for i in range(src.shape[0]):
        v = np.floor(src[i] + np.float32(0.5))
        dst[i] = 0 if v < 0 else (255 if v > 255 else np.uint8(v))


def planar(x: np.ndarray) -> np.ndarray:
    """A planar ``(B, C, H, W)`` copy of the interleaved ``(B, H, W, C)`` array ``x``."""
    batch, height, width, channels = x.shape
    out = np.empty((batch, channels, height, width), dtype=x.dtype)
    to_planes(x, out)
    return out


def resample_fixed(x: np.ndarray, passes) -> np.ndarray:
    """Pillow's uint8 resampling of planar ``x`` ``(P, H, W)``: ``passes`` is ``[(dim, (first, coeffs)), ...]`` in
    Pillow's order (``dim`` -2 vertical, -1 horizontal), int32 22-bit weights; rounded and clipped after each."""
    y = x
    for dim, (first, coeffs) in passes:
        n = first.shape[0]
        if dim == -2:
            out = np.empty((y.shape[0], n, y.shape[2]), dtype=np.uint8)
            vertical_fixed(y, out, first, coeffs)
        else:
            out = np.empty((y.shape[0], y.shape[1], n), dtype=np.uint8)
            horizontal_fixed(y, out, first, coeffs)
        y = out
    return y


def resample_float(x: np.ndarray, vertical_plan, horizontal_plan, channels: int = 0) -> np.ndarray:
    """Resample uint8 ``x``: the vertical pass (if planned), then the horizontal one, float32 weights, no rounding
    in between, then rounded and clipped to uint8 once. ``x`` is planar ``(P, H, W)``, or with ``channels`` = C
    interleaved ``(B, H, W * C)``: the vertical pass treats every column alike, so it runs on the interleaved rows,
    and only its (smaller) result is copied to planes for the horizontal pass. The result is planar."""
    y = x
    if vertical_plan is not None:
        first, coeffs = vertical_plan
        out = np.empty((y.shape[0], first.shape[0], y.shape[2]), dtype=np.float32)
        vertical_float(y, out, first, coeffs)
        y = out
    if channels:
        batch, height, width = y.shape[0], y.shape[1], y.shape[2] // channels
        y = planar(y.reshape(batch, height, width, channels)).reshape(batch * channels, height, width)
    if horizontal_plan is not None:
        first, coeffs = horizontal_plan
        out = np.empty((y.shape[0], y.shape[1], first.shape[0]), dtype=np.float32)
        horizontal_float(y, out, first, coeffs)
        y = out
    result = np.empty(y.shape, dtype=np.uint8)
    round_to_uint8(y.reshape(-1), result.reshape(-1))
    return result
