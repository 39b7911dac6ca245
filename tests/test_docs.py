"""The documentation site covers the product: every subcommand, every public name, every registered resizer.

These checks read the pages; ``make docs`` builds the site with warnings as errors (broken links, unresolved
references), which CI runs.
"""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

import taskresize
from taskresize.cli import COMMANDS
from taskresize.resizers import list_resizers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


@pytest.fixture(scope="module")
def config():
    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python tags (none today); read it as plain YAML
        pass

    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def test_every_subcommand_has_a_generated_section():
    page = hook().cli_reference()
    for name in COMMANDS:
        assert f"\n## taskresize {name}\n" in page, name
        assert f"usage: taskresize {name}" in page, name


def test_every_public_name_has_an_api_entry():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text()
        documented |= {m.rsplit(".", 1)[-1] for m in re.findall(r"^::: ([\w.]+)", text, re.M)}
        for block in re.findall(r"members: \[([^\]]*)\]", text):
            documented |= {name.strip() for name in block.split(",")}
    missing = sorted(set(taskresize.__all__) - documented)
    assert not missing, f"public names without an entry under docs/api/: {missing}"


def test_every_registered_resizer_has_a_family_page():
    text = "\n".join(p.read_text() for p in (DOCS / "resizers").glob("*.md"))
    missing = [name for name in list_resizers() if f"`{name}`" not in text]
    assert not missing, f"resizers named on no page under docs/resizers/: {missing}"


def test_the_nav_lists_every_page_and_only_pages_that_exist(config):
    pages = nav_pages(config["nav"])
    generated = {hook().CLI_PAGE}
    for page in pages:
        assert page in generated or (DOCS / page).is_file(), page
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert written <= set(pages), f"pages missing from the nav: {sorted(written - set(pages))}"


def command_lines(text: str) -> list[tuple[str, str]]:
    """``(subcommand, rest of the line)`` of every ``taskresize COMMAND ...`` line of the page's shell blocks
    (continuation lines ending in a backslash joined), and of inline code spans that start with one."""
    blocks = re.findall(r"^```(?:sh|bash|shell|console)\n(.*?)^```", text, re.M | re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(taskresize [^`]+)`", text)
    found = []
    for line in lines:
        match = re.search(r"(?:^|\s|-m )taskresize ([a-z][a-z-]*)(.*)", line.split("#")[0])
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def test_the_pages_use_subcommands_and_flags_that_exist():
    parsers = hook().subcommands()
    pages = [p for p in DOCS.rglob("*.md") if p.name != "results.md" and "hooks" not in p.parts]
    for page in pages:
        for name, rest in command_lines(page.read_text()):
            where = f"{page.relative_to(ROOT)}: taskresize {name}{rest}"
            assert name in COMMANDS, f"{where}: no such subcommand"
            known = {s for action in parsers[name]._actions for s in action.option_strings}
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                assert flag in known, f"{where}: {flag} is not an option of taskresize {name}"


def test_the_layout_page_is_the_real_tree():
    block = re.search(r"```text\n(.*?)```", (DOCS / "layout.md").read_text(), re.S).group(1)
    words = set(re.findall(r"[A-Za-z_][\w.]*", block))
    package = Path(taskresize.__file__).parent
    for path in sorted(package.rglob("*.py")) + sorted(package.rglob("*.yaml")):
        if path.name in ("__init__.py", "__main__.py") or "__pycache__" in path.parts:
            continue
        assert path.stem in words or path.name in words, f"docs/layout.md does not show {path}"
    for folder in (p for p in package.rglob("*") if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{folder.name}/" in block, f"docs/layout.md does not show the folder {folder.name}/"
    for named in re.findall(r"[\w/]+\.(?:py|yaml)\b", block):
        assert list(package.rglob(Path(named).name)), f"docs/layout.md names {named}, which does not exist"
