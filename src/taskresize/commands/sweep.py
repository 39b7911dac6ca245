"""Run a grid of training runs from a YAML sweep file, then write its report (report.md, report.csv, plots).

Runs go one after another in this process, each in OUTPUT/<sweep name>/<run name>/. Runs that finished
(metrics.json) are skipped and unfinished ones resumed, so the same command continues an interrupted sweep;
a run that fails is reported and the sweep goes on. The sweep file format is described in
taskresize.experiments.sweep.plan and in the README; the configs/ folder has one per paper table.

Examples:
  taskresize sweep --config configs/table4_resolution.yaml --dry-run
  taskresize sweep --config configs/table4_resolution.yaml --output sweeps/
  taskresize sweep --config configs/table4_resolution.yaml --report-only
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the sweep file (YAML)")
    parser.add_argument("--output", default="sweeps", help="folder holding the sweep's folder (default sweeps/)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="train only runs whose names match these shell patterns (e.g. '*-s0')")  # fmt: skip
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="list the runs and their status; train nothing")
    what.add_argument("--report-only", action="store_true", help="write the report of the finished runs only")


def run(args: argparse.Namespace) -> int:
    from taskresize.experiments.sweep.plan import configs, load_sweep
    from taskresize.experiments.sweep.report import write_report
    from taskresize.experiments.sweep.run import describe, run_sweep

    sweep = load_sweep(args.config)
    folder = Path(args.output) / sweep.name
    configs(sweep, folder)  # every run's config is valid before anything starts
    if args.dry_run:
        print(describe(sweep, folder))
        return 0
    if args.report_only:
        if not folder.is_dir():
            raise UserError(f"{folder} does not exist: run the sweep first (without --report-only)")
        for path in write_report(sweep, folder):
            print(f"wrote {path}")
        return 0
    print(describe(sweep, folder), flush=True)
    outcome = run_sweep(sweep, args.output, log=lambda line: print(line, flush=True), only=args.only)
    failed = [name for name, state in outcome.items() if state.startswith(("failed", "blocked"))]
    if failed:
        print(f"{len(failed)} of {len(outcome)} runs failed or were blocked: {', '.join(failed)}")
        return 1
    return 0
