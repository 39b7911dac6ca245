"""How much the draw of precise BatchNorm's images moves a trained run's validation metric.

For each run folder: its last checkpoint's BatchNorm statistics are recomputed ``--draws`` times, each from another
draw of augmented training images (as precise BN does before each validation), and the run is validated after each;
once per ``--images`` setting (the number of training images recomputed from: 320 is ten batches of 32, the former
default; the default 4096 takes the whole training set where it has fewer). Printed: each setting's metrics, their
range and spread.

    python benchmarks/precise_bn_spread.py RUN [RUN ...] [--images 320 4096] [--draws 6] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
from pathlib import Path

from machine import describe

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def spread(run: Path, images: int, draws: int) -> list[float]:
    """The run's first validation metric after each of ``draws`` recomputations from ``images`` training images."""
    from taskresize.data.normalization import Normalization
    from taskresize.training.callbacks import recompute_batchnorm
    from taskresize.training.run import LAST, _trainer, build, load_checkpoint, load_run_config, quiet_lightning

    cfg, _ = load_run_config(run)
    cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.workers = "cpu", 1, 1, 0
    checkpoint = load_checkpoint(run / LAST)
    trained_with = checkpoint.get("hyper_parameters", {}).get("config", {}).get("input_normalization")
    spec, data, task = build(cfg, None, Normalization.from_dict(trained_with) if trained_with else None)
    metric = spec.monitor  # the logged name of its first metric
    values = []
    with quiet_lightning():
        trainer = _trainer(cfg, run, [], one_device=0, logger=False, enable_progress_bar=False)
        data.trainer = trainer
        data.setup("fit")
        for draw in range(draws):
            task.load_state_dict(checkpoint["state_dict"])
            # epochs past the run's own: draws precise BN never made while the run trained
            loader = data.precise_bn_loader(images, epoch=10_000 + draw)
            recompute_batchnorm(task, loader, task.trainable_batchnorms())
            trainer.validate(task, datamodule=data, verbose=False)
            values.append(float(trainer.callback_metrics[metric]))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", nargs="+", type=int, default=[320, 4096])
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        for images in args.images:
            values = spread(run, images, args.draws)
            scaled = [100 * v for v in values]
            rows.append(
                f"| {run.name} | {images} | {', '.join(f'{v:.2f}' for v in scaled)} | {min(scaled):.2f}-"
                f"{max(scaled):.2f} | {max(scaled) - min(scaled):.2f} | {statistics.stdev(scaled):.2f} |"
            )
            print(rows[-1], flush=True)
    command = (f"python benchmarks/precise_bn_spread.py RUNS --images {' '.join(map(str, args.images))} "
               f"--draws {args.draws}")  # fmt: skip
    text = (
        f"### Precise BatchNorm: the draw's effect on validation, {dt.date.today().isoformat()}\n\n"
        f"`{command}` — {describe()}. Each run's last checkpoint, its BatchNorm statistics recomputed from "
        f"{args.draws} draws of augmented training images, validated after each (metric × 100).\n\n"
        "| run | images | metric after each draw | range | max - min | standard deviation |\n"
        "|---|---:|---|---|---:|---:|\n" + "\n".join(rows)
    )
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Accuracy", text)


if __name__ == "__main__":
    main()
