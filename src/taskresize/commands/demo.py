"""Run the demo: bilinear baseline, then bilinear, learnable and DownsizeNet from it, on the built-in dataset.

The paper's two-phase protocol at a small scale (about ten minutes on two CPU cores): prints a table of error,
FLOPs and time, and writes a figure of the resized images. Finished runs in --output are reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults come from taskresize.demo.DemoPlan when the demo runs: importing it here (torch, Lightning) would
    # make every `taskresize demo --help` wait seconds.
    parser.add_argument("--output", type=Path, help="folder of the demo's runs (default runs/demo)")
    parser.add_argument("--baseline-epochs", type=int, help="epochs of the baseline (default: DemoPlan's)")
    parser.add_argument("--joint-epochs", type=int, help="epochs of each run initialised from it (default: DemoPlan's)")
    parser.add_argument("--workers", type=int, help="data-loading processes (default: DemoPlan's)")


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoPlan, run_demo

    given = {"output": args.output, "baseline_epochs": args.baseline_epochs, "joint_epochs": args.joint_epochs,
             "workers": args.workers}  # fmt: skip
    plan = DemoPlan(**{key: value for key, value in given.items() if value is not None})
    text = cli.guarded(run_demo, plan)
    print("\n" + text)
    return 0
