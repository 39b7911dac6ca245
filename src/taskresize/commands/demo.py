"""Run the demo: bilinear baseline, then bilinear, learnable and DownsizeNet from it, on the built-in dataset.

The paper's two-phase protocol at a small scale (about ten minutes on two CPU cores): prints a table of error,
FLOPs and time, and writes a figure of the resized images. Finished runs in --output are reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..demo import DemoPlan

    defaults = DemoPlan()
    parser.add_argument("--output", type=Path, default=defaults.output, help="folder of the demo's runs")
    parser.add_argument("--baseline-epochs", type=int, default=defaults.baseline_epochs)
    parser.add_argument("--joint-epochs", type=int, default=defaults.joint_epochs)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes")


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoPlan, run_demo

    plan = DemoPlan(output=args.output, baseline_epochs=args.baseline_epochs, joint_epochs=args.joint_epochs,
                    workers=args.workers)  # fmt: skip
    text = cli.guarded(run_demo, plan)
    print("\n" + text)
    return 0
