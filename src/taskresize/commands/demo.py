"""Run the demo: `taskresize compare` on the built-in dataset at a small scale, with a verdict per learned resizer.

Runs the comparison of taskresize/experiments/demo.yaml (a timm:resnet10t at 32 px; the learnable resizer and
DownsizeNet from 96 px; as controls, plain bilinear, antialiased bilinear and area from 96 to 32 px, and bilinear
to the FLOP-matched size; two seeds), prints its report (verdicts at equal size and equal FLOPs, then every condition)
and writes OUTPUT/report.md, OUTPUT/resized.png and, when a learned resizer beats every control, OUTPUT/best/.
Finished runs in OUTPUT are reused, unfinished ones resumed. docs/getting-started.md gives its run time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskresize.commands.sweep import add_execution_arguments, execution


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the defaults are the demo file's (read when the demo runs, not here: `--help` stays fast)
    parser.add_argument("--output", type=Path, default=Path("runs/demo"),
                        help="the demo's folder (default runs/demo)")  # fmt: skip
    parser.add_argument("--epochs", type=int, help="epochs of the baseline (the demo file's: 5)")
    parser.add_argument("--tune-epochs", type=int, help="epochs of each run trained from it (the file's: 3)")
    parser.add_argument("--seeds", type=int, help="seeds per condition (the file's: 2)")
    add_execution_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from taskresize.experiments.demo import demo_settings, run_demo

    given = {"epochs": args.epochs, "tune_epochs": args.tune_epochs, "seeds": args.seeds}
    settings = demo_settings(**{k: v for k, v in given.items() if v is not None})
    outcome = run_demo(args.output, settings, log=lambda line: print(line, flush=True), **execution(args))
    print("\n" + outcome.report.read_text())
    print(f"report: {outcome.report}" + (f"; figure: {outcome.figure}" if outcome.figure else ""))
    return 0
