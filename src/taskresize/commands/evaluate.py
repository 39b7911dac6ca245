"""Evaluate a finished (or interrupted) run on its validation split or on another folder.

Prints the metrics and writes them to RUN/eval.json (or --output). On a CPU, freed memory is kept for reuse
(--no-retain-freed-memory: not).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from taskresize.commands.options import add_retain_flag, retain_freed_memory_unless
from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `taskresize train`")
    parser.add_argument("--data", help="folder with the run's classes (its val/ sub-folder if any, else all images)")
    parser.add_argument("--checkpoint", default="last.ckpt", help="checkpoint in the run folder (default last.ckpt)")
    parser.add_argument("--output", help="where to write the metrics (default RUN/eval.json)")
    parser.add_argument("--device", default="auto", help="where to evaluate: auto (a GPU if there is one, default), "
                        "cpu, cuda, cuda:N or mps; one device, whatever the run trained on")  # fmt: skip
    add_retain_flag(parser)


def run(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).is_dir():
        raise UserError(f"--output {args.output} is a folder: give the file to write, e.g. {args.output}/eval.json")
    from taskresize.fileio import atomic_write_json
    from taskresize.hardware import resolve_device
    from taskresize.runs import RunFolder
    from taskresize.training.run import evaluate

    retain_freed_memory_unless(args, on_cpu=resolve_device(args.device).type == "cpu")
    metrics = evaluate(args.run, data=args.data, checkpoint=args.checkpoint, device=args.device)
    atomic_write_json(Path(args.output or RunFolder(args.run) / RunFolder.EVAL), metrics)
    print(json.dumps(metrics, indent=2))
    return 0
