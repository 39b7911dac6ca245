"""The README's example runs as written, and its numbers are the library's."""

import re
from pathlib import Path

import taskresize

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    assert (tmp_path / "resizer.safetensors").exists()


def test_parameter_counts_in_the_resizer_table():
    text = README.read_text()
    assert f"{taskresize.count_conv_weights(taskresize.LearnableResizer()):,} conv weights" in text
    assert f"| {taskresize.count_parameters(taskresize.DownsizeNet()):,} (`layers=3" in text
    assert f"| {taskresize.count_parameters(taskresize.MullerResizer())} scalars" in text


def test_readme_shows_the_setup_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_the_layout_section_is_the_real_tree():
    block = re.search(r"## Layout\n.*?```\n(.*?)```", README.read_text(), re.S).group(1)
    words = set(re.findall(r"[A-Za-z_][\w.]*", block))
    package = Path(taskresize.__file__).parent
    for path in sorted(package.rglob("*.py")) + sorted(package.rglob("*.yaml")):
        if path.name in ("__init__.py", "__main__.py") or "__pycache__" in path.parts:
            continue
        assert path.stem in words or path.name in words, f"the README's layout does not show {path}"
    for folder in (p for p in package.rglob("*") if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{folder.name}/" in block, f"the README's layout does not show the folder {folder.name}/"
    for named in re.findall(r"[\w/]+\.(?:py|yaml)\b", block):  # every file it names exists
        assert list(package.rglob(Path(named).name)), f"the README's layout names {named}, which does not exist"
