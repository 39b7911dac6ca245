"""DownsizeNet: the bilinear/bicubic special case, convexity of the output, coefficients, parameters."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from taskresize import DownsizeNet, count_flops, create_resizer

SIZES = [((37, 53), (17, 29)), ((37, 53), (23, 31)), ((41, 41), (60, 70)), ((20, 31), (7, 48)), ((9, 11), (4, 5))]


@pytest.mark.parametrize(("neighbors", "mode"), [(2, "bilinear"), (4, "bicubic")])
@pytest.mark.parametrize(("in_size", "out_size"), SIZES)
def test_special_case_reproduces_interpolate(neighbors, mode, in_size, out_size):
    torch.manual_seed(0)
    net = DownsizeNet.as_interpolation(neighbors, output_size=out_size)
    x = torch.randn(2, 3, *in_size)
    expected = F.interpolate(x, size=out_size, mode=mode, align_corners=False)
    # float32: torch computes the source positions in float32, DownsizeNet exactly in float64 (see the next tests)
    torch.testing.assert_close(net(x), expected, atol=5e-5, rtol=0)


def test_special_case_reproduces_interpolate_in_float64():
    net = DownsizeNet.as_interpolation(4, output_size=(23, 31)).double()
    x = torch.randn(1, 3, 37, 53, dtype=torch.float64)
    expected = F.interpolate(x, size=(23, 31), mode="bicubic", align_corners=False)
    torch.testing.assert_close(net(x), expected, atol=1e-12, rtol=0)


def neighbourhoods(in_len: int, out_len: int, neighbors: int) -> list[list[int]]:
    """Input indices around each output pixel's projected position (half-pixel centres), clamped."""
    result = []
    for i in range(out_len):
        src = (i + 0.5) * in_len / out_len - 0.5
        base = int(np.floor(max(src, 0.0) if neighbors == 2 else src))
        offsets = (0, 1) if neighbors == 2 else (-1, 0, 1, 2)
        result.append(sorted({min(max(base + o, 0), in_len - 1) for o in offsets}))
    return result


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    in_hw=st.tuples(st.integers(4, 24), st.integers(4, 24)),
    out_hw=st.tuples(st.integers(2, 30), st.integers(2, 30)),
    neighbors=st.sampled_from([2, 4]),
    normalize=st.sampled_from(["sigmoid", "softmax"]),
)
@example(seed=1, in_hw=(15, 4), out_hw=(11, 2), neighbors=2, normalize="sigmoid")  # 15 -> 11: row 5 is exactly at 7
def test_output_lies_within_its_input_neighbourhood(seed, in_hw, out_hw, neighbors, normalize):
    torch.manual_seed(seed)
    net = DownsizeNet(out_hw, layers=2, channels=4, neighbors=neighbors, normalize=normalize, in_channels=2)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=2.0)
    x = torch.randn(1, 2, *in_hw, dtype=torch.float64)
    y = net.double()(x)[0].detach().numpy()
    rows, cols = neighbourhoods(in_hw[0], out_hw[0], neighbors), neighbourhoods(in_hw[1], out_hw[1], neighbors)
    xs = x[0].numpy()
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            patch = xs[:, r][:, :, c]
            lo, hi = patch.min(axis=(1, 2)), patch.max(axis=(1, 2))
            assert np.all(y[:, i, j] >= lo - 1e-9) and np.all(y[:, i, j] <= hi + 1e-9)


def test_coefficients_sum_to_one_so_a_flat_image_stays_flat():
    torch.manual_seed(1)
    net = DownsizeNet((13, 17))
    x = torch.full((2, 3, 40, 50), 0.37)
    torch.testing.assert_close(net(x), torch.full((2, 3, 13, 17), 0.37))


def test_random_network_is_not_bilinear():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 40, 50)
    assert not torch.allclose(DownsizeNet((13, 17))(x), F.interpolate(x, size=(13, 17), mode="bilinear"), atol=1e-3)


@pytest.mark.parametrize(("in_hw", "out_hw", "last_at"), [
    ((64, 48), (32, 24), "anchors"),  # 2x: anchors 0, 2, 4, ...: the last convolution runs at stride 2
    ((64, 48), (16, 12), "anchors"),  # 4x: anchors 1, 5, 9, ...
    ((64, 48), (27, 20), "full"),  # uneven anchors: at every position, then selected
])  # fmt: skip
def test_parameters_and_flops(in_hw, out_hw, last_at):
    net = DownsizeNet(layers=3, channels=16, neighbors=2)
    convs = (3 * 16 * 9 + 16) + 2 * (16 * 16 * 9 + 16)
    assert sum(p.numel() for p in net.parameters()) == convs + (16 + 4) * 4 + 4
    (H, W), (h, w) = in_hw, out_hw
    last = h * w if last_at == "anchors" else H * W
    # texture convs at full resolution but the last, the 1x1 coefficient conv, the weighted sum of 2 x 2 neighbours
    expected = 2 * (H * W * (3 * 16 * 9 + 16 * 16 * 9) + last * 16 * 16 * 9 + h * w * (16 + 4) * 4 + h * w * 3 * 4)
    assert count_flops(net, (1, 3, H, W), size=(h, w)) == expected


def _texture_then_select(net: DownsizeNet, x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """The paper's floating-type pooling, literally: texture features everywhere, read at the anchors."""
    from taskresize.resizers.downsizenet import _source_coords

    _, _, anchor_y = _source_coords(x.shape[-2], out_hw[0], net.neighbors, x.dtype, x.device)
    _, _, anchor_x = _source_coords(x.shape[-1], out_hw[1], net.neighbors, x.dtype, x.device)
    return net.texture(x).index_select(-2, anchor_y).index_select(-1, anchor_x)


@pytest.mark.parametrize("neighbors", [2, 4])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize(("in_hw", "out_hw"), [
    ((64, 48), (32, 24)), ((64, 48), (16, 12)), ((60, 45), (20, 15)), ((37, 53), (17, 29)), ((41, 41), (60, 70)),
    ((20, 31), (7, 48)), ((9, 11), (4, 5)), ((48, 48), (48, 48)), ((50, 50), (10, 10)), ((7, 7), (1, 1)),
    ((33, 65), (11, 13)),
])  # fmt: skip
def test_texture_at_the_anchors_is_the_texture_everywhere_read_at_the_anchors(neighbors, layers, in_hw, out_hw):
    torch.manual_seed(0)
    net = DownsizeNet(out_hw, layers=layers, channels=5, neighbors=neighbors).double()
    x = torch.randn(2, 3, *in_hw, dtype=torch.float64, requires_grad=True)
    expected = _texture_then_select(net, x, out_hw)
    from taskresize.resizers.downsizenet import _axis_plan

    anchors = tuple(_axis_plan(i, o, neighbors, x.dtype, x.device)[2:] for i, o in zip(in_hw, out_hw, strict=True))
    got = net._texture_at(x, anchors)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    g = torch.randn_like(expected)
    grad_expected = torch.autograd.grad(expected, [x, *net.texture.parameters()], g)
    grad_got = torch.autograd.grad(got, [x, *net.texture.parameters()], g)
    for a, b in zip(grad_got, grad_expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


class _FullMapCopies(TorchDispatchMode):
    """Records the operators that write a whole map of ``shape``: zero fills and copies into it."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.seen = tuple(shape), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if isinstance(out, torch.Tensor) and tuple(out.shape) == self.shape and name in _WRITES:
            self.seen.append(name)
        return out


_WRITES = {"zeros", "new_zeros", "zeros_like", "fill_", "zero_", "copy_", "slice_backward", "slice_scatter"}


@pytest.mark.parametrize(("in_hw", "out_hw"), [((64, 64), (16, 16)), ((64, 48), (32, 24))])  # anchors 4i + 1, 2i
def test_training_at_an_integer_factor_copies_no_full_resolution_map(in_hw, out_hw):
    net = DownsizeNet(out_hw, channels=8)
    x = torch.rand(2, 3, *in_hw)
    y = net(x)
    with _FullMapCopies((2, 8, *in_hw)) as mode:
        y.sum().backward()  # a view of the whole map narrowed by nothing had filled and copied one per axis
    assert mode.seen == []


@pytest.mark.parametrize("neighbors", [2, 4])
def test_identity_init_through_the_registry_starts_as_interpolation(neighbors):
    torch.manual_seed(0)
    net = create_resizer("downsizenet", output_size=(13, 17), neighbors=neighbors, normalize="none", init="identity")
    x = torch.rand(2, 3, 40, 33)
    mode = {2: "bilinear", 4: "bicubic"}[neighbors]
    # float32 positions in torch (see test_special_case_reproduces_interpolate): up to 2.6e-6 over 300 seeds
    torch.testing.assert_close(net(x), F.interpolate(x, (13, 17), mode=mode, align_corners=False), atol=5e-6, rtol=0)
    assert net.config()["init"] == "identity"
    paper = create_resizer("downsizenet", output_size=(13, 17), neighbors=neighbors, normalize="none")
    assert (paper(x) - net(x)).abs().max() > 1e-2


@pytest.mark.parametrize("normalize", ["sigmoid", "softmax"])
def test_identity_init_needs_raw_coefficients(normalize):
    with pytest.raises(ValueError, match="needs normalize 'none'"):
        DownsizeNet(normalize=normalize, init="identity")


@pytest.mark.parametrize("kwargs", [{"neighbors": 3}, {"normalize": "relu"}, {"layers": 0}, {"init": "zeros"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        DownsizeNet(**kwargs)
