"""The compiled uint8 path (resizers/uint8_kernels.py) against Pillow over a grid of sizes and methods.

Contiguous ``(B, C, H, W)`` / ``(C, H, W)`` uint8 CPU tensors (what ``torchvision.io.decode_*`` gives) take the
compiled passes: up- and down-scaling, odd sizes, 1-pixel edges, random and saturated images. BICUBIC and LANCZOS
run Pillow's fixed-point arithmetic in Pillow's order, so they equal Pillow; BILINEAR and BOX round once (vertical
pass first, the cheap order for planar data), within one grey level of Pillow.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import taskresize.resizers
from taskresize import resize
from taskresize.resizers import classic

from imaging import to_array, to_tensor

PILLOW = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}
# (input h, w) -> output (h, w): down, up, mixed, odd, one-pixel inputs and outputs, strong factors
CASES = [
    ((37, 53), (224, 224)),
    ((224, 224), (37, 53)),
    ((61, 47), (29, 95)),
    ((97, 131), (13, 262)),
    ((1, 29), (5, 7)),
    ((29, 1), (3, 11)),
    ((17, 23), (1, 1)),
    ((17, 23), (1, 9)),
    ((250, 333), (7, 5)),
    ((3, 2), (2, 3)),
    ((480, 640), (224, 224)),
    ((640, 100), (50, 90)),
]


def _image(h: int, w: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    if kind == "saturated":
        return (rng.random((h, w, 3)) < 0.5).astype(np.uint8) * 255
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pillow(img: np.ndarray, size, method: str) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), PILLOW[method]))


@pytest.mark.parametrize("kind", ["random", "saturated"])
@pytest.mark.parametrize("method", list(PILLOW))
@pytest.mark.parametrize(("in_size", "size"), CASES, ids=[f"{a[0]}x{a[1]}-{b[0]}x{b[1]}" for a, b in CASES])
def test_planar_uint8_matches_pillow_within_one_grey_level(in_size, size, method, kind):
    img = _image(*in_size, kind)
    x = to_tensor(img)
    assert x.is_contiguous()
    y = resize(x, size, method)
    assert y.dtype == torch.uint8 and y.shape == (1, 3, *size) and y.is_contiguous()
    diff = np.abs(to_array(y).astype(int) - _pillow(img, size, method).astype(int))
    assert diff.max() <= (1 if method in ("bilinear", "area") else 0)


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
@pytest.mark.parametrize("rows", range(1, 10))
def test_horizontal_pass_equals_pillow_for_every_row_count(rows, method):
    # the horizontal fixed-point pass takes four rows per step and repeats the last row in the last step
    img = _image(rows, 101, "random")
    assert np.array_equal(to_array(resize(to_tensor(img), (rows, 13), method)), _pillow(img, (rows, 13), method))


@pytest.mark.parametrize("method", list(PILLOW))
def test_planar_uint8_takes_the_compiled_path(method, monkeypatch):
    calls = []
    compiled = classic._compiled_uint8
    monkeypatch.setattr(classic, "_compiled_uint8", lambda *a: calls.append(a) or compiled(*a))
    x = to_tensor(_image(40, 50, "random"))
    planar = resize(x, (11, 13), method)
    resize(x[0], (11, 13), method)  # unbatched
    assert len(calls) == 2
    channels_last = resize(x.contiguous(memory_format=torch.channels_last), (11, 13), method)
    # torch has channels-last uint8 kernels for bilinear and bicubic only: the others are copied to planes
    compiled_channels_last = method in ("lanczos", "area")
    assert len(calls) == 2 + compiled_channels_last
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    if compiled_channels_last:
        assert torch.equal(channels_last, planar)
    resize(x.float(), (11, 13), method)  # the differentiable path
    resize(x, (11, 13), method, antialias=False)  # plain interpolation, as F.interpolate
    resize(x, (40, 50), method)  # no size change: a copy
    assert len(calls) == 2 + compiled_channels_last


@pytest.mark.parametrize("method", list(PILLOW))
def test_compiled_path_equals_the_torch_path_within_one_and_batches(method, monkeypatch):
    x = torch.from_numpy(np.stack([_image(45, 67, "random"), _image(45, 67, "saturated")])).permute(0, 3, 1, 2)
    x = x.contiguous()
    before = x.clone()
    fast = resize(x, (19, 31), method)
    assert torch.equal(x, before)  # input untouched
    assert torch.equal(fast[1:], resize(x[1:], (19, 31), method))  # batched == unbatched
    monkeypatch.setattr(classic, "_uint8_kernels", lambda: None)  # without numba: the torch path
    slow = resize(x, (19, 31), method)
    assert (fast.int() - slow.int()).abs().max() <= 1


@pytest.mark.parametrize("method", list(PILLOW))
@pytest.mark.parametrize("batch", [0, 2])
def test_interleaved_views_equal_the_planar_result(method, batch):
    # torch.from_numpy(np.asarray(image)).permute(2, 0, 1): area reads the interleaved rows, Lanczos is copied to
    # planes, bilinear and bicubic take torch's channels-last kernel (within one grey level of the planar result)
    images = np.stack([_image(45, 67, "random"), _image(45, 67, "saturated")])
    view = torch.from_numpy(images).permute(0, 3, 1, 2) if batch else torch.from_numpy(images[0]).permute(2, 0, 1)
    planar = resize(view.contiguous(), (19, 31), method)
    y = resize(view, (19, 31), method)
    assert y.shape == planar.shape and not y.is_contiguous() and y.stride()[-3] == 1  # channels-last out
    assert (y.int() - planar.int()).abs().max() <= (0 if method in ("lanczos", "area") else 1)


def test_channels_last_output_stays_channels_last():
    x = to_tensor(_image(40, 50, "random")).contiguous(memory_format=torch.channels_last)
    y = resize(x, (11, 13), "area")
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


def test_importing_taskresize_does_not_import_numba():
    code = "import sys, taskresize; assert 'numba' not in sys.modules, 'numba imported at import time'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_numba_a_warning_and_the_torch_path(monkeypatch):
    monkeypatch.setitem(sys.modules, "taskresize.resizers.uint8_kernels", None)  # import fails
    monkeypatch.delattr(taskresize.resizers, "uint8_kernels", raising=False)
    classic._uint8_kernels.cache_clear()
    try:
        x = to_tensor(_image(40, 50, "random"))
        with pytest.warns(RuntimeWarning, match="compiled uint8 resize passes are unavailable"):
            y = resize(x, (11, 13), "lanczos")
        assert np.abs(to_array(y).astype(int) - _pillow(_image(40, 50, "random"), (11, 13), "lanczos")).max() <= 1
    finally:
        classic._uint8_kernels.cache_clear()
