"""Train a resizer jointly with a vision model.

Settings come from defaults (the paper's recipe), then --config FILE (YAML, keys as the long flags with
underscores), then the flags given here. The resolved configuration is written to OUTPUT/config.yaml.

In a terminal a progress bar shows the epoch and the run's time left, with a line of results per epoch above it;
in a log (output not to a terminal) the per-epoch lines alone. --resume continues the run in --output, also a
finished one given a larger --epochs. On a CPU, freed memory is kept for reuse (--no-retain-freed-memory: not).

Examples:
  taskresize train --data builtin --resizer bilinear --in-size 64 --out-size 64 --output runs/base
  taskresize train --data builtin --resizer learnable --in-size 128 --out-size 64 --init runs/base --output runs/lr
  torchrun --nproc_per_node 2 -m taskresize train --data DIR --devices 2 ...
"""

from __future__ import annotations

import argparse
import dataclasses

from taskresize.commands.options import (
    add_retain_flag,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    retain_freed_memory_unless,
    size,
)
from taskresize.errors import UserError
from taskresize.training.config import (
    ACCELERATORS,
    DECODE_ON,
    PRECISIONS,
    RESUMABLE,
    ConfigError,
    TrainConfig,
    field_docs,
    load_config,
    parse_json_mapping,
    read_yaml,
)


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return " (default on)" if value else " (default off)"
    if value is None or value == {} or value == []:
        return ""  # the help says what happens without it
    if isinstance(value, list) and all(isinstance(v, int) for v in value) and len(value) == 2:
        return f" (default {value[0]}x{value[1]})" if value[0] != value[1] else f" (default {value[0]})"
    if isinstance(value, list):
        return f" (default {' '.join(str(v) for v in value)})"
    return f" (default {value})"


# argparse checks these values at once, before torch is imported (TrainConfig.validate checks them all again, and
# the values of a --config file)
CHECKED = {
    **dict.fromkeys(("epochs", "batch_size", "lr_decay_epochs", "devices", "num_nodes", "max_pixels"), positive_int),
    **dict.fromkeys(("workers", "precise_bn", "seed"), non_negative_int),
    **dict.fromkeys(("lr", "resizer_lr_scale"), positive_float),
    "weight_decay": non_negative_float,
    "val_split": fraction,
}
CHOICES = {"accelerator": ACCELERATORS, "precision": PRECISIONS, "decode_on": DECODE_ON}


def config_flags() -> list[tuple[str, dict]]:
    """One flag per TrainConfig field, from the field's name, type, default and docstring: ``--batch-size N``
    for ``batch_size: int``, ``--augment`` / ``--no-augment`` for a bool, sizes as N or HxW, mappings as JSON."""
    docs = field_docs()
    flags = []
    for item in dataclasses.fields(TrainConfig):
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]
        kind = str(item.type)
        options: dict = {"dest": item.name, "default": None, "help": docs[item.name] + _default_text(default)}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("list[int]"):
            options |= {"metavar": "N|HxW", "type": size}  # a size: checked here, parsed by the config
        elif kind.startswith("list[float]"):
            options |= {"type": float, "nargs": 2, "metavar": ("MIN", "MAX")}
        elif kind.startswith("dict["):
            options["metavar"] = "JSON"
        else:
            options["type"] = CHECKED.get(item.name) or {"int": int, "float": float}.get(kind.split(" | ")[0], str)
            if item.name in CHOICES:
                options["choices"] = CHOICES[item.name]
        flags.append(("--" + item.name.replace("_", "-"), options))
    return flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of settings (keys as the long flags, with underscores); flags "
                        "given here override it")  # fmt: skip
    for flag, options in config_flags():
        parser.add_argument(flag, **options)
    parser.add_argument(
        "--resume", action="store_true",
        help=f"continue the run in --output (a finished one too, given a larger --epochs); {', '.join(RESUMABLE)} "
        "may change (recorded in its config.yaml), other settings given must equal the run's",
    )  # fmt: skip
    add_retain_flag(parser)


def overrides(args: argparse.Namespace) -> dict:
    """The settings given as flags (the others keep the config file's value or the default)."""
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in values.items() if v is not None}
    if "resizer_args" in values:
        values["resizer_args"] = parse_json_mapping(values["resizer_args"], "--resizer-args")
    return values


def run(args: argparse.Namespace) -> int:
    from taskresize.training.run import train

    # train() keeps freed memory on a CPU (each process, and records it) unless the environment says not to
    retain_freed_memory_unless(args, on_cpu=False)

    try:
        given = overrides(args)
        cfg = load_config(args.config, given)
        if args.config:  # what the config file sets counts as given too: --resume compares it with the run's
            given = {k.replace("-", "_"): v for k, v in read_yaml(args.config).items()} | given
    except ConfigError as error:
        raise UserError(str(error)) from None
    out = train(cfg, resume=args.resume, given=set(given))
    print(f"run folder: {out}")
    return 0
