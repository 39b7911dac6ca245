"""The README is a way in that cannot drift: its Python quickstart runs as written, its commands and flags are the
command line's own, its numbers are the library's, and the pages it links to exist."""

import importlib.util
import re
from pathlib import Path

import taskresize
from taskresize.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def subcommand_parsers():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.subcommands()


def test_readme_is_short():
    assert len(README.read_bytes()) < 12_000


def test_python_quickstart_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    assert (tmp_path / "resizer.safetensors").exists()


def test_python_names_are_public():
    text = README.read_text()
    for imported in re.findall(r"from taskresize import ([\w, ]+)", text):
        for name in imported.split(","):
            assert name.strip() in taskresize.__all__, name
    for name in re.findall(r"`(\w+)\(", text):
        assert name in taskresize.__all__, f"the README names {name}(), which taskresize does not export"


def test_commands_and_flags_exist():
    text = README.read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines() + re.findall(r"`(taskresize [^`]+)`", text)
    parsers = subcommand_parsers()
    checked = 0
    for line in lines:
        match = re.search(r"(?:^|\s)taskresize ([a-z][a-z-]*)(.*)", line.split("#")[0])
        if not match or match.group(1).isupper():
            continue
        name, rest = match.groups()
        assert name in COMMANDS, f"README: taskresize {name}: no such subcommand"
        known = {s for action in parsers[name]._actions for s in action.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            assert flag in known, f"README: taskresize {name}{rest}: {flag} is not an option of taskresize {name}"
        checked += 1
    assert checked >= 5


def test_make_targets_and_extras_exist():
    text = README.read_text()
    assert "make demo" in text and "make test" in text and "pip install" in text
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`?make ([\w-]+)", text):
        assert re.search(rf"^{target}:", makefile, re.M), f"README: make {target}: no such target"
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extras in re.findall(r"pip install -e '\.\[([\w,]+)\]'", text):
        for extra in extras.split(","):
            assert re.search(rf"^{extra} = \[", pyproject, re.M), f"README: no extra named {extra}"


def test_parameter_counts_in_the_resizer_table():
    text = README.read_text()
    assert f"{taskresize.count_conv_weights(taskresize.LearnableResizer()):,} conv weights" in text
    assert f"| {taskresize.count_parameters(taskresize.DownsizeNet()):,} (`layers=3" in text
    assert f"| {taskresize.count_parameters(taskresize.MullerResizer())} scalars" in text
    assert f"| {taskresize.count_parameters(taskresize.SaliencySampler()):,} (the saliency CNN)" in text


def test_every_registered_resizer_is_in_the_table():
    text = README.read_text()
    for name in taskresize.list_resizers():
        assert f"`{name}`" in text, name


def test_linked_files_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
