"""Does a learned resizer help on my data? Train the papers' protocol with its controls and give a verdict.

For output size S: a baseline with a classic resizer at S; from it, for each learned resizer, --tune-epochs more
epochs at input --in-scale x S; and as controls, from the same baseline, for the same epochs and from the same
in-scale x S images, plain bilinear (the papers' baseline), antialiased bilinear and antialiased area to S, and
the classic resizer to the FLOP-matched size (where the backbone alone costs what resizer + backbone cost).
Every condition is run with --seeds seeds. The report (OUTPUT/report.md) gives each learned resizer a verdict,
better / tie / worse, against each control at equal output size and at equal FLOPs (mean ± std over seeds; a
tie within two standard errors), draws what the best one does, and when one is better than every control
exports it to OUTPUT/best/ (safetensors + ONNX, checked) and prints the command that uses it.

The grid is written as a sweep file, OUTPUT/compare.yaml, and run by the sweep machinery into OUTPUT/compare/:
the same command resumes it (and writes compare.yaml anew), and `taskresize sweep --config OUTPUT/compare.yaml
--output OUTPUT` re-runs or extends it as it stands, hand edits included, and rewrites the report (with
--report-only: from the finished runs, training nothing). Runs go one after another, or N at once with --jobs N,
or to a Ray cluster with --ray. With one seed there is no verdict: the report says so (give --seeds 2 or more to
conclude).

Examples:
  taskresize compare --data photos/ --backbone timm:resnet50 --pretrained default --out-size 224 --jobs 2
  taskresize compare --data photos/ --backbone torchvision:resnet18 --out-size 64 --resizers learnable,muller \\
      --seeds 3 --epochs 10 --tune-epochs 5 --config train.yaml --output runs/photos-compare
  taskresize compare --data /shared/photos --backbone timm:resnet50 --out-size 224 --ray auto
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskresize.commands.options import positive_float, positive_int, size
from taskresize.commands.sweep import add_execution_arguments, execution, report_failures
from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="your data: a folder of class folders (or the task's format)")
    parser.add_argument("--backbone", required=True, help="the model: torchvision:NAME or timm:NAME")
    parser.add_argument("--out-size", required=True, type=size, metavar="N|HxW", help="S: the model's input size")
    parser.add_argument("--pretrained", help="the backbone's weights (as train --pretrained: default, a tag, a file)")
    parser.add_argument("--resizers",
                        help="learned resizers to try, comma-separated (default: every learned resizer; `taskresize "
                        "list` marks them)")  # fmt: skip
    parser.add_argument("--in-scale", type=positive_float, default=2.0,
                        help="the learned resizers' input is in-scale x S (default 2)")  # fmt: skip
    parser.add_argument("--seeds", type=positive_int, default=3,
                        help="seeds per condition (default 3; 2 or more for verdicts)")  # fmt: skip
    parser.add_argument("--epochs", type=positive_int, help="the baseline's epochs (default train's: 10)")
    parser.add_argument("--tune-epochs", type=positive_int, default=5,
                        help="epochs of every run trained from the baseline (default 5)")  # fmt: skip
    parser.add_argument("--tune-lr", type=positive_float,
                        help="their learning rate (default train's rule for initialised runs: 0.005 at batch 128, "
                        "scaled to the global batch)")  # fmt: skip
    parser.add_argument("--task", help="classification (default), iqa, segmentation, detection")
    parser.add_argument("--config", type=Path,
                        help="YAML file of train settings shared by every run (keys as train's long flags, with "
                        "underscores: batch_size, workers, accelerator, precision, augment, ...)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=Path("runs/compare"),
                        help="the comparison's folder (default runs/compare)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="write the sweep file and list the runs; train nothing")
    add_execution_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from taskresize.experiments.compare import CompareSettings, compare_spec, run_compare, write_compare_file
    from taskresize.experiments.sweep.plan import expand
    from taskresize.experiments.sweep.run import describe
    from taskresize.resizers.registry import list_resizers
    from taskresize.training.config import read_yaml

    how = execution(args)
    train = {}
    if args.config:
        if not args.config.is_file():
            raise UserError(f"--config {args.config}: no such file")
        train = {k.replace("-", "_"): v for k, v in read_yaml(args.config).items()}
    settings = CompareSettings(
        data=args.data, backbone=args.backbone, out_size=args.out_size, pretrained=args.pretrained,
        resizers=[r.strip() for r in args.resizers.split(",") if r.strip()] if args.resizers
        else list_resizers(learned=True), in_scale=args.in_scale,
        seeds=args.seeds, epochs=args.epochs, tune_epochs=args.tune_epochs, tune_lr=args.tune_lr, task=args.task,
        train=train,
    )  # fmt: skip
    log = lambda line: print(line, flush=True)  # noqa: E731
    if args.dry_run:
        spec = compare_spec(settings, log)
        path = write_compare_file(spec, args.output)
        print(describe(expand(spec, source=str(path)), args.output / spec["name"]))
        return 0
    outcome = run_compare(settings, args.output, log=log, **how)
    print("\n" + outcome.report.read_text())
    print(f"report: {outcome.report}")
    if outcome.best is not None:
        print(f"best: {outcome.winner}, exported to {outcome.best}/")
        print(f"  taskresize resize --resizer {outcome.best / 'resizer.safetensors'} IMAGES --output OUT")
    return report_failures(outcome.states)
