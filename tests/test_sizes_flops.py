"""Size parsing and FLOP accounting."""

import math

import pytest
import torch
import torchvision

from taskresize import count_flops, count_parameters, create_resizer
from taskresize.resizers.classic import resize_flops
from taskresize.sizes import format_size, to_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (224, (224, 224)),
        ((160, 224), (160, 224)),
        ([3, 4], (3, 4)),
        ("224", (224, 224)),
        ("160x224", (160, 224)),
        (" 64X48 ", (64, 48)),
    ],
)
def test_sizes(value, expected):
    assert to_size(value) == expected


@pytest.mark.parametrize("value", ["224x", "0", "-5", "x", "1x2x3", "a", 0, -5, (1, 2, 3), (2.5, 3), True, None])
def test_bad_sizes(value):
    with pytest.raises(ValueError, match="size"):
        to_size(value)


def test_format_size():
    assert format_size((224, 224)) == "224" and format_size((160, 224)) == "160x224"


def test_conv_flops_count_a_multiply_add_as_two():
    conv = torch.nn.Conv2d(3, 16, 7, padding=3, bias=False)
    assert count_flops(conv, (1, 3, 10, 10)) == 2 * (10 * 10) * (16 * 3 * 49)


def test_resnet50_reference_value_and_state_is_preserved():
    model = torchvision.models.resnet50()
    model.train()
    flops = count_flops(model, (1, 3, 224, 224))
    assert 8.1e9 < flops < 8.3e9  # 4.1 GMACs, the usual figure
    assert model.training
    assert count_parameters(model) == 25_557_032


def _raw_counter_flops(module, shape, **kwargs):
    """What FlopCounterMode alone measures (convolutions and matrix products only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(torch.zeros(shape), **kwargs)
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("method", "antialias", "expected"),
    [
        # 256 -> 64 on 3 planes: area averages 4 x 4 pixels; separable passes 256 x 64 then 64 x 64 outputs
        ("area", True, 2 * 3 * (256 * 64 + 64 * 64) * 4),
        ("area", False, 2 * 3 * 64 * 64 * 16),  # adaptive pooling: one 4 x 4 window per output pixel
        ("bilinear", False, 2 * 3 * 64 * 64 * 4),  # torch's 2-D kernel: 2 x 2 taps
        ("bicubic", False, 2 * 3 * 64 * 64 * 16),  # 4 x 4 taps
        ("nearest", True, 0),  # pure selection
        ("nearest", False, 0),
    ],
)
def test_classic_flops_by_hand(method, antialias, expected):
    resizer = create_resizer(method, output_size=64, antialias=antialias)
    assert count_flops(resizer, (1, 3, 256, 256)) == expected


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "area", "lanczos"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(
    ("shape", "size"), [((1, 3, 256, 256), 64), ((2, 3, 97, 131), (50, 262)), ((1, 1, 40, 30), 90)]
)
def test_every_classic_resize_counts_its_taps(method, antialias, shape, size):
    resizer = create_resizer(method, output_size=size, antialias=antialias)
    flops = count_flops(resizer, shape)
    assert flops == resize_flops(shape, size, method, antialias) > 0  # the formula replaces what the counter saw
    # independent bounds: at least one multiply-add per output value and pass, at most the filter's whole window
    # (Pillow widens a support of r by the down-scaling factor: 2 ceil(r * factor) + 1 taps), in either order
    out, planes = to_size(size), shape[0] * shape[1]
    assert flops >= 2 * planes * out[0] * out[1]
    radius = {"bilinear": 1, "bicubic": 2, "area": 0.5, "lanczos": 3}[method]

    def window(n_in, n_out):
        if method == "area" and not antialias:  # adaptive pooling
            return math.ceil(n_in / n_out) + 1
        return 2 * math.ceil(radius * (max(n_in / n_out, 1) if antialias else 1)) + 1

    (h, w), (oh, ow) = shape[-2:], out
    if not antialias and method != "lanczos":  # torch's 2-D kernels: one window of both axes per output pixel
        taps = oh * ow * window(h, oh) * window(w, ow)
    else:
        width_first = oh * ow * window(h, oh) + h * ow * window(w, ow)
        height_first = oh * w * window(h, oh) + oh * ow * window(w, ow)
        taps = max(width_first, height_first)
    assert flops <= 2 * planes * taps
    # linear in the number of planes
    assert count_flops(resizer, (2 * shape[0], *shape[1:])) == 2 * flops


def test_antialiased_taps_grow_with_the_downscaling_factor_as_pillow_widens_its_filter():
    # Lanczos' window is 6 pixels at the output rate: up to 6 x factor taps per output pixel (fewer at the borders)
    for factor in (2, 4, 8):
        taps = resize_flops((1, 1, 64 * factor, 64), (64, 64), "lanczos", True) / (2 * 64 * 64)  # vertical pass only
        assert 0.95 * 6 * factor <= taps <= 6 * factor


@pytest.mark.parametrize("neighbors", [2, 4])
def test_downsizenet_counts_its_weighted_sum_of_neighbours(neighbors):
    net = create_resizer("downsizenet", output_size=(24, 40), neighbors=neighbors)
    shape = (2, 3, 96, 120)
    weighted_sum = 2 * 2 * 3 * 24 * 40 * neighbors**2
    assert count_flops(net, shape) == _raw_counter_flops(net, shape) + weighted_sum


@pytest.mark.parametrize("name", ["learnable", "learnable-strided", "muller"])
def test_learned_resizers_count_their_base_resizes(name):
    resizer = create_resizer(name, output_size=64, interpolation="bicubic", antialias=True)
    shape = (1, 3, 256, 256)
    assert count_flops(resizer, shape) > _raw_counter_flops(resizer, shape)


def test_flop_counts_are_not_disturbed_by_resizes_in_other_threads():
    import threading

    from taskresize import resize

    resizer = create_resizer("learnable", output_size=64)
    alone = count_flops(resizer, (1, 3, 256, 256))
    stop = threading.Event()

    def resize_meanwhile():
        x = torch.rand(1, 3, 64, 64)
        while not stop.is_set():
            resize(x, 32)

    thread = threading.Thread(target=resize_meanwhile)
    thread.start()
    try:
        assert [count_flops(resizer, (1, 3, 256, 256)) for _ in range(3)] == [alone] * 3
    finally:
        stop.set()
        thread.join()
