"""Copy a sweep's report (table, plot, command) into docs/results.md under Accuracy, newest first.

    python benchmarks/publish_sweep.py sweeps/table5_iqa --command "taskresize sweep --config ... --only ..."

The numbers come from the sweep folder's report.md as `taskresize sweep` wrote it; nothing is typed in by hand.
``--command`` records how the runs were actually launched (e.g. a subset with ``--only``) when that differs from
the report's own command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
from pathlib import Path

from results_file import add_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
FIGURES = ROOT / "docs" / "figures"


def published(folder: Path, command: str | None, note: str | None) -> str:
    today = dt.date.today().isoformat()
    report = folder / "report.md"
    if not report.is_file():
        raise SystemExit(f"{report} does not exist: run `taskresize sweep --config ... --report-only` first")
    text = report.read_text()
    lines = text.splitlines()
    title = lines[0].lstrip("# ").strip()
    body = "\n".join(lines[1:])
    body = re.sub(r"^(#+) ", r"##\1 ", body, flags=re.M)  # keep the report's headings below this section's

    def move_plot(match: re.Match) -> str:
        source = folder / match.group(2)
        # dated, so that publishing a sweep again never replaces the figure of an older section
        target = FIGURES / f"{folder.name}_{today}_{source.name}"
        if target.exists():  # published twice in a day: keep the first one's figure
            target = FIGURES / f"{folder.name}_{today}T{dt.datetime.now():%H%M}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return f"![{match.group(1)}]({target.relative_to(RESULTS.parent).as_posix()})"

    body = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", move_plot, body)
    # a subset of a large grid: keep the measured rows, count the rest
    body = "\n".join(line for line in body.splitlines() if not re.search(r"\(0/\d+ runs\)", line))
    body = re.sub(r"^Not finished yet \((\d+)\):.*$", r"Not run yet: \1 runs of the sweep (their rows are left out; "
                  r"`taskresize sweep --config ... --dry-run` lists them).", body, flags=re.M)  # fmt: skip
    head = [f"### {title}, {today}", ""]
    if command:
        head += [f"Runs launched with: `{command}`", ""]
    if note:
        head += [note, ""]
    return "\n".join(head) + "\n" + body.strip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the sweep folder (holding report.md)")
    parser.add_argument("--command", help="the command(s) that ran the sweep, if not the report's own")
    parser.add_argument("--note", help="a sentence shown above the table (e.g. what subset was run and why)")
    args = parser.parse_args()
    add_section(RESULTS, "Accuracy", published(args.folder, args.command, args.note))
    print(f"added {args.folder.name} to {RESULTS}")


if __name__ == "__main__":
    main()
