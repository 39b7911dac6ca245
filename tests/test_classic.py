"""Classic resizers: Pillow parity (float and uint8 paths), F.interpolate parity, gradients, shapes, errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from taskresize import resize
from taskresize.resizers.classic import METHODS, resample_weights

from imaging import synthetic_image, to_array, to_tensor

PILLOW = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}
IN_H, IN_W = 151, 223  # odd, non-square
DOWN = [(2, 2), (3.7, 3.7), (6.3, 6.3), (2, 3.7), (6.3, 2)]
UP = [(1 / 1.5, 1 / 1.5), (0.5, 0.5), (0.5, 1 / 1.5), (1 / 1.5, 3.7)]  # the last: up in H, down in W


def out_size(factors):
    return round(IN_H / factors[0]), round(IN_W / factors[1])


def pillow_resize(img: np.ndarray, size, method) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), PILLOW[method]))


# Bicubic and Lanczos up-scaling overshoot by more than 16 grey levels next to the test image's one-pixel
# lines, so Pillow's uint8 passes clip even inside [16, 239]: test_pillow_grid.py covers them (float and uint8).
ROUNDED_CASES = [(m, f) for m in PILLOW for f in DOWN] + [(m, f) for m in ("bilinear", "area") for f in UP]


@pytest.mark.parametrize(
    ("method", "factors"), ROUNDED_CASES, ids=lambda v: v if isinstance(v, str) else f"{v[0]:.2f}x{v[1]:.2f}"
)
def test_float_path_rounded_matches_pillow_within_one_grey_level(method, factors):
    img = synthetic_image(IN_H, IN_W, seed=1, low=16, high=239)
    size = out_size(factors)
    ours = resize(to_tensor(img).double(), size, method, antialias=True)
    ours = to_array(ours.round().clamp(0, 255)).astype(int)
    assert np.abs(ours - pillow_resize(img, size, method).astype(int)).max() <= 1


def test_saturated_float_path_differs_from_pillow_by_design():
    # Pillow clips to [0, 255] between its passes; the float path does not (documented). Bicubic overshoots on
    # hard 0/255 edges, so the unclipped float result must leave [0, 255] somewhere.
    img = synthetic_image(IN_H, IN_W, seed=2, low=0, high=255)
    ours = resize(to_tensor(img).double(), out_size((1 / 1.5, 1 / 1.5)), "bicubic")
    assert ours.min() < -0.5 or ours.max() > 255.5


@pytest.mark.parametrize("factors", DOWN + UP, ids=lambda f: f"{f[0]:.2f}x{f[1]:.2f}")
def test_nearest_matches_pillow_exactly(factors):
    img = synthetic_image(IN_H, IN_W, seed=3)
    size = out_size(factors)
    expected = np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.Resampling.NEAREST))
    for x in (to_tensor(img), to_tensor(img).float()):
        assert np.array_equal(to_array(resize(x, size, "nearest")).astype(np.uint8), expected)


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(40, 57), (150, 190), (97, 60)])
def test_without_antialias_equals_interpolate(method, size):
    x = torch.randn(2, 3, 97, 131)
    expected = F.interpolate(x, size=size, mode=method, align_corners=False)
    torch.testing.assert_close(resize(x, size, method, antialias=False), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(40, 57), (150, 190), (31, 131)])
def test_area_without_antialias_equals_interpolate_area(size):
    x = torch.randn(2, 3, 97, 131)
    torch.testing.assert_close(resize(x, size, "area", antialias=False), F.interpolate(x, size=size, mode="area"))


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "area", "lanczos"])
def test_uint8_without_antialias_is_the_rounded_float_result(method):
    img = to_tensor(synthetic_image(64, 80, seed=4, low=64, high=191))  # no overshoot past [0, 255]
    ours = resize(img, (27, 35), method, antialias=False)
    reference = resize(img.float(), (27, 35), method, antialias=False).round().clamp(0, 255)
    assert ours.dtype == torch.uint8
    assert (ours.float() - reference).abs().max() <= 1


def test_antialias_widens_the_filter_only_when_downscaling():
    x = torch.rand(1, 3, 60, 60, dtype=torch.float64)
    for method in ("bilinear", "bicubic", "lanczos", "area"):
        assert not torch.allclose(resize(x, 23, method, antialias=True), resize(x, 23, method, antialias=False))
    # Up-scaling: Pillow's lanczos does not widen, so with or without antialias it is the same filter.
    torch.testing.assert_close(resize(x, 90, "lanczos", antialias=True), resize(x, 90, "lanczos", antialias=False))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [(5, 4), (13, 17)])
def test_gradcheck_float64(method, antialias, size):
    x = torch.rand(1, 2, 9, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: resize(t, size, method, antialias), (x,))


@pytest.mark.parametrize("method", METHODS)
def test_unbatched_channels_last_and_input_untouched(method):
    x = torch.rand(2, 3, 41, 67)
    before = x.clone()
    batched = resize(x, (20, 30), method)
    assert torch.equal(x, before)
    torch.testing.assert_close(resize(x[1], (20, 30), method), batched[1])
    cl = resize(x.contiguous(memory_format=torch.channels_last), (20, 30), method)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, batched)


@pytest.mark.parametrize("method", METHODS)
def test_same_size_is_a_copy(method):
    x = torch.rand(1, 3, 20, 30)
    y = resize(x, (20, 30), method)
    torch.testing.assert_close(y, x)
    assert y.data_ptr() != x.data_ptr()


def test_pillow_weights_are_normalised_and_local():
    starts, weights = resample_weights(223, 35, "lanczos", True)
    torch.testing.assert_close(weights.sum(1), torch.ones(35, dtype=torch.float64))
    assert starts.min() >= 0 and starts.max() < 223
    # the filter is widened by the scale: 3 lobes * 223/35 on each side
    assert weights.shape[1] >= 2 * 3 * 223 / 35


@pytest.mark.parametrize(
    ("x", "size", "method", "error"),
    [
        (torch.rand(3, 4), 2, "bilinear", ValueError),
        (torch.rand(1, 1, 3, 4, 5), 2, "bilinear", ValueError),
        (torch.zeros(1, 3, 4, 4, dtype=torch.int32), 2, "bilinear", TypeError),
        (torch.rand(1, 3, 4, 4), 2, "hermite", ValueError),
        (torch.rand(1, 3, 4, 4), 0, "bilinear", ValueError),
        (torch.rand(1, 3, 4, 4), (2, -1), "bilinear", ValueError),
        (torch.rand(1, 3, 0, 4), 2, "bilinear", ValueError),
    ],
)
def test_bad_arguments_raise_clear_errors(x, size, method, error):
    with pytest.raises(error):
        resize(x, size, method)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="bilinear, bicubic"):
        resize(torch.rand(1, 3, 4, 4), 2, "hermite")


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_large_factors_and_uint8_on_cuda_take_the_separable_path_which_computes_the_same(method):
    from taskresize.resizers.classic import CUDA_ANTIALIAS_LIMIT, _separable_pillow, torch_kernel_fits

    limit = CUDA_ANTIALIAS_LIMIT[method]
    assert torch_kernel_fits("cpu", torch.uint8, (4000, 4000), (8, 8), method)  # the CPU kernels take anything
    assert torch_kernel_fits("cuda", torch.float32, (int(limit * 10), 100), (10, 100), method)
    assert not torch_kernel_fits("cuda", torch.float32, (int(limit * 10) + 20, 100), (10, 100), method)
    assert not torch_kernel_fits("cuda", torch.uint8, (64, 64), (32, 32), method)
    x = torch.rand(2, 3, 500, 300, generator=torch.Generator().manual_seed(0))
    for size in ((5, 3), (123, 77)):  # the path it takes instead computes what torch's kernel computes
        expected = torch.nn.functional.interpolate(x, size=size, mode=method, antialias=True, align_corners=False)
        assert (_separable_pillow(x, size, method, True) - expected).abs().max() < 1e-5


@pytest.mark.gpu
def test_a_500x_downscale_runs_on_cuda():
    x = torch.rand(1, 3, 2000, 2000, device="cuda")
    assert resize(x, (4, 4), "bicubic").shape == (1, 3, 4, 4)
    image = torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8)
    on_cuda, on_cpu = resize(image.cuda(), (20, 30), "bilinear").cpu(), resize(image, (20, 30), "bilinear")
    assert (on_cuda.int() - on_cpu.int()).abs().max() <= 1  # both within 1 grey level of Pillow


class Float32Tensors(TorchDispatchMode):
    """Records the element count of every float32 tensor an operation returns while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                self.sizes.append(t.numel())
        return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [(9, 14), (40, 61)], ids=["down", "up"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("autocast", [True, False], ids=["autocast", "plain"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["planar", "channels_last"])
def test_low_precision_inputs_are_resized_in_slices_of_the_batch_bounded_and_to_the_bit(
    monkeypatch, method, antialias, size, dtype, autocast, channels_last
):
    """A float16 / bfloat16 batch is copied to float32 a slice at a time (at most FLOAT32_SLICE elements), with the
    same result and gradient, to the bit, as the whole batch at once."""
    from taskresize.resizers import classic

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 24, 35, generator=g).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    limit = 2 * x[0].numel() + 1  # slices of 2, 2 and 1 images
    weights = None

    def run(slice_elements):
        nonlocal weights
        monkeypatch.setattr(classic, "FLOAT32_SLICE", slice_elements)
        leaf = x.clone().requires_grad_(True)
        recorder = Float32Tensors()
        with torch.autocast("cpu", dtype=dtype, enabled=autocast), recorder:
            y = resize(leaf, size, method, antialias)
        if weights is None:
            weights = torch.randn(y.shape, generator=g)
        (y.float() * weights).sum().backward()
        return y.detach(), leaf.grad, recorder.sizes

    whole, whole_grad, _ = run(x.numel())
    sliced, sliced_grad, created = run(limit)
    assert sliced.dtype == whole.dtype == (torch.float32 if autocast else dtype)
    assert torch.equal(sliced, whole) and sliced.stride() == whole.stride()
    assert torch.equal(sliced_grad, whole_grad)
    assert max(created) <= limit + whole.numel(), (max(created), limit, whole.numel())
    assert x.numel() not in created  # never a float32 copy of the whole batch (up-scaling included)
