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
