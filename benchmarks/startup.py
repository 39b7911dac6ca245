"""Start-up time of the command line: `taskresize --version`, `--help` and each subcommand's
`--help`, each run several times in a fresh process; `import torch` beside them for scale.

The median of the runs is what a user waits; the target is under 0.5 s for `--version` and `--help`. Prints a
Markdown table; ``--append`` adds it, dated, to docs/results.md (Speed).

    python benchmarks/startup.py [--repeats 7] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
COMMANDS = ("demo", "train", "eval", "list", "resize", "export", "show", "info", "sweep")
TARGET_S = 0.5


def seconds(argv: list[str], repeats: int) -> list[float]:
    """Wall time of ``argv`` in a fresh process, ``repeats`` times (after one unmeasured run warms the disk cache)."""
    times = []
    for i in range(repeats + 1):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if i:
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="measured runs of each command (7)")
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    args = parser.parse_args()

    script = Path(sys.executable).with_name("taskresize")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "taskresize"]
    cases = [("taskresize --version", [*program, "--version"]), ("taskresize --help", [*program, "--help"])]
    cases += [(f"taskresize {c} --help", [*program, c, "--help"]) for c in COMMANDS]
    cases += [("python -c 'import torch' (for scale)", [sys.executable, "-c", "import torch"])]
    lines = [
        f"| command | median s | min s | max s | under {TARGET_S} s |",
        "|---|---:|---:|---:|---|",
    ]
    for label, argv in cases:
        times = seconds(argv, args.repeats)
        median = statistics.median(times)
        under = "" if "import torch" in label else ("yes" if median < TARGET_S else "**no**")
        lines.append(f"| `{label}` | {median:.2f} | {min(times):.2f} | {max(times):.2f} | {under} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    machine = platform.processor() or platform.machine()
    heading = (
        f"### Start-up time, {dt.date.today().isoformat()}\n\n`python benchmarks/startup.py --repeats {args.repeats}`"
        f" — each command in a fresh process, {args.repeats} measured runs after one warm-up; {machine},"
        f" Python {platform.python_version()}.\n"
    )
    if args.append:
        add_section(RESULTS, "Speed", f"{heading}\n{table}\n")
        print(f"added to {RESULTS}")


if __name__ == "__main__":
    main()
