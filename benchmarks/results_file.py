"""Insert a dated table into docs/results.md under its section, newest first."""

from __future__ import annotations

from pathlib import Path

SECTIONS = ("Speed", "Accuracy", "Robustness")
PREAMBLE = """# Measured results

Every table here was measured on the project's own machine (2 CPU cores, 24 GiB, no GPU) by the command printed
beside it. Within each section the newest table comes first. No table is typed in by hand: each is copied
from the report its command wrote; the readings under them and the summary are written from those tables.
"""


def add_section(path: Path, section: str, text: str) -> None:
    """Put ``text`` (starting with a ``###`` heading) first under ``## {section}`` of ``path``."""
    if section not in SECTIONS:
        raise ValueError(f"section {section!r} is not one of {SECTIONS}")
    content = path.read_text() if path.exists() else PREAMBLE + "".join(f"\n## {s}\n" for s in SECTIONS)
    heading = f"\n## {section}\n"
    if heading not in content:
        content += heading
    start = content.index(heading) + len(heading)
    content = content[:start] + "\n" + text.strip() + "\n" + content[start:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
