"""The saliency samplers (2-D and separable), their warps and the separable warp's exact inverse."""

import pytest
import torch
import torch.nn.functional as F

from taskresize import count_flops, create_resizer, resize
from taskresize.errors import TaskresizeError
from taskresize.resizers.saliency import level_weights, pyramid_sizes, sample_pyramid
from taskresize.resizers.warps import (
    SeparableWarp,
    attraction_grid,
    centres,
    interpolate_monotone,
    resize_with_warp,
    separable_grid,
    separable_maps,
)

NAMES = ["saliency", "saliency-separable"]


def uniform_grid(b, h, w, dtype=torch.float64):
    like = torch.zeros((), dtype=dtype)
    return separable_grid(centres(w, like=like).expand(b, w), centres(h, like=like).expand(b, h))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["bilinear", "area", "bicubic"])
@pytest.mark.parametrize(
    ("in_size", "out_size"), [((128, 96), (40, 24)), ((97, 131), (150, 190)), ((64, 64), (64, 64))]
)
def test_identity_start_is_the_base_resize(name, method, in_size, out_size):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=out_size, interpolation=method)
    x = torch.rand(2, 3, *in_size)
    with torch.no_grad():
        torch.testing.assert_close(m(x), resize(x, out_size, method, True), atol=3e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(6, 5), saliency_input=8, channels=2, init="paper").double()
    x = torch.rand(1, 3, 11, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,), eps=1e-6, atol=1e-6)
    names = [n for n, _ in m.named_parameters()]

    def of_parameters(*params):
        return torch.func.functional_call(m, dict(zip(names, params, strict=True)), (x.detach(),))

    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    assert torch.autograd.gradcheck(of_parameters, params, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_per_image_in_training_mode(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(20, 30), init="paper").train()
    x = torch.randn(3, 3, 80, 70)
    batched = m(x)
    singles = torch.cat([m(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


def test_uniform_saliency_gives_the_uniform_grid_and_a_peak_attracts():
    s = torch.full((1, 1, 8, 8), 1 / 64, dtype=torch.float64)
    torch.testing.assert_close(attraction_grid(s, (12, 10), 1.5), uniform_grid(1, 12, 10), atol=1e-12, rtol=0)
    ux, uy = separable_maps(s, (12, 10), 1.5)
    torch.testing.assert_close(ux, centres(10, like=ux).expand(1, 10), atol=1e-12, rtol=0)
    torch.testing.assert_close(uy, centres(12, like=uy).expand(1, 12), atol=1e-12, rtol=0)
    peaked = s.clone()
    peaked[0, 0, 2, 5] = 1.0  # a salient cell at x = 5.5 / 8, y = 2.5 / 8 of the image
    grid = attraction_grid(peaked / peaked.sum(), (8, 8), 1.5)
    uniform = uniform_grid(1, 8, 8)
    target = torch.tensor([5.5 / 4 - 1, 2.5 / 4 - 1], dtype=torch.float64)
    # every output pixel reads nearer the salient cell than the uniform grid does (or as near)
    assert ((grid - target).norm(dim=-1) <= (uniform - target).norm(dim=-1) + 1e-12).all()
    # and more output pixels land near it than with the uniform grid
    assert ((grid - target).norm(dim=-1) < 0.3).sum() > ((uniform - target).norm(dim=-1) < 0.3).sum()


def test_separable_maps_are_strictly_increasing():
    torch.manual_seed(0)
    s = torch.softmax(torch.randn(4, 64) * 3, dim=1).view(4, 1, 8, 8).double()
    ux, uy = separable_maps(s, (37, 53), 1.4)
    assert (ux.diff(dim=1) > 0).all() and (uy.diff(dim=1) > 0).all()


def known_warp(b=2, h=9, w=13):
    """Output pixel centres t read the input at u(t) = t + a (1 - t^2) / 2 (|a| < 1: strictly increasing)."""
    like = torch.zeros((), dtype=torch.float64)
    tx, ty = centres(w, like=like), centres(h, like=like)
    a = torch.tensor([[0.6], [-0.4]], dtype=torch.float64)[:b]
    return SeparableWarp(tx + a * (1 - tx**2) / 2, ty - a * (1 - ty**2) / 2)


def test_the_inverse_of_a_known_warp_is_exact():
    warp = known_warp()
    q = torch.linspace(-1.3, 1.3, 101, dtype=torch.float64).expand(2, 101)
    for axis in (0, 1):
        torch.testing.assert_close(warp.to_output(warp.to_input(q, axis), axis), q, atol=1e-12, rtol=0)
        torch.testing.assert_close(warp.to_input(warp.to_output(q, axis), axis), q, atol=1e-12, rtol=0)
    # at the output pixel centres the forward map is the warp itself
    t = centres(13, like=q).expand(2, 13)
    torch.testing.assert_close(warp.to_input(t, 1), warp.x, atol=1e-12, rtol=0)


def test_unwarp_brings_a_warped_image_back_and_is_plain_upsampling_for_the_uniform_warp():
    warp = known_warp(h=48, w=64)
    size = (60, 80)
    like = warp.x
    # a smooth image of the input frame, warped by the grid, then unwarped: back where it was
    yy, xx = torch.meshgrid(centres(size[0], like=like), centres(size[1], like=like), indexing="ij")
    image = torch.stack([torch.sin(2 * xx) + yy, xx * yy]).expand(2, 2, *size)
    warped = F.grid_sample(image, separable_grid(warp.x, warp.y), mode="bilinear", align_corners=False)
    back = warp.unwarp(warped, size)
    torch.testing.assert_close(back[..., 2:-2, 2:-2], image[..., 2:-2, 2:-2], atol=0.02, rtol=0)
    uniform = SeparableWarp(centres(64, like=like).expand(2, 64), centres(48, like=like).expand(2, 48))
    z = torch.randn(2, 5, 48, 64, dtype=torch.float64)
    expected = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(uniform.unwarp(z, size), expected, atol=1e-10, rtol=0)


def affine_warp(size, slopes=(0.8, 1.25), shifts=(0.1, -0.15)):
    """Per image ``k`` of 2, both axes read the input at ``u(t) = slopes[k] t + shifts[k]``: a zoom into a window
    (slope below 1) and a zoom out. A piecewise-linear warp through its pixel centres is this map exactly there."""
    like = torch.zeros((), dtype=torch.float64)
    s, c = torch.tensor(slopes, dtype=torch.float64)[:, None], torch.tensor(shifts, dtype=torch.float64)[:, None]
    h, w = size
    return SeparableWarp(s * centres(w, like=like) + c, s * centres(h, like=like) + c), s, c


@pytest.mark.parametrize(
    ("size", "cells", "canvas"),
    [
        ((48, 64), (48, 64), None),
        ((48, 64), (12, 16), None),
        ((40, 36), (2, 2), (64, 64)),
        ((30, 50), (4, 7), (32, 64)),
    ],
)
def test_unzoom_of_a_known_warp_is_the_expected_resampling(size, cells, canvas):
    """Features that are their own cells' positions in the warped canvas (a linear ramp, which bilinear reading
    interpolates exactly) unzoom to the positions the inverse warp gives each cell's centre in the image."""
    warp, s, c = affine_warp(size)
    (h, w), (h_f, w_f) = size, cells
    h_c, w_c = canvas or size
    like = warp.x
    step_x, step_y = w_c / w_f, h_c / h_f  # canvas pixels per cell
    x_cells, y_cells = (
        (torch.arange(w_f, dtype=like.dtype) + 0.5) * step_x,
        (torch.arange(h_f, dtype=like.dtype) + 0.5) * step_y,
    )
    z = torch.stack(torch.meshgrid(y_cells, x_cells, indexing="ij"))[[1, 0]].expand(2, 2, h_f, w_f)

    def inverse(q, n):
        """The warp's inverse along an axis of n pixels, normalised: (q - c) / s between the outer pixel centres,
        slope 1 beyond them."""
        first, last = 1 / n - 1, 1 - 1 / n
        lo, hi = s * first + c, s * last + c
        inside = (q - c) / s
        return torch.where(q < lo, first + (q - lo), torch.where(q > hi, last + (q - hi), inside))

    # each cell's centre in the image frame (normalised, the image spans [-1, 1]), back into the warped canvas
    x_at = (inverse(x_cells * 2 / w - 1, w) + 1) * w / 2
    y_at = (inverse(y_cells * 2 / h - 1, h) + 1) * h / 2
    # bilinear reading of the ramp is exact between the outer cells' centres and replicates the border beyond
    x_at, y_at = x_at.clamp(x_cells[0], x_cells[-1]), y_at.clamp(y_cells[0], y_cells[-1])
    expected = torch.stack([x_at[:, None, :].expand(2, h_f, w_f), y_at[:, :, None].expand(2, h_f, w_f)], dim=1)
    got = warp.unzoom(z, canvas)
    assert got.shape == z.shape
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=0)
    assert (got - z).abs().max() > 0.5  # the warp moves the features


@pytest.mark.parametrize(
    ("size", "cells", "canvas"), [((48, 64), (48, 64), None), ((48, 64), (6, 8), None), ((40, 36), (3, 2), (64, 64))]
)
def test_unzoom_at_the_uniform_warp_gives_the_features_back(size, cells, canvas):
    uniform = SeparableWarp.uniform(2, size, like=torch.zeros((), dtype=torch.float64))
    z = torch.randn(2, 5, *cells, dtype=torch.float64)
    torch.testing.assert_close(uniform.unzoom(z, canvas), z, atol=1e-12, rtol=0)
    z32 = z.float().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(SeparableWarp.uniform(2, size, like=z32).unzoom(z32, canvas), z32, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("read", "shape", "atol"),
    [
        (lambda warp, z: warp.unzoom(z, (64, 64)), (12, 16), 0.01),  # a model's features
        (lambda warp, z: warp.unwarp(z, (96, 80)), (48, 64), 0.02),  # dense outputs
    ],
    ids=["unzoom", "unwarp"],
)
def test_bfloat16_is_read_at_the_warps_precision(read, shape, atol):
    warp, _, _ = affine_warp((48, 64))
    warp = SeparableWarp(warp.x.float(), warp.y.float())
    z = torch.randn(2, 3, *shape)
    expected = read(warp, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = read(warp, z.bfloat16())
    assert got.dtype == torch.bfloat16
    # within the rounding of z and of the result to bfloat16, not of the grid's coordinates
    torch.testing.assert_close(got.float(), expected, atol=atol, rtol=0.008)


def test_unzoom_gradcheck_float64():
    """Differentiable in the features and in the warp (the sampler learns through the unzoom)."""
    warp = known_warp(h=12, w=10)
    z = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    x, y = warp.x.clone().requires_grad_(), warp.y.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z, x, y: SeparableWarp(x, y).unzoom(z, (16, 12)), (z, x, y))


def test_interpolate_monotone_extends_with_slope_one():
    kx = torch.tensor([[0.0, 1.0, 3.0]])
    ky = torch.tensor([[0.0, 2.0, 3.0]])
    got = interpolate_monotone(kx, ky, torch.tensor([[-1.0, 0.5, 2.0, 4.0]]))
    torch.testing.assert_close(got, torch.tensor([[-1.0, 1.0, 2.5, 4.0]]))


def test_pyramid_levels_and_weights():
    assert pyramid_sizes((256, 256), (64, 64)) == [((32, 32), -1.0), ((64, 64), 0.0), ((128, 128), 1.0), (None, 2.0)]
    assert pyramid_sizes((96, 96), (64, 64))[-1][0] is None
    assert [s for s, _ in pyramid_sizes((50, 60), (150, 190))] == [(75, 95), (150, 190)]
    t = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.25, 1.5, 9.0])
    weights = level_weights(t, [-1.0, 0.0, 1.0, 2.0])
    torch.testing.assert_close(sum(weights), torch.ones_like(t))
    torch.testing.assert_close(weights[1][2:5], torch.tensor([0.5, 1.0, 0.75]))


def test_a_compressing_grid_reads_a_coarser_level_so_it_does_not_alias():
    # a one-pixel checkerboard read through a warp whose step runs from 1.5 (left) to 0.5 (right) pixels of the
    # uniform output: each pixel reads the pyramid level of its zoom, all grey; plain bilinear sampling is not
    x = ((torch.arange(256)[:, None] + torch.arange(256)[None, :]) % 2).double().expand(1, 1, 256, 256)
    t = centres(32, like=x)
    u = (t - 0.25 * (1 - t**2)).expand(1, 32)  # derivative 1 - 0.5 t: 1.5 at the left edge, 0.5 at the right
    grid = separable_grid(u, u)
    y = sample_pyramid(x, grid)
    assert (y - 0.5).abs().max() < 0.05
    naive = F.grid_sample(x, grid, mode="bilinear", align_corners=False)
    assert (naive - 0.5).abs().max() > 0.2


@pytest.mark.parametrize("name", NAMES)
def test_flops_count_the_network_and_every_sampling_tap(name):
    m = create_resizer(name, output_size=64)
    flops = count_flops(m, (1, 3, 256, 256), size=(64, 64))
    net = count_flops(m.net, (1, 3, 64, 64))
    taps = 2 * 4 * 3 * 64 * 64 * len(pyramid_sizes((256, 256), (64, 64)))
    levels = sum(
        count_flops(create_resizer("bilinear", output_size=s), (1, 3, 256, 256), size=s)
        for s, _ in pyramid_sizes((256, 256), (64, 64))
        if s is not None
    )
    low_res = count_flops(create_resizer("bilinear"), (1, 3, 256, 256), size=(64, 64))
    assert flops > net + taps + levels + low_res  # plus the attraction's convolutions and the grid's up-sampling
    assert flops < 2 * (net + taps + levels + low_res)


def test_dense_tasks_get_the_separable_warp_and_refuse_the_2d_one():
    x = torch.rand(2, 3, 64, 48)
    y, warp = resize_with_warp(create_resizer("saliency-separable", output_size=16), x, (16, 12))
    assert y.shape == (2, 3, 16, 12) and warp.x.shape == (2, 12) and warp.y.shape == (2, 16)
    y, warp = resize_with_warp(create_resizer("bilinear"), x, (16, 12))
    assert warp is None and y.shape == (2, 3, 16, 12)
    with pytest.raises(TaskresizeError, match="saliency-separable"):
        resize_with_warp(create_resizer("saliency"), x, (16, 12))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", range(4))
def test_the_saliency_network_keeps_its_features_at_the_inputs_scale(name, seed):
    """He-initialised hidden layers: the features the last convolution reads have about the input's RMS (0.7-0.9
    here; PyTorch's default initialisation gave 0.07-0.10, and a gradient to match)."""
    torch.manual_seed(seed)
    net = create_resizer(name).net
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        features = torch.nn.Sequential(*list(net)[:-1])(x)
    rms = features.pow(2).mean().sqrt().item()
    assert 0.4 < rms < 2.5, rms
    assert all(layer.bias.abs().max() == 0 for layer in net if isinstance(layer, torch.nn.Conv2d))


def test_saliency_map_is_a_distribution_per_image():
    m = create_resizer("saliency", init="paper")
    s = m.saliency(torch.rand(2, 3, 100, 80))
    assert s.shape == (2, 1, 16, 16) and (s >= 0).all()
    torch.testing.assert_close(s.sum(dim=(1, 2, 3)), torch.ones(2))


def test_show_draws_the_saliency_map_grey_where_uniform():
    from taskresize.experiments.figures import saliency_column
    from taskresize.inference.pixels import PixelResizer

    images = torch.randint(0, 256, (2, 3, 40, 30), dtype=torch.uint8)
    assert saliency_column(PixelResizer(create_resizer("muller"))) is None
    drawn = saliency_column(PixelResizer(create_resizer("saliency-separable", output_size=16)))(images)
    assert drawn.dtype == torch.uint8 and drawn.shape == (2, 3, 40, 30)
    assert (drawn.int() - 128).abs().max() <= 1
