"""Train a resizer jointly with a vision model.

Settings come from defaults (the paper's recipe), then --config FILE (YAML, keys as the long flags with
underscores), then the flags given here. The resolved configuration is written to OUTPUT/config.yaml.

Examples:
  taskresize train --data builtin --resizer bilinear --in-size 64 --out-size 64 --output runs/base
  taskresize train --data builtin --resizer learnable --in-size 128 --out-size 64 --init runs/base --output runs/lr
  torchrun --nproc_per_node 2 -m taskresize train --data DIR --devices 2 ...
"""

from __future__ import annotations

import argparse

from .. import cli
from ..training.config import ConfigError, load_config, parse_json_mapping, read_yaml

# flag -> (config key, type, help); a flag left out keeps the config file's value or the default.
FLAGS: list[tuple[str, str, object, str]] = [
    ("--task", "task", str, "classification (default); see the README for the other tasks"),
    ("--data", "data", str, "the task's data (classification: class-per-folder directory, or 'builtin')"),
    ("--images", "images", str, "folder holding the images named in a --data table file (tasks with tables)"),
    ("--val-split", "val_split", float, "fraction of each class held out for validation (default 0.2)"),
    ("--resizer", "resizer", str, "resizer name: bilinear, learnable, downsizenet, muller, ... (taskresize list)"),
    ("--resizer-args", "resizer_args", str, 'JSON arguments of the resizer, e.g. \'{"n": 32, "r": 2}\''),
    ("--backbone", "backbone", str, "torchvision:NAME or timm:NAME (default torchvision:resnet18)"),
    ("--pretrained", "pretrained", str, "local weights file for the backbone (safetensors or .pth)"),
    ("--in-size", "in_size", str, "resizer input size N or HxW: the loader pre-resizes to it (default: out size)"),
    ("--out-size", "out_size", str, "model input size N or HxW (default 224)"),
    ("--pre-resize", "pre_resize", str, "classic method of the loader's pre-resize (default bilinear, antialiased)"),
    ("--epochs", "epochs", int, "training epochs (default 10)"),
    ("--batch-size", "batch_size", int, "batch size (default 32)"),
    ("--lr", "lr", float, "learning rate (default 0.05 x batch/128, or 0.005 x batch/128 when initialised)"),
    ("--weight-decay", "weight_decay", float, "weight decay (default 1e-4)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--init", "init", str, "run folder to initialise the backbone (and a resizer of the same kind) from"),
    ("--init-resizer", "init_resizer", str, "resizer file or run folder to initialise the resizer from"),
    ("--precise-bn", "precise_bn", int, "batches to recompute BatchNorm statistics before validation (0: off)"),
    ("--workers", "workers", int, "data-loading worker processes (default 1)"),
    ("--devices", "devices", int, "processes for data-parallel training on this machine (default 1)"),
    ("--precision", "precision", str, "32-true (default) or bf16-mixed"),
    ("--distortion", "distortion", str, "degrade every image (Talebi Table 9): none, downscale4, noise0.1, jpeg10"),
    ("--max-pixels", "max_pixels", int, "refuse images with more pixels (decompression bombs)"),
    ("--output", "output", str, "run folder (default runs/DATE-RESIZER-INtoOUT)"),
]
SWITCHES = [
    ("--augment", "augment", "random resized crop + flip before the pre-resize (default on)"),
    ("--freeze-backbone", "freeze_backbone", "train only the resizer"),
    ("--freeze-resizer", "freeze_resizer", "keep the resizer fixed"),
    ("--strict", "strict", "stop on unreadable or too-small images instead of skipping and reporting them"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of settings; flags given here override it")
    for flag, key, kind, text in FLAGS:
        parser.add_argument(flag, dest=key, type=kind, default=None, help=text)
    for flag, key, text in SWITCHES:
        parser.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text)
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the unfinished run in --output; epochs, batch size, workers, precise-bn, devices and strict "
        "may change (recorded in its config.yaml), other settings given must equal the run's",
    )  # fmt: skip


def overrides(args: argparse.Namespace) -> dict:
    keys = [key for _, key, _, _ in FLAGS] + [key for _, key, _ in SWITCHES]
    values = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if "resizer_args" in values:
        values["resizer_args"] = parse_json_mapping(values["resizer_args"], "--resizer-args")
    return values


def run(args: argparse.Namespace) -> int:
    from ..training.run import train

    try:
        given = overrides(args)
        cfg = load_config(args.config, given)
        if args.config:  # what the config file sets counts as given too: --resume compares it with the run's
            given = {k.replace("-", "_"): v for k, v in read_yaml(args.config).items()} | given
    except ConfigError as error:
        raise cli.UserError(str(error)) from None
    out = cli.guarded(train, cfg, resume=args.resume, given=set(given))
    print(f"run folder: {out}")
    return 0
