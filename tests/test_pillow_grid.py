"""Pillow parity over a grid: every method x each axis down (strongly, mildly) / up / unchanged x three images.

uint8 results must be within one grey level of Pillow's ``Image.resize``; float64 results within 2e-3 (of 0-255)
of Pillow's float ("F" mode) resampling, which stores float32. Sizes are odd and factors fractional; the grid holds
both orders of Pillow's two passes (:func:`pillow_vertical_first`), which decide what a uint8 result clips.
"""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from taskresize import resize
from taskresize.resizers.classic import pillow_vertical_first

from imaging import to_array, to_tensor

PILLOW = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}
IN_H, IN_W = 97, 131
# per axis: strongly down (x0.13-0.14), mildly down (x0.5-0.8), up (x1.7-2.0), unchanged
HEIGHTS = {"down": 13, "mild": 50, "up": 165, "same": IN_H}
WIDTHS = {"down": 17, "mild": 104, "up": 262, "same": IN_W}
SIZES = [(HEIGHTS[a], WIDTHS[b]) for a, b in itertools.product(HEIGHTS, WIDTHS) if (a, b) != ("same", "same")]
SIZE_IDS = [f"h{a}-w{b}" for a, b in itertools.product(HEIGHTS, WIDTHS) if (a, b) != ("same", "same")]


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:IN_H, 0:IN_W]
    stripes = 128 + 127 * np.sin(xx * 1.3 + yy * 0.9)
    checker = ((xx + yy) % 2) * 255
    return {
        "random": rng.integers(0, 256, (IN_H, IN_W, 3), dtype=np.uint8),
        "saturated": (rng.random((IN_H, IN_W, 3)) < 0.5).astype(np.uint8) * 255,
        "high-frequency": np.clip(np.stack([stripes, checker, 255 - stripes], -1), 0, 255).astype(np.uint8),
    }


IMAGES = _images()


def pillow_uint8(img: np.ndarray, size, method) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), PILLOW[method]))


def pillow_float(img: np.ndarray, size, method) -> np.ndarray:
    channels = [Image.fromarray(img[..., c].astype(np.float32), mode="F") for c in range(img.shape[-1])]
    return np.stack([np.asarray(ch.resize((size[1], size[0]), PILLOW[method])) for ch in channels], axis=-1)


def test_the_grid_holds_both_orders_of_the_passes():
    orders = {pillow_vertical_first((IN_H, IN_W), size) for size in SIZES if IN_H not in size and IN_W not in size}
    assert orders == {True, False}


@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("method", list(PILLOW))
def test_uint8_within_one_grey_level_of_pillow(method, size, image):
    img = IMAGES[image]
    ours = resize(to_tensor(img), size, method, antialias=True)
    assert ours.dtype == torch.uint8 and ours.shape[-2:] == size
    diff = np.abs(to_array(ours).astype(int) - pillow_uint8(img, size, method).astype(int)).max()
    assert diff <= 1, f"{method} {IN_H}x{IN_W} -> {size[0]}x{size[1]} on {image}: {diff} grey levels"


@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("method", list(PILLOW))
def test_float_within_2e3_of_pillow_float(method, size, image):
    img = IMAGES[image]
    ours = to_array(resize(to_tensor(img).double(), size, method, antialias=True))
    np.testing.assert_allclose(ours, pillow_float(img, size, method), atol=2e-3, rtol=0)  # Pillow stores float32


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
def test_the_order_of_the_passes_matters_on_uint8(method):
    """Guards the test above: with the passes in the other order, uint8 bicubic / Lanczos miss Pillow by far."""
    img, size = IMAGES["random"], (HEIGHTS["mild"], WIDTHS["up"])
    assert pillow_vertical_first((IN_H, IN_W), size)
    x = to_tensor(img)
    width_first = resize(resize(x, (IN_H, size[1]), method), size, method)
    assert np.abs(to_array(width_first).astype(int) - pillow_uint8(img, size, method).astype(int)).max() > 3
