"""Every registered resizer, classic or learned, honours the shared contract."""

import math

import pytest
import torch

from taskresize import UnknownResizerError, create_resizer, list_resizers, register_resizer
from taskresize.resizers import Resizer

REQUIRED = {"nearest", "bilinear", "bicubic", "area", "lanczos", "learnable", "downsizenet", "muller"}


def test_required_resizers_are_registered():
    assert set(list_resizers()) >= REQUIRED


def make(name, size=(40, 57)):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=size)
    for p in m.parameters():  # MULLER starts at zero, where some gradients vanish by construction
        if not p.detach().any():
            torch.nn.init.normal_(p, std=0.1)
    return m


@pytest.mark.parametrize("name", list_resizers())
@pytest.mark.parametrize("size", [(40, 57), (150, 190)])
def test_shapes_and_finite_gradients(name, size):
    m = make(name, size)
    x = torch.randn(2, 3, 97, 131, requires_grad=True)
    y = m(x)
    assert isinstance(m, Resizer)
    assert y.shape == (2, 3, *size)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", list_resizers())
def test_batched_equals_per_sample_in_eval_and_input_is_untouched(name):
    m = make(name).eval()
    x = torch.randn(3, 3, 97, 131)
    before = x.clone()
    with torch.no_grad():
        batched = m(x)
        singles = torch.cat([m(x[i : i + 1]) for i in range(3)])
    assert torch.equal(x, before)
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list_resizers())
def test_channels_last(name):
    m = make(name).eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        expected = m(x)
        actual = m(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list_resizers())
def test_bfloat16_autocast(name):
    m = make(name)
    x = torch.randn(2, 3, 97, 131, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.shape == (2, 3, 40, 57)
    assert torch.isfinite(y.float()).all()
    y.float().mean().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", list_resizers())
def test_size_argument_overrides_and_config_rebuilds(name):
    m = make(name)
    assert m(torch.randn(1, 3, 50, 60), size=(21, 33)).shape == (1, 3, 21, 33)
    rebuilt = create_resizer(m.resizer_name, **m.config())
    assert rebuilt.config() == m.config()
    assert type(rebuilt) is type(m)
    assert rebuilt.resizer_name == name


def test_unknown_name_lists_known_ones_and_suggests():
    with pytest.raises(UnknownResizerError) as info:
        create_resizer("learnabel")
    message = str(info.value)
    assert "'learnable'" in message and all(name in message for name in REQUIRED)


def test_unknown_argument_lists_accepted_ones():
    with pytest.raises(TypeError, match="does not take depth; it takes: output_size, n, r"):
        create_resizer("learnable", depth=3)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_resizer("bilinear")(lambda **kw: None)


def test_classic_resizers_have_no_parameters_and_learned_ones_do():
    for name in list_resizers():
        n = sum(p.numel() for p in create_resizer(name).parameters())
        assert (n == 0) == (name in {"nearest", "bilinear", "bicubic", "area", "lanczos"}), name
    assert math.prod(create_resizer("bilinear", output_size=(3, 5)).output_size) == 15
