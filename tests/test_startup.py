"""Start-up: the command line imports torch and the other heavy libraries only inside the
commands that need them, so `taskresize --help` and `--version` answer at once. These tests check imports, not
time (benchmarks/startup.py measures the time)."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "timm", "torchvision", "matplotlib", "onnx", "onnxruntime", "torchmetrics")
COMMANDS = ("demo", "eval", "list", "resize", "export", "show", "info", "sweep")


def heavy_modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy libraries it imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_main(*argv: str) -> str:
    return f"from taskresize.cli import main\ntry:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass"


def test_importing_the_package_and_the_cli_imports_no_heavy_library():
    assert heavy_modules_after("import taskresize, taskresize.cli; taskresize.__version__") == []


def test_the_image_decoder_imports_no_heavy_library():
    # training/config.py needs its limits at start-up; torch comes with the first tensor
    assert heavy_modules_after("import taskresize.data.decode") == []


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []], ids=["version", "help", "no-command"])
def test_version_and_help_import_no_heavy_library(argv):
    assert heavy_modules_after(run_main(*argv)) == []


@pytest.mark.parametrize(
    "command",
    [*COMMANDS, "train"],
)
def test_each_subcommand_help_imports_no_heavy_library(command):
    assert heavy_modules_after(run_main(command, "--help")) == []


def test_the_public_names_still_import_and_unknown_ones_raise():
    code = (
        "import taskresize\n"
        "from taskresize import create_resizer, resize, resize_image, save_resizer, UnknownResizerError\n"
        "assert set(taskresize.__all__) <= set(dir(taskresize))\n"
        "assert all(getattr(taskresize, name) is not None for name in taskresize.__all__)\n"
        "try:\n    taskresize.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise AssertionError\n"
        "from taskresize.resizers import create_resizer as same\nassert same is create_resizer"
    )
    assert "torch" in heavy_modules_after(code)  # the names are real; importing them loads torch, as it must
