"""What users read speaks of the product, not of how it was made: no issue numbers in the code, the configs, the
benchmarks, the README or the documentation."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ISSUE_NUMBER = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".js", ".css"}
PLACES = ("src", "configs", "benchmarks", "docs", "README.md", "Makefile", "pyproject.toml", "mkdocs.yml")


def product_files() -> list[Path]:
    files = []
    for place in PLACES:
        path = ROOT / place
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    return files


def test_the_product_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in product_files()}
    assert {"README.md", "src/taskresize/cli.py", "configs/table4_pretrained.yaml", "docs/results.md"} <= names


@pytest.mark.parametrize("path", product_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_issue_numbers(path):
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if ISSUE_NUMBER.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_the_pattern_finds_issue_numbers():
    assert ISSUE_NUMBER.search("Baselines (issue 14): plain bilinear")
    assert ISSUE_NUMBER.search("as in Issue #7")
    assert not ISSUE_NUMBER.search("a known issue with antialiasing")
