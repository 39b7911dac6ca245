"""Talebi–Milanfar resizer: Table 2 parameter counts, the architecture of Fig. 3, initialisation, sizes."""

import pytest
import torch
import torch.nn.functional as F

from taskresize import LearnableResizer, count_conv_weights, count_flops, create_resizer, resize

# Table 2 of the paper, conv weights only.
TABLE_2 = {
    (16, 1): 11_872, (16, 2): 16_480, (16, 3): 21_088, (16, 4): 25_696,
    (32, 1): 38_080, (32, 2): 56_512, (32, 3): 74_944, (32, 4): 93_376,
}  # fmt: skip


@pytest.mark.parametrize(("n", "r"), list(TABLE_2))
def test_conv_weight_count_equals_table_2(n, r):
    assert count_conv_weights(LearnableResizer(n=n, r=r)) == TABLE_2[(n, r)]


def reference_forward(m: LearnableResizer, x: torch.Tensor, size) -> torch.Tensor:
    """DESIGN.md's description of Fig. 3, written out with functional ops on the module's weights (eval mode)."""

    def bn(t, layer):
        return F.batch_norm(t, layer.running_mean, layer.running_var, layer.weight, layer.bias, False, 0.0, layer.eps)

    def up(t):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    conv7a, conv1, bn1 = m.stem[0], m.stem[2], m.stem[4]
    f = bn(lrelu(conv1(lrelu(F.conv2d(x, conv7a.weight, conv7a.bias, padding=3)))), bn1)
    z = up(f)
    y = z
    for block in m.blocks:
        c1, b1, _, c2, b2 = block.body
        y = y + bn(F.conv2d(lrelu(bn(F.conv2d(y, c1.weight, padding=1), b1)), c2.weight, padding=1), b2)
    y = bn(F.conv2d(y, m.merge[0].weight, padding=1), m.merge[1]) + z
    return F.conv2d(y, m.head.weight, m.head.bias, padding=3) + up(x)


def randomise_batchnorm(m: torch.nn.Module) -> None:
    for layer in m.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize(
    ("n", "r", "size"), [(16, 1, (40, 57)), (8, 2, (40, 57)), (8, 3, (150, 190)), (4, 0, (31, 31))]
)
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
def test_forward_is_figure_3_with_chained_blocks_and_half_pixel_centres(n, r, size, grad):
    torch.manual_seed(0)
    m = LearnableResizer(output_size=size, n=n, r=r)
    randomise_batchnorm(m)
    m.eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.set_grad_enabled(grad):
        out = m(x)
    with torch.no_grad():
        torch.testing.assert_close(out.detach(), reference_forward(m, x, size), atol=1e-4, rtol=1e-4)


def test_identity_init_starts_as_the_base_resize_and_paper_init_does_not():
    x = torch.randn(2, 3, 64, 80)
    identity = LearnableResizer((32, 40), init="identity")
    torch.testing.assert_close(identity(x), resize(x, (32, 40), "bilinear", antialias=False))
    paper = LearnableResizer((32, 40), init="paper")
    assert not torch.allclose(paper(x), resize(x, (32, 40), "bilinear", antialias=False))


def test_base_resizer_is_selectable():
    x = torch.randn(1, 3, 64, 80)
    m = LearnableResizer((20, 25), interpolation="lanczos", antialias=True, init="identity")
    torch.testing.assert_close(m(x), resize(x, (20, 25), "lanczos", antialias=True))


def test_size_overrides_output_size_per_call():
    m = LearnableResizer(output_size=64)
    x = torch.randn(1, 3, 100, 90)
    assert m(x).shape == (1, 3, 64, 64)
    assert m(x, size=(30, 50)).shape == (1, 3, 30, 50)
    assert m(x, size=200).shape == (1, 3, 200, 200)


def test_flops_match_the_architecture():
    n, r, (H, W), (h, w) = 16, 2, (96, 128), (48, 64)
    m = LearnableResizer((h, w), n=n, r=r)
    full_res = H * W * (3 * n * 49 + n * n)  # conv7x7 3->n, conv1x1 n->n
    low_res = h * w * (r * 2 * 9 * n * n + 9 * n * n + 49 * n * 3)  # blocks, merge conv, head
    low_res += h * w * (3 + n) * 4  # plain bilinear skip and feature resizes: 2 x 2 taps per output value
    assert count_flops(m, (1, 3, H, W)) == 2 * (full_res + low_res)


@pytest.mark.parametrize("kwargs", [{"init": "zeros"}, {"interpolation": "hermite"}, {"n": 0}, {"r": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        LearnableResizer(**kwargs)


@pytest.mark.parametrize("name", ["learnable", "learnable-strided"])
def test_checkpointing_changes_memory_not_results(name):
    torch.manual_seed(0)
    plain = create_resizer(name, output_size=(20, 24), n=8).double()
    recomputed = create_resizer(name, output_size=(20, 24), n=8, checkpoint=True).double()
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 72, dtype=torch.float64)  # float64: the image-by-image sums round differently

    def run(module):
        saved = []

        def pack(t):
            saved.append(t.numel())
            return t

        inputs = x.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = module(inputs)
        out.square().sum().backward()
        grads = [inputs.grad] + [p.grad for p in module.parameters()]
        return out, grads, sum(saved), module.stem[4].running_mean.clone()

    out_a, grads_a, saved_a, stats_a = run(plain)
    out_b, grads_b, saved_b, stats_b = run(recomputed)
    torch.testing.assert_close(out_b, out_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a)
    torch.testing.assert_close(stats_b, stats_a)  # BatchNorm statistics updated once, not twice
    stem_map = 2 * 8 * 64 * 72 / plain.stem_stride((64, 72), (20, 24)) ** 2  # one stem feature map, batch 2
    assert saved_a - saved_b >= 2 * stem_map  # the 7x7 and 1x1 outputs are no longer kept for the backward pass
