"""The fused CPU inference path of the learned resizers computes what the ordinary operators compute."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskresize import count_flops, create_resizer
from taskresize.resizers import cpu_inference
from taskresize.resizers.cpu_inference import conv, fast_path, run
from taskresize.resizers.fuse import fold_batchnorms

RESIZERS = [
    ("learnable", {}),
    ("learnable", {"r": 2, "interpolation": "bicubic", "antialias": True}),
    ("learnable-strided", {}),
    ("downsizenet", {}),
    ("downsizenet", {"neighbors": 4, "normalize": "softmax"}),
    ("muller", {}),
]


def _trained(name: str, kwargs: dict, out_size) -> nn.Module:
    """A resizer whose BatchNorms hold statistics of their own (not the identity they start as)."""
    torch.manual_seed(0)
    resizer = create_resizer(name, output_size=out_size, **kwargs)
    if name == "muller":  # its scalars start at zero, where it is the plain resize
        with torch.no_grad():
            resizer.weight.normal_(std=1.0)
            resizer.bias.normal_(std=0.3)
    resizer.train()
    with torch.no_grad():
        resizer(torch.rand(4, 3, 90, 110))
    return resizer.eval()


@pytest.mark.parametrize(("name", "kwargs"), RESIZERS)
@pytest.mark.parametrize(("shape", "out_size"), [
    ((3, 3, 90, 110), (44, 56)),  # even output: the head by phases
    ((2, 3, 90, 110), (45, 37)),  # odd output: the head directly
    ((1, 3, 64, 64), (64, 64)),
    ((3, 3, 380, 370), (96, 90)),  # 16 maps of 380 x 370 exceed a chunk: image by image
    ((2, 3, 96, 66), (48, 22)),  # factors 2 and 3: the resizes by depthwise convolutions
])  # fmt: skip
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_fused_path_computes_what_the_ordinary_operators_compute(name, kwargs, shape, out_size, layout):
    resizer = _trained(name, kwargs, out_size)
    x = torch.rand(*shape).contiguous(memory_format=layout)
    expected = resizer(x)  # autograd on: the ordinary operators
    assert expected.requires_grad or name == "muller"
    with torch.no_grad():
        assert fast_path(x)
        fused_path = resizer(x)
        fused_copy = resizer.fuse()(x)
    torch.testing.assert_close(fused_path, expected.detach(), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(fused_copy, expected.detach(), atol=2e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(resizer(x), expected.detach(), atol=2e-5, rtol=1e-5)
        made_here = resizer.fuse()  # its weights are inference tensors, without a version counter
        for _ in range(2):
            torch.testing.assert_close(made_here(x), expected.detach(), atol=2e-5, rtol=1e-5)


def test_the_fused_path_stays_out_of_the_way_of_whatever_must_see_the_ordinary_operators(monkeypatch):
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert fast_path(x)
        assert not fast_path(x.double())
        assert not fast_path(x.to(torch.bfloat16))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fast_path(x)
    assert not fast_path(x)  # autograd records
    seen = []
    resizer = create_resizer("learnable", output_size=4)
    original = cpu_inference.fast_path

    def spy(t):
        seen.append(original(t))
        return seen[-1]

    monkeypatch.setattr("taskresize.resizers.learnable.fast_path", spy)
    count_flops(resizer, (1, 3, 8, 8))  # FLOP counting runs under no_grad, and must count convolutions
    assert seen and not any(seen)


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("out_channels", [1, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_a_convolution_to_few_channels_computed_by_output_phases_is_the_convolution(
    kernel, out_channels, bias, add, layout
):
    torch.manual_seed(kernel * 10 + out_channels)
    layer = nn.Conv2d(16, out_channels, kernel, padding=kernel // 2, bias=bias)
    x = torch.randn(2, 16, 24, 30).contiguous(memory_format=layout)
    other = torch.randn(2, out_channels, 24, 30).contiguous(memory_format=layout) if add else None
    with torch.no_grad():
        assert cpu_inference._phases_pay(x, layer, layer.stride, layer.padding, None)
        expected = layer(x) + (other if add else 0)
        torch.testing.assert_close(conv(x, layer, add=other), expected, atol=1e-5, rtol=1e-5)
        layer.weight.mul_(-2)  # changed in place: the phase weights are rebuilt
        expected = layer(x) + (other if add else 0)
        torch.testing.assert_close(conv(x, layer, add=other), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("out_channels", [1, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_in_training_the_phases_give_the_convolution_and_its_gradients(kernel, out_channels, bias, add, layout):
    torch.manual_seed(kernel * 10 + out_channels)
    layer = nn.Conv2d(16, out_channels, kernel, padding=kernel // 2, bias=bias)
    x = torch.randn(2, 16, 24, 30).contiguous(memory_format=layout).requires_grad_()
    other = torch.randn(2, out_channels, 24, 30).contiguous(memory_format=layout).requires_grad_() if add else None
    grad = torch.randn(2, out_channels, 24, 30)
    leaves = [t for t in (x, layer.weight, layer.bias, other) if t is not None]
    calls = []
    original = cpu_inference._conv_by_phases
    cpu_inference._conv_by_phases = lambda *a: calls.append(1) or original(*a)
    try:
        phased = conv(x, layer, add=other)
    finally:
        cpu_inference._conv_by_phases = original
    assert calls == [1] and not fast_path(x)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=kernel // 2) + (other if add else 0)
    torch.testing.assert_close(phased, expected, atol=1e-5, rtol=1e-5)
    got = torch.autograd.grad(phased, leaves, grad)
    want = torch.autograd.grad(expected, leaves, grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-5)


def test_the_phases_pass_gradcheck_in_float64():
    layer = nn.Conv2d(5, 3, 3, padding=1).double()
    x = torch.randn(1, 5, 6, 4, dtype=torch.float64, requires_grad=True)
    other = torch.randn(1, 3, 6, 4, dtype=torch.float64, requires_grad=True)
    assert cpu_inference._phases_pay(x, layer, layer.stride, layer.padding, None)
    assert torch.autograd.gradcheck(lambda *t: conv(t[0], layer, add=t[1]), (x, other))
    assert torch.autograd.gradcheck(cpu_inference._phased, (layer.weight, layer.bias))


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize(("in_channels", "bias"), [(3, True), (16, False)])
@pytest.mark.parametrize(("bands", "height"), [(2, 24), (3, 24), (4, 28), (3, 9)])
def test_a_weight_gradient_in_bands_of_rows_is_the_weight_gradient(kernel, in_channels, bias, bands, height):
    torch.manual_seed(kernel + bands)
    layer = nn.Conv2d(in_channels, 5, kernel, padding=kernel // 2, bias=bias).double()
    x = torch.randn(2, in_channels, height, 13, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    padding = (kernel // 2, kernel // 2)
    y = cpu_inference._WeightGradByRowBands.apply(x, layer.weight, layer.bias, padding, bands)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=padding)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
    grad = torch.randn_like(expected).contiguous(memory_format=torch.channels_last)
    leaves = [t for t in (x, layer.weight, layer.bias) if t is not None]
    for got, want in zip(
        torch.autograd.grad(y, leaves, grad), torch.autograd.grad(expected, leaves, grad), strict=True
    ):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_one_image_trains_under_autocast(dtype, monkeypatch):
    monkeypatch.setattr(
        torch, "get_num_threads", lambda: 4
    )  # more threads than images: bands, were it not for autocast
    layer = nn.Conv2d(3, 16, 7, padding=3)
    x = torch.rand(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=dtype):
        y = conv(x, layer, activation=nn.LeakyReLU(0.2))
    y.float().sum().backward()
    expected = torch.autograd.grad(F.leaky_relu(F.conv2d(x, layer.weight, layer.bias, padding=3), 0.2).sum(),
                                   layer.weight)[0]  # fmt: skip
    torch.testing.assert_close(layer.weight.grad, expected, rtol=0.05, atol=0.5)


def test_the_weight_gradient_in_bands_passes_gradcheck():
    layer = nn.Conv2d(3, 4, 3, padding=1).double()
    x = torch.randn(1, 3, 8, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    apply = cpu_inference._WeightGradByRowBands.apply
    assert torch.autograd.gradcheck(lambda *t: apply(*t, (1, 1), 2), (x, layer.weight, layer.bias))


def test_bands_only_where_a_chunk_has_fewer_images_than_threads(monkeypatch):
    layer = nn.Conv2d(3, 16, 7, padding=3)
    one = torch.rand(1, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    bands = cpu_inference._weight_grad_bands
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert bands(one, layer, (1, 1), (3, 3)) == 8  # 448 rows: 8 bands of 56
    assert bands(torch.rand(4, 3, 448, 448).contiguous(memory_format=torch.channels_last), layer, (1, 1), (3, 3)) == 2
    assert bands(torch.rand(1, 3, 449, 40).contiguous(memory_format=torch.channels_last), layer, (1, 1), (3, 3)) == 1
    assert bands(one, layer, (2, 2), (3, 3)) == 1  # strided
    assert bands(one.contiguous(), layer, (1, 1), (3, 3)) == 1  # not channels-last: the gradient would be copied
    with torch.no_grad():
        assert bands(one, layer, (1, 1), (3, 3)) == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert bands(one, layer, (1, 1), (3, 3)) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert bands(one, layer, (1, 1), (3, 3)) == 1


@pytest.mark.parametrize(("in_hw", "out_hw"), [
    ((64, 48), (32, 24)), ((63, 48), (21, 16)), ((64, 45), (32, 15)), ((30, 40), (30, 20)), ((33, 40), (11, 40)),
])  # fmt: skip
@pytest.mark.parametrize("channels", [3, 16])
@pytest.mark.parametrize("affine", ["none", "batchnorm", "fused"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_a_plain_bilinear_resize_at_factors_up_to_3_is_a_depthwise_convolution(in_hw, out_hw, channels, affine, layout):
    torch.manual_seed(channels)
    x = torch.randn(2, channels, *in_hw).contiguous(memory_format=layout)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    module = {"none": None, "batchnorm": bn.eval(), "fused": fold_batchnorms(bn)}[affine]
    expected = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)
    expected = expected if module is None else module(expected)
    with torch.no_grad():
        got = cpu_inference.resize_by_depthwise(x, out_hw, "bilinear", False, module)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("size", "method", "antialias", "affine"), [
    ((16, 12), "bilinear", False, nn.Identity()),  # an affine map it does not know
    ((16, 12), "bilinear", True, None), ((16, 12), "bicubic", False, None), ((16, 12), "area", False, None),
    ((8, 12), "bilinear", False, None),  # a factor of 4
    ((64, 48), "bilinear", False, None),  # up
    ((32, 24), "bilinear", False, None),  # no change
    ((13, 12), "bilinear", False, None),  # not an integer factor
])  # fmt: skip
def test_other_resizes_are_left_to_the_resize(size, method, antialias, affine):
    x = torch.randn(1, 4, 32, 24)
    with torch.no_grad():
        assert cpu_inference.resize_by_depthwise(x, size, method, antialias, affine) is None
    assert cpu_inference.resize_by_depthwise(x, (16, 12), "bilinear", False) is None  # autograd records


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Conv2d(16, 3, 7, padding=3)

    def forward(self, x):
        return conv(x, self.layer)


def test_the_phases_stay_out_of_flop_counting_and_tracing():
    x = torch.randn(1, 16, 8, 8, requires_grad=True)
    assert cpu_inference.unobserved_cpu(x)
    # the taps of the convolution itself (phases would count 2 * 16 * 64 * 12 * 16: the zero taps too)
    assert count_flops(_Head(), (1, 16, 8, 8)) == 2 * 16 * 49 * 3 * 64
    with torch.device("meta"):
        assert not cpu_inference.unobserved_cpu(torch.empty(1))


@pytest.mark.parametrize(("padding", "stride", "hw"), [(1, 1, (23, 30)), (0, 1, (24, 30)), (1, 2, (24, 30))])
def test_convolutions_outside_the_phase_case_run_directly(padding, stride, hw):
    layer = nn.Conv2d(16, 3, 3, padding=padding, stride=stride)
    x = torch.randn(1, 16, *hw)
    assert not cpu_inference._phases_pay(x, layer, layer.stride, layer.padding, None)
    with torch.no_grad():
        torch.testing.assert_close(conv(x, layer), layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(0.2), nn.LeakyReLU(0.01)])
@pytest.mark.parametrize("grad", [True, False])
def test_a_convolution_with_its_activation_or_sum(activation, grad):
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 16, 7, padding=3)
    x = torch.randn(2, 3, 20, 21).contiguous(memory_format=torch.channels_last)
    other = torch.randn(2, 16, 20, 21)
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(conv(x, layer, activation=activation), activation(layer(x)), atol=1e-5, rtol=0)
        torch.testing.assert_close(conv(x, layer, add=other), layer(x) + other, atol=1e-5, rtol=0)
        torch.testing.assert_close(conv(x, layer, stride=2, padding=1),
                                   F.conv2d(x, layer.weight, layer.bias, 2, 1), atol=1e-5, rtol=0)  # fmt: skip


def test_run_overwrites_only_its_own_intermediates():
    x = torch.randn(1, 4, 6, 6)
    kept = x.clone()
    layers = [nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 1), nn.ReLU()]
    with torch.no_grad():
        out = run(layers, x, add=x)
        expected = F.relu(layers[1](F.leaky_relu(kept, 0.2))) + kept
    assert torch.equal(x, kept)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("learnable", {}), ("learnable-strided", {"max_stride": 2}), ("learnable", {"interpolation": "bicubic"}),
])  # fmt: skip
def test_the_stem_in_bands_of_rows_is_the_stem(name, kwargs, monkeypatch):
    monkeypatch.setattr(cpu_inference, "_BANDED_ABOVE", 0)  # band every image (by default: maps above 32 MB)
    monkeypatch.setattr(cpu_inference, "_BAND_ELEMENTS", 16 * 40 * 7)  # a few rows per band, the last one short
    resizer = _trained(name, kwargs, (30, 41))
    for shape in [(1, 3, 90, 110), (1, 3, 61, 83), (1, 3, 90, 110)]:  # the kept buffer changes size and back
        x = torch.rand(*shape).contiguous(memory_format=torch.channels_last)
        expected = resizer(x).detach()
        calls = []
        original = cpu_inference.banded_pair

        def banded(*args, calls=calls, original=original):
            calls.append(original(*args))
            return calls[-1]

        monkeypatch.setattr("taskresize.resizers.learnable.banded_pair", banded)
        with torch.no_grad():
            torch.testing.assert_close(resizer(x), expected, atol=2e-5, rtol=1e-5)
            torch.testing.assert_close(resizer.fuse()(x), expected, atol=2e-5, rtol=1e-5)
        assert calls and all(c is not None for c in calls)  # every image went through the bands


def test_chunks_are_for_the_cpu_allocator_only():
    big = (4, 3, 600, 600)  # 16 maps of 600 x 600 per image: one image per chunk on a CPU
    assert [c.shape[0] for c in cpu_inference.image_chunks(torch.empty(big), 16)] == [1, 1, 1, 1]
    assert [c.shape[0] for c in cpu_inference.image_chunks(torch.empty(big, device="meta"), 16)] == [4]  # as a GPU
    assert [c.shape[0] for c in cpu_inference.image_chunks(torch.empty(64, 3, 32, 32), 16)] == [64]
