"""Run a grid of training runs from a YAML sweep file, then write its report (report.md, report.csv, plots).

Runs go one after another in this process, or N at once with --jobs N (each its own process with its share
of this machine's CPU threads and GPUs), or to a Ray cluster with --ray ADDRESS; each run is in
OUTPUT/<sweep name>/<run name>/, and a run initialised from another starts when that one has finished. Runs that
finished (metrics.json) are skipped and unfinished ones resumed, so the same command continues an interrupted
sweep; a run that fails is reported and the sweep goes on. One progress line tells runs done / running / left
and an ETA. A sweep file written by `taskresize compare` (OUTPUT/compare.yaml) also gets compare's report,
OUTPUT/report.md. The sweep file format is described in taskresize.experiments.sweep.plan and in
docs/guides/sweeps.md; the configs/ folder has one per paper table.

Examples:
  taskresize sweep --config configs/table4_resolution.yaml --dry-run
  taskresize sweep --config configs/table4_resolution.yaml --output sweeps/ --jobs 2
  taskresize sweep --config configs/table4_resolution.yaml --ray auto     # on the Ray cluster of this node
  taskresize sweep --config configs/table4_resolution.yaml --report-only
  taskresize sweep --config runs/compare/compare.yaml --output runs/compare --only '*-s0' '*-s1'
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskresize.commands.options import add_retain_flag, positive_int, retain_freed_memory_unless
from taskresize.errors import UserError


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """--jobs, --ray, the Ray tasks' resources and --no-retain-freed-memory (shared with `taskresize compare` and
    `taskresize demo`)."""
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="runs at once (default 1: one after another in this process). N > 1: each run in its "
                        "own process on this machine, with cpus // N CPU threads and a share of the GPUs "
                        "(CUDA_VISIBLE_DEVICES); its output in <sweep>/logs/<run>.log. With --ray: at most N "
                        "tasks at once")  # fmt: skip
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="send the runs to a Ray cluster as tasks: auto (the cluster this node belongs to), "
                        "HOST:PORT, ray://HOST:10001, or local (start Ray on this machine). Needs "
                        "pip install 'taskresize[ray]' and the same taskresize and --data path on every node; "
                        "run folders come back by shared storage or are copied back (docs/guides/sweeps.md: On a Ray "
                        "cluster)")  # fmt: skip
    parser.add_argument(
        "--cpus-per-run",
        type=float,
        metavar="C",
        help="with --ray: CPUs each task asks for (default 1; also its torch threads)",
    )
    parser.add_argument("--gpus-per-run", type=float, metavar="G",
                        help="with --ray: GPUs each task asks for (default 1 if the cluster has GPUs, else 0; "
                        "fractions share a GPU)")  # fmt: skip
    add_retain_flag(parser)


def execution(args: argparse.Namespace) -> dict:
    """``run_sweep``'s keyword arguments from :func:`add_execution_arguments`' flags."""
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give 1 or more runs at once")
    if (args.cpus_per_run is not None or args.gpus_per_run is not None) and not args.ray:
        raise UserError("--cpus-per-run and --gpus-per-run are Ray task resources: give --ray ADDRESS too (local "
                        "jobs share this machine's CPUs and GPUs equally)")  # fmt: skip
    if args.cpus_per_run is not None and args.cpus_per_run <= 0:
        raise UserError(f"--cpus-per-run {args.cpus_per_run:g}: must be positive")
    if args.gpus_per_run is not None and args.gpus_per_run < 0:
        raise UserError(f"--gpus-per-run {args.gpus_per_run:g}: must be 0 or more")
    options = {k: v for k, v in (("cpus", args.cpus_per_run), ("gpus", args.gpus_per_run)) if v is not None}
    # the runs in this process and the processes it starts (they inherit the choice through the environment);
    # each run keeps freed memory where it trains on a CPU
    retain_freed_memory_unless(args, on_cpu=False)
    return {"workers": args.jobs, "ray": args.ray, "ray_options": options}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the sweep file (YAML)")
    parser.add_argument("--output", default="sweeps", help="folder holding the sweep's folder (default sweeps/)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="train only runs whose names match these shell patterns (e.g. '*-s0')")  # fmt: skip
    add_execution_arguments(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="list the runs and their status; train nothing")
    what.add_argument("--report-only", action="store_true", help="write the report of the finished runs only")


def run(args: argparse.Namespace) -> int:
    from taskresize.experiments.compare import write_compare_report
    from taskresize.experiments.sweep.plan import configs, expand
    from taskresize.experiments.sweep.report import recorded_failures, write_report
    from taskresize.experiments.sweep.run import describe, run_sweep
    from taskresize.training.config import read_yaml

    how = execution(args)
    spec = read_yaml(args.config)
    sweep = expand(spec, str(args.config))
    folder = Path(args.output) / sweep.name
    configs(sweep, folder)  # every run's config is valid before anything starts
    log = lambda line: print(line, flush=True)  # noqa: E731
    if args.dry_run:
        print(describe(sweep, folder))
        return 0
    if args.report_only:
        if not folder.is_dir():
            raise UserError(f"{folder} does not exist: run the sweep first (without --report-only)")
        for path in write_report(sweep, folder):
            print(f"wrote {path}")
        outcome = recorded_failures(folder)
    else:
        print(describe(sweep, folder), flush=True)
        outcome = run_sweep(sweep, args.output, log=log, only=args.only, **how)
    if "compare" in spec:  # a grid written by `taskresize compare`: its verdicts too, where compare puts them
        print(f"compare's report: {write_compare_report(spec, sweep, Path(args.output), outcome, log).report}")
    return 0 if args.report_only else report_failures(outcome)  # a report written is a success


def report_failures(outcome: dict[str, str]) -> int:
    """Print the runs that failed or were blocked; the exit status (1 if any)."""
    failed = [name for name, state in outcome.items() if state.startswith(("failed", "blocked", "interrupted"))]
    if failed:
        print(f"{len(failed)} of {len(outcome)} runs failed or were blocked: {', '.join(failed)}")
        return 1
    return 0
