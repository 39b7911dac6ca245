"""MULLER: 2L scalars, exact base resize at zero init, the layer formula."""

import pytest
import torch
import torch.nn.functional as F

from taskresize import MullerResizer, resize
from taskresize.resizers.muller import gaussian_kernel1d


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_two_scalars_per_layer(layers):
    assert sum(p.numel() for p in MullerResizer(layers=layers).parameters()) == 2 * layers


def test_zero_init_is_exactly_the_base_resize():
    x = torch.randn(2, 3, 97, 131)
    for interpolation, antialias in [("bilinear", False), ("bicubic", True), ("lanczos", True)]:
        m = MullerResizer((40, 57), interpolation=interpolation, antialias=antialias)
        assert torch.equal(m(x), resize(x, (40, 57), interpolation, antialias))


@pytest.mark.parametrize(("interpolation", "antialias"), [
    ("bilinear", False), ("bilinear", True), ("bicubic", True), ("bicubic", False), ("area", True), ("lanczos", True),
    ("nearest", False),
])  # fmt: skip
@pytest.mark.parametrize(("in_hw", "out_hw"), [((97, 131), (40, 57)), ((64, 64), (16, 16)), ((23, 30), (50, 41))])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_layers_follow_the_formula(interpolation, antialias, in_hw, out_hw, layers):
    torch.manual_seed(layers)
    m = MullerResizer(out_hw, layers=layers, interpolation=interpolation, antialias=antialias)
    with torch.no_grad():
        m.weight.normal_(std=1.5)
        m.bias.normal_(std=0.2)
    x = torch.randn(2, 3, *in_hw, dtype=torch.float64)
    kernel2d = torch.outer(gaussian_kernel1d(5, 1.0), gaussian_kernel1d(5, 1.0)).expand(3, 1, 5, 5)

    def gauss(t):  # 5x5 kernel, replicate padding: the separable implementation must equal this
        return F.conv2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), kernel2d, groups=3)

    def base(t):
        return resize(t, out_hw, interpolation, antialias)

    expected, current = base(x), x
    for w, b in zip(m.weight.tolist(), m.bias.tolist(), strict=True):
        blurred = gauss(current)
        expected = expected + torch.tanh(w * base(blurred - current) + b)  # the paper's order: the band, resized
        current = blurred
    torch.testing.assert_close(m.double()(x), expected)
    # float32: as close as the paper's order computed in float32 (up to 1e-4 with these weights)
    torch.testing.assert_close(m.float()(x.float()), expected.float(), atol=2e-4, rtol=1e-5)


def test_gaussian_taps():
    taps = gaussian_kernel1d(5, 1.0)
    raw = torch.exp(-torch.tensor([4.0, 1.0, 0.0, 1.0, 4.0], dtype=torch.float64) / 2)
    torch.testing.assert_close(taps, raw / raw.sum())


@pytest.mark.parametrize("kwargs", [{"kernel_size": 4}, {"sigma": 0}, {"layers": 0}, {"interpolation": "x"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MullerResizer(**kwargs)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_flops_count_the_blurs_as_the_separable_filters_they_are(layers):
    from taskresize import count_flops
    from taskresize.resizers.classic import resize_flops

    m = MullerResizer(112, layers=layers)
    shape = (1, 3, 224, 224)
    resizes = (layers + 1) * resize_flops(shape, 112, m.interpolation, m.antialias)  # the base and each band
    blurs = layers * 2 * (2 * 5) * (3 * 224 * 224)  # two passes of 5 multiply-adds per value
    assert count_flops(m, shape) == resizes + blurs
