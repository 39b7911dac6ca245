"""bf16 mixed precision: what must stay float32 under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Each test compares the autocast result with the float32 computation at a tolerance bf16 (8 bits of mantissa,
relative error ~4e-3) cannot meet.
"""

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

from taskresize import MullerResizer, resize
from taskresize.resizers.downsizenet import DownsizeNet
from taskresize.training.tasks.iqa import mean_score


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize(
    ("method", "antialias"),
    [("lanczos", True), ("lanczos", False), ("area", True), ("bicubic", True), ("bilinear", True),
     ("bilinear", False), ("bicubic", False), ("area", False), ("nearest", True)],
)  # fmt: skip
@pytest.mark.parametrize("size", [(23, 41), (90, 150)])  # down and up
def test_classic_float_resize_is_float32_under_autocast(method, antialias, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 61, 77)
    reference = resize(x, size, method, antialias)
    with bf16_autocast():
        y = resize(x, size, method, antialias)
        y_low = resize(x.bfloat16(), size, method, antialias)  # an input autocast made bf16
    assert y.dtype == torch.float32 and y_low.dtype == torch.float32
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_low, resize(x.bfloat16().float(), size, method, antialias), rtol=1e-5, atol=1e-5)


def test_classic_lanczos_in_autocast_matches_float32_tightly():
    """The banded matrix products: in bf16 they are off by ~1e-2 on unit-variance images."""
    torch.manual_seed(1)
    x = torch.randn(1, 3, 200, 160, requires_grad=True)
    with bf16_autocast():
        y = resize(x, (64, 48), "lanczos")
    assert (y - resize(x, (64, 48), "lanczos")).abs().max() < 1e-5
    y.sum().backward()  # differentiable through the float32 path
    assert x.grad is not None and x.grad.dtype == torch.float32


@pytest.mark.parametrize("method", ["lanczos", "bicubic", "bilinear", "area", "nearest"])
@pytest.mark.parametrize("size", [(23, 41), (90, 150)])
def test_classic_uint8_resize_is_unchanged_by_autocast(method, size):
    torch.manual_seed(2)
    x = torch.randint(0, 256, (1, 3, 61, 77), dtype=torch.uint8)
    with bf16_autocast():
        y = resize(x, size, method)
    assert y.dtype == torch.uint8
    assert torch.equal(y, resize(x, size, method))


def test_mean_score_is_float32_under_autocast():
    torch.manual_seed(3)
    p = (torch.randn(400, 10) * 0.5).softmax(-1)
    true = (torch.randn(400, 10) * 0.5).softmax(-1)
    reference = mean_score(p)
    with bf16_autocast():
        predicted, target = mean_score(p), mean_score(true)
        predicted_low = mean_score(p.bfloat16())
    assert predicted.dtype == torch.float32 and predicted_low.dtype == torch.float32
    assert predicted.unique().numel() >= 395
    torch.testing.assert_close(predicted, reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(predicted_low, mean_score(p.bfloat16().float()), rtol=1e-6, atol=1e-6)
    srcc, plcc = spearman_corrcoef(predicted, target), pearson_corrcoef(predicted, target)
    assert srcc.item() == pytest.approx(spearman_corrcoef(reference, mean_score(true)).item(), abs=1e-6)
    assert plcc.item() == pytest.approx(pearson_corrcoef(reference, mean_score(true)).item(), abs=1e-6)


@pytest.mark.parametrize(("interpolation", "antialias"), [("bilinear", False), ("lanczos", True)])
def test_muller_bands_are_float32_under_autocast(interpolation, antialias):
    torch.manual_seed(4)
    m = MullerResizer((40, 57), layers=2, interpolation=interpolation, antialias=antialias)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([8.0, -6.0]))  # large multiples of the bands, so their errors show
        m.bias.copy_(torch.tensor([0.1, -0.2]))
    x = torch.rand(2, 3, 97, 131)
    reference = m(x)
    with bf16_autocast():
        y = m(x)
        y_low = m(x.bfloat16())
    assert y.dtype == torch.float32 and y_low.dtype == torch.float32
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_low, m(x.bfloat16().float()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("neighbors", "mode"), [(2, "bilinear"), (4, "bicubic")])
@pytest.mark.parametrize("size", [(23, 31), (90, 110)])
def test_downsizenet_interpolation_is_exact_under_autocast(neighbors, mode, size):
    torch.manual_seed(5)
    net = DownsizeNet.as_interpolation(neighbors, output_size=size)
    x = torch.rand(2, 3, 47, 53)
    reference = F.interpolate(x, size=size, mode=mode, align_corners=False)
    torch.testing.assert_close(net(x), reference, rtol=1e-5, atol=1e-5)
    with bf16_autocast():
        y = net(x)
        y_low = net(x.bfloat16())
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    assert y_low.dtype == torch.float32
    low_reference = F.interpolate(x.bfloat16().float(), size=size, mode=mode, align_corners=False)
    torch.testing.assert_close(y_low, low_reference, rtol=1e-5, atol=1e-5)


def test_downsizenet_coefficients_are_float32_under_autocast():
    """A trained-looking net: only the texture convolutions may differ (bf16), the rest is float32 and convex."""
    torch.manual_seed(6)
    net = DownsizeNet(output_size=(20, 24))
    x = torch.rand(2, 3, 50, 60)
    with bf16_autocast():
        y = net(x)
    assert y.dtype == torch.float32
    # a convex combination of the input pixels: within their range
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
