"""BatchNorm folding (resizers/fuse.py, built on torch.nn.utils.fusion) checked numerically over a grid of cases."""

import copy
import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from taskresize import create_resizer, list_resizers
from taskresize.resizers import ClassicResizer
from taskresize.resizers.fuse import ChannelAffine, fold_batchnorms, fold_conv_bn, fused_copy


def count(module, kind):
    return sum(isinstance(m, kind) for m in module.modules())


def has_batchnorm(name):
    m = create_resizer(name)
    return not isinstance(m, ClassicResizer) and count(m, nn.BatchNorm2d) > 0


WITH_BATCHNORM = [name for name in list_resizers() if has_batchnorm(name)]
LEARNED_WITHOUT = [
    name
    for name in list_resizers()
    if not isinstance(create_resizer(name), ClassicResizer) and name not in WITH_BATCHNORM
]

# (n, r, in_channels, output size, input (h, w)): channel counts, depths, and inputs smaller than, equal to and
# several times larger than the output (the last ones make learnable-strided's stem stride > 1)
GRID = [
    (4, 0, 3, (16, 12), (16, 12)),
    (8, 1, 1, (20, 30), (50, 60)),
    (16, 1, 3, (24, 20), (96, 80)),
    (5, 2, 4, (31, 17), (22, 13)),
    (16, 3, 3, (12, 12), (64, 64)),
]


def randomize_batchnorms(module, seed):
    """Running statistics and affine parameters far from their defaults (negative and near-zero scales too)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                c = bn.num_features
                bn.running_mean.copy_(torch.randn(c, generator=g) * 0.7)
                bn.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.05)
                bn.weight.copy_(torch.randn(c, generator=g) * 1.5)
                bn.bias.copy_(torch.randn(c, generator=g) * 0.5)
    return module


def assert_close_relative(actual, expected, rtol=1e-5):
    """Equal within ``rtol`` of each value, with an absolute floor at ``rtol`` of the output's scale."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(expected.abs().max()))


def test_the_grid_covers_resizers_with_batchnorm():
    assert {"learnable", "learnable-strided"} <= set(WITH_BATCHNORM)


@pytest.mark.parametrize(("name", "case"), list(itertools.product(WITH_BATCHNORM, range(len(GRID)))))
def test_fused_resizer_equals_the_eval_original(name, case):
    n, r, in_channels, out_size, in_size = GRID[case]
    torch.manual_seed(case)
    m = create_resizer(name, n=n, r=r, in_channels=in_channels, output_size=list(out_size))
    randomize_batchnorms(m, seed=100 + case).eval()
    fused = m.fuse()
    x = torch.randn(2, in_channels, *in_size) * 2 + 0.3
    with torch.no_grad():
        assert_close_relative(fused(x), m(x))
        other = (out_size[0] + 7, out_size[1] + 3)
        assert_close_relative(fused(x, other), m(x, other))
    assert count(fused, nn.BatchNorm2d) == 0
    # the stem's BatchNorm (after a LeakyReLU) becomes the one affine map; all others fold into a convolution
    assert count(fused, ChannelAffine) == 1
    assert count(fused, nn.Conv2d) == count(m, nn.Conv2d)


@pytest.mark.parametrize("name", WITH_BATCHNORM)
def test_folding_is_not_skipped(name):
    """Outputs differ from the same network with its BatchNorms dropped, yet equal the original's, with none left."""
    torch.manual_seed(7)
    m = randomize_batchnorms(create_resizer(name, n=8, r=2, output_size=[20, 24]), seed=7).eval()
    dropped = copy.deepcopy(m)
    for module in dropped.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.Identity())
    fused = m.fuse()
    x = torch.randn(2, 3, 40, 48)
    with torch.no_grad():
        expected, without, got = m(x), dropped(x), fused(x)
    assert (expected - without).abs().max() > 1e-2 * expected.abs().max()  # the statistics matter here
    assert_close_relative(got, expected)
    assert count(fused, nn.BatchNorm2d) == 0
    assert count(m, nn.BatchNorm2d) == 2 + 2 * 2  # the original is untouched


@pytest.mark.parametrize("name", LEARNED_WITHOUT)
def test_resizers_without_batchnorm_fuse_to_the_same_function(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=[20, 30]).eval()
    x = torch.randn(2, 3, 50, 60)
    with torch.no_grad():
        torch.testing.assert_close(m.fuse()(x), m(x), rtol=0, atol=0)


CONV_CASES = list(
    itertools.product(
        [(4, 6, 3, 1), (6, 6, 3, 3), (8, 8, 5, 8), (3, 16, 1, 1)],  # (in, out, kernel, groups): dense to depthwise
        [True, False],  # conv bias
        [1e-5, 1e-3],  # eps
        [torch.float32, torch.float64],
    )
)


@pytest.mark.parametrize(("shape", "bias", "eps", "dtype"), CONV_CASES)
def test_fold_conv_bn_over_layouts(shape, bias, eps, dtype):
    cin, cout, k, groups = shape
    torch.manual_seed(cin * cout + k)
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bias, stride=2 if k == 5 else 1).to(dtype)
    bn = randomize_batchnorms(nn.BatchNorm2d(cout, eps=eps), seed=k).to(dtype)
    conv.eval()
    bn.eval()
    x = torch.randn(3, cin, 11, 9, dtype=dtype)
    folded = fold_conv_bn(conv, bn)
    with torch.no_grad():
        expected = bn(conv(x))
        assert_close_relative(folded(x), expected)
        # the same as PyTorch's own module-level fusion (which works in the input dtype) up to float rounding
        assert_close_relative(folded(x), fuse_conv_bn_eval(conv, bn)(x))
    assert folded.weight.dtype == dtype and folded.bias.dtype == dtype and folded.bias is not None
    assert not folded.weight.requires_grad and not folded.bias.requires_grad
    assert conv.bias is None or conv.bias.requires_grad  # the input convolution is untouched


def test_fold_conv_bn_takes_modules_in_training_mode():
    """Unlike ``fuse_conv_bn_eval``, which asserts eval mode: the fold always uses the running statistics."""
    conv, bn = nn.Conv2d(3, 4, 3), randomize_batchnorms(nn.BatchNorm2d(4), seed=1)
    folded = fold_conv_bn(conv.train(), bn.train())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_close_relative(folded(x), bn.eval()(conv(x)))


def test_fold_conv_bn_refuses_a_channel_mismatch_the_library_would_broadcast():
    conv, bn = nn.Conv2d(3, 4, 3).eval(), randomize_batchnorms(nn.BatchNorm2d(1), seed=2).eval()
    fuse_conv_bn_eval(conv, bn)  # no complaint from PyTorch: one channel's statistics applied to all four
    with pytest.raises(ValueError, match="4 channels against 1"):
        fold_conv_bn(conv, bn)


def test_fold_conv_bn_refuses_missing_statistics_with_a_value_error():
    conv, bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        fold_conv_bn(conv, bn)


def test_batchnorm_not_after_a_convolution_becomes_an_affine_map():
    """A BatchNorm before a convolution or after a nonlinearity has no library fold: it becomes a ChannelAffine."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.BatchNorm2d(3), nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.BatchNorm2d(5)
    )
    randomize_batchnorms(model, seed=3).eval()
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        expected = model(x)
        fused = fused_copy(model)
        assert_close_relative(fused(x), expected)
    assert [type(m) for m in fused] == [ChannelAffine, nn.Conv2d, nn.ReLU, ChannelAffine]
    assert [type(m) for m in fold_batchnorms(nn.Sequential(nn.BatchNorm2d(3)).eval())] == [ChannelAffine]
