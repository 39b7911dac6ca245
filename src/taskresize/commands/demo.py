"""Run the demo: a bilinear baseline, then bilinear, learnable and DownsizeNet from it, on the built-in dataset.

The paper's two-phase protocol at a small scale (the README gives its measured run time), run as the sweep file
taskresize/experiments/demo.yaml: prints the sweep's report (error, FLOPs, speed, each run against the bilinear
control) and writes a figure of the resized images. Finished runs in OUTPUT/demo are reused, unfinished ones
resumed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the defaults are the sweep file's (read when the demo runs, not here: `--help` stays fast)
    parser.add_argument("--output", type=Path, default=Path("runs"), help="folder of the demo's sweep folder "
                        "(default runs: the runs go to runs/demo/)")  # fmt: skip
    parser.add_argument("--baseline-epochs", type=int, help="epochs of the baseline (the sweep file's: 10)")
    parser.add_argument("--joint-epochs", type=int, help="epochs of each run initialised from it (the file's: 5)")
    parser.add_argument("--workers", type=int, help="data-loading processes per run (the file's: 1)")


def run(args: argparse.Namespace) -> int:
    from taskresize.experiments.demo import demo_sweep, run_demo

    epochs = {"baseline": args.baseline_epochs, "joint": args.joint_epochs}
    sweep = demo_sweep(
        base={"workers": args.workers} if args.workers is not None else None,
        epochs={stage: n for stage, n in epochs.items() if n is not None},
    )
    report, figure = run_demo(args.output, sweep, log=lambda line: print(line, flush=True))
    print("\n" + report.read_text())
    print(f"figure: {figure}")
    return 0
