"""Size parsing and FLOP accounting."""

import pytest
import torch
import torchvision

from taskresize import count_flops, count_parameters
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
