"""Every registered resizer, classic or learned, honours the shared contract."""

import inspect
import math
import types
import typing

import pytest
import torch

from taskresize import UnknownResizerError, create_resizer, list_resizers, register_resizer
from taskresize.resizers import Resizer
from taskresize.resizers.registry import OneOf, Range, ResizerArgumentError, resizer_arguments

from helpers import cli

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
    with pytest.raises(TypeError, match=r"does not take depth\. It takes: output_size, n, r"):
        create_resizer("learnable", depth=3)
    with pytest.raises(ResizerArgumentError, match=r"does not take nn. Did you mean 'n'\?"):
        create_resizer("learnable", nn=3)


# ---- every argument of every resizer checked by its declared type and range ----------------------------------


def wrong_types(hint) -> list:
    """Values that are not of type ``hint`` (JSON's forms: a string, a fraction, a boolean, a list)."""
    if hint is bool:
        return ["no", 1, None]
    if hint is int:
        return ["many", 2.5, True, None]
    if hint is float:
        return ["many", True, float("nan"), float("inf")]
    if hint is str:
        return [3, True, None]
    options = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and set(options) == {int, tuple[int, int]}:
        return ["many", [1, 2, 3], [1.5, 2], True, None]
    raise AssertionError(f"no wrong values known for {hint}: add them here")


def out_of_range(argument) -> list:
    """Values of the right type that its constraints refuse."""
    values = []
    for constraint in argument.constraints:
        if isinstance(constraint, Range):
            step = 1 if argument.hint is not float else 0.5
            if constraint.ge is not None:
                low = constraint.ge - step
                values += [low, [low, 4]] if typing.get_origin(argument.hint) else [low]
            if constraint.gt is not None:
                values += [constraint.gt, constraint.gt - 1]
            if constraint.le is not None:
                values.append(constraint.le + step)
        elif isinstance(constraint, OneOf):
            sample = constraint.choices[0]
            values.append("no-such-choice" if isinstance(sample, str) else max(constraint.choices) + 1)
        else:  # Odd
            values.append(4)
    return values


ARGUMENTS = [(name, arg) for name in list_resizers() for arg in resizer_arguments(name)]


@pytest.mark.parametrize(("name", "arg"), ARGUMENTS, ids=[f"{n}.{a}" for n, a in ARGUMENTS])
def test_every_argument_refuses_a_wrong_type_and_an_out_of_range_value(name, arg):
    argument = resizer_arguments(name)[arg]
    assert argument.hint is not inspect.Parameter.empty, f"{name}.{arg} has no type hint"
    if argument.hint is not bool:  # every number and string declares what it accepts
        assert argument.constraints, f"{name}.{arg}: no declared range (Annotated[..., Range(...) or OneOf(...)])"
        assert out_of_range(argument), f"{name}.{arg}: nothing is out of its range"
    bad = wrong_types(argument.hint) + out_of_range(argument)
    for value in bad:
        with pytest.raises(ResizerArgumentError) as info:
            create_resizer(name, **{arg: value})
        message = str(info.value)
        assert f"resizer {name!r}: {arg} = " in message and "expected " in message and "\n" not in message, message
        assert "(default " in message


@pytest.mark.parametrize("name", list_resizers())
def test_the_declared_defaults_and_json_forms_pass(name):
    arguments = resizer_arguments(name)
    module = create_resizer(name, **{a.name: a.default for a in arguments.values()})
    assert isinstance(module, Resizer)
    create_resizer(name, output_size=[24, 32])  # a size from JSON is a list
    if "sigma" in arguments:
        create_resizer(name, sigma=2)  # an integer where a float is declared


def test_bad_resizer_args_end_in_one_line_before_anything_is_written(tmp_path, capsys):
    data = tmp_path / "data"  # not even created: the arguments are refused first
    for args, expected in [
        ('{"n": "many"}', 'n = "many" is refused: expected an integer >= 1'),
        ('{"n": -3}', "n = -3 is refused: expected an integer >= 1"),
        ('{"antialias": "no"}', 'antialias = "no" is refused: expected true or false'),
        ('{"nn": 3}', "does not take nn. Did you mean 'n'?"),
        ('{"output_size": 64}', "output_size is set by out_size"),
    ]:
        out = tmp_path / "run"
        code = cli("train", "--data", data, "--resizer", "learnable", "--resizer-args", args, "--output", out)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err, err
        assert not out.exists()


def test_unknown_resizer_names_get_did_you_mean_in_every_command(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\nbase: {data: builtin, out_size: 32}\ngrid: {resizer: [bilinear, lanczoss]}\n")
    for argv in (
        ["train", "--resizer", "lanczoss", "--output", tmp_path / "run"],
        ["resize", "--resizer", "lanczoss", tmp_path / "in", "--output", tmp_path / "out", "--out-size", 8],
        ["sweep", "--config", sweep, "--dry-run", "--output", tmp_path / "sweeps"],
    ):
        assert cli(*argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Did you mean 'lanczos'?" in err, err
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "run").exists()


def test_list_aligns_every_name(capsys):
    assert cli("list") == 0
    lines = capsys.readouterr().out.splitlines()
    named = [line for line in lines if line.startswith("  ") and not line.strip().startswith("arguments:")]
    assert sorted(line.split()[0] for line in named) == list_resizers()
    width = max(map(len, list_resizers()))
    assert all(line[2 + width : 4 + width] == "  " and line[4 + width] != " " for line in named), named
    starts = {line.index("output_size=") for line in lines if "arguments:" in line}
    assert len(starts) == 1, lines  # learnable-strided, the longest name, included


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_resizer("bilinear")(lambda **kw: None)


def test_classic_resizers_have_no_parameters_and_learned_ones_do():
    for name in list_resizers():
        n = sum(p.numel() for p in create_resizer(name).parameters())
        assert (n == 0) == (name in {"nearest", "bilinear", "bicubic", "area", "lanczos"}), name
    assert math.prod(create_resizer("bilinear", output_size=(3, 5)).output_size) == 15
