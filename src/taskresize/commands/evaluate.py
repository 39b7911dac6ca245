"""Evaluate a finished (or interrupted) run on its validation split or on another folder.

Prints the metrics and writes them to RUN/eval.json (or --output).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `taskresize train`")
    parser.add_argument("--data", help="folder with the run's classes (its val/ sub-folder if any, else all images)")
    parser.add_argument("--checkpoint", default="last.ckpt", help="checkpoint in the run folder (default last.ckpt)")
    parser.add_argument("--output", help="where to write the metrics (default RUN/eval.json)")
    parser.add_argument("--device", default="auto", help="where to evaluate: auto (a GPU if there is one, default), "
                        "cpu, cuda, cuda:N or mps; one device, whatever the run trained on")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from taskresize.fileio import atomic_write_json
    from taskresize.runs import RunFolder
    from taskresize.training.run import evaluate

    metrics = evaluate(args.run, data=args.data, checkpoint=args.checkpoint, device=args.device)
    atomic_write_json(Path(args.output or RunFolder(args.run) / RunFolder.EVAL), metrics)
    print(json.dumps(metrics, indent=2))
    return 0
