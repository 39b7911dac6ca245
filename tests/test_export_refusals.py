"""`export` refuses what cannot export before tracing: `--resizer area --dynamic` took minutes
in the ONNX exporter and printed raw terminal colour codes into a pipe."""

import pytest

from taskresize import create_resizer, save_resizer

from helpers import cli


@pytest.mark.parametrize(
    "argv",
    [["--resizer", "area", "--dynamic"], ["--resizer", "lanczos", "--dynamic", "--format", "pt2"],
     ["--resizer", "lanczos", "--format", "torchscript"]],
    ids=["area-dynamic-onnx", "lanczos-dynamic-pt2", "lanczos-torchscript"],
)  # fmt: skip
def test_fixed_size_base_resizers_are_refused_at_once_in_one_line(tmp_path, capsys, argv):
    out = tmp_path / "r.onnx"
    assert cli("export", *argv, "--out-size", 16, "--in-size", 32, "--output", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without --dynamic" in err and "\x1b[" not in err and not out.exists()


def test_a_learned_resizer_on_lanczos_is_refused_too_without_colour_codes(tmp_path, capsys):
    file = save_resizer(create_resizer("learnable", interpolation="lanczos", output_size=8), tmp_path / "l.safetensors")
    assert cli("export", "--resizer", file, "--dynamic", "--in-size", 20) == 2  # stderr is not a terminal here
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "\x1b" not in out + err and "lanczos" in err and not (tmp_path / "l.onnx").exists()
