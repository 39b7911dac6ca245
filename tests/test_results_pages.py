"""The results pages (docs/results/, one per question) quote the archive (docs/results.md) and cannot drift from
it: every dated section a page quotes has the archive's tables, row for row, and a sweep's section is its newest
in the archive."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "docs" / "results.md"
PAGES = sorted((ROOT / "docs" / "results").glob("*.md"))
SWEEPS = {p.stem for p in (ROOT / "configs").glob("*.yaml")}


def sections(text: str, level: int) -> dict[str, list[str]]:
    """Heading -> the table rows under it, for the headings of ``level`` (the first of two equal headings)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.split("\n"):
        match = re.match(r"(#{1,6}) (.*)", line)
        if match:
            current = match.group(2) if len(match.group(1)) == level else None
            if current is not None and current in found:
                current = None
            elif current is not None:
                found[current] = []
        elif current is not None and line.startswith("|"):
            found[current].append(line.replace("](../figures/", "](figures/"))  # the pages sit one folder down
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_quoted_sections_are_the_archives(page):
    archive = sections(ARCHIVE.read_text(), 3)
    headings = list(archive)
    for heading, rows in sections(page.read_text(), 2).items():
        if not re.search(r", 20\d\d-\d\d-\d\d", heading):
            continue  # the page's own prose, not a quoted section
        assert heading in archive, f"{page.name} quotes '{heading}', which docs/results.md does not have"
        assert rows == archive[heading], f"{page.name}: the tables of '{heading}' differ from docs/results.md's"
        sweep = heading.split(",")[0]
        if sweep in SWEEPS:
            newest = next(h for h in headings if h.split(",")[0] == sweep)
            assert heading == newest, f"{page.name} quotes '{heading}'; the archive's newest {sweep} is '{newest}'"


def test_every_question_page_links_the_archive():
    for page in PAGES:
        assert "(../results.md)" in page.read_text(), page.name
