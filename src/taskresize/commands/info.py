"""Describe a resizer file or a run folder: type, config, parameters, FLOPs and the provenance saved with it.

FLOPs are counted at the resizer's training sizes (provenance in_size -> out_size) by torch's FlopCounterMode:
a multiply-add counts 2, convolutions and matrix products only. For a run folder, its metrics.json follows. A run
folder without a resizer file (a classic resizer's run, or a learned one not finished yet) is described from its
config.yaml and epochs.csv: its resizer, its status and how to finish it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="resizer .safetensors file, run folder or hf-hub:ORG/NAME")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def describe_run(path: str) -> dict:
    """What ``info`` says of a run folder that holds no resizer file: its resizer, status, epochs and metrics."""
    import csv

    from taskresize.runs import RunFolder

    folder = RunFolder(path)
    config = folder.config()
    rows = 0
    if folder.epochs_file.is_file():
        with folder.epochs_file.open() as f:
            rows = sum(1 for _ in csv.DictReader(f))
    name = str(config.get("resizer", "?"))
    try:
        from taskresize.resizers.registry import resizer_info

        learned = resizer_info(name).learned
    except ValueError:
        learned = None
    info = {"run": str(path), "resizer": name, "learned": learned, "status": folder.status, "epochs_done": rows,
            "epochs": config.get("epochs"), "config": config}  # fmt: skip
    metrics = folder.metrics()
    if metrics is not None:
        info["metrics"] = metrics
    return info


def run_lines(info: dict) -> list[str]:
    name, path = info["resizer"], info["run"]
    if info["status"] == "finished":
        status = f"finished ({info['epochs_done']} epochs)"
    else:
        status = (f"unfinished: {info['epochs_done']} of {info['epochs']} epochs saved; "
                  f"`taskresize train --output {path} --resume` finishes it")  # fmt: skip
    if info["learned"] is False:
        what = f"{name} (classic: a fixed filter, no weights; `taskresize list` describes it)"
    elif info["status"] == "finished":
        what = f"{name} (learned; its file {RESIZER} is missing from the folder)"
    else:
        what = f"{name} (learned; its file, {RESIZER}, is written when the run finishes)"
    lines = [f"run:         {path}", f"resizer:     {what}", f"status:      {status}"]
    config = info["config"]
    for key in ("task", "backbone", "data", "in_size", "out_size"):
        if key in config:
            lines.append(f"{key + ':':12s} {_value(config[key])}")
    if "metrics" in info:
        lines.append("metrics.json:")
        lines += [f"  {key}: {_value(value)}" for key, value in info["metrics"].items()]
    return lines


RESIZER = "resizer.safetensors"


def describe(path: str) -> dict:
    """Everything ``info`` prints, as a plain dict."""
    import torch

    from taskresize.flops import count_conv_weights, count_flops, count_parameters
    from taskresize.io import load_resizer, read_resizer_header, resolve_resizer_path
    from taskresize.runs import RunFolder
    from taskresize.sizes import to_size

    file = resolve_resizer_path(path)
    header = read_resizer_header(file)
    module = load_resizer(file)
    provenance = header.get("provenance") or {}
    out_size = to_size(provenance.get("out_size") or module.output_size)
    in_size = to_size(provenance["in_size"]) if provenance.get("in_size") else None
    measured_at = in_size or out_size
    info = {
        "file": str(file),
        "resizer": header["name"],
        "class": type(module).__name__,
        "config": header["config"],
        "parameters": count_parameters(module),
        "conv_weights": count_conv_weights(module),
        "batchnorm_layers": sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()),
        "flops": count_flops(module, (1, 3, *measured_at), size=out_size),
        "flops_at": {"in_size": list(measured_at), "out_size": list(out_size), "from_provenance": in_size is not None},
        "taskresize_version": header.get("taskresize_version"),
        "provenance": provenance,
    }
    metrics = RunFolder(path).metrics() if Path(path).is_dir() else None
    if metrics is not None:
        info["metrics"] = metrics
    return info


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run(args: argparse.Namespace) -> int:
    from taskresize.errors import UserError
    from taskresize.runs import RunFolder
    from taskresize.sizes import format_size

    folder = RunFolder(args.path)
    if Path(args.path).is_dir() and folder.is_run and not folder.resizer_file.is_file():
        info = describe_run(args.path)
        print(json.dumps(info, indent=2) if args.json else "\n".join(run_lines(info)))
        return 0
    if not Path(args.path).exists() and not str(args.path).startswith("hf-hub:"):
        from taskresize.resizers.registry import list_resizers

        if args.path in list_resizers(learned=False):
            raise UserError(f"{args.path} is a classic method: it has no file or weights to describe; `taskresize "
                            "list` says what it is")  # fmt: skip
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    at = info["flops_at"]
    where = f"{format_size(tuple(at['in_size']))} -> {format_size(tuple(at['out_size']))}"
    if not at["from_provenance"]:
        where += " (no training input size recorded: input = output size)"
    lines = [
        f"file:        {info['file']}",
        f"resizer:     {info['resizer']} ({info['class']})",
        f"config:      {_value(info['config'])}",
        f"parameters:  {info['parameters']:,} ({info['conv_weights']:,} convolution weights, "
        f"{info['batchnorm_layers']} BatchNorm layers, folded for inference by resize and export)",
        f"FLOPs:       {info['flops'] / 1e6:,.2f} M per image at {where}; multiply-add = 2 FLOPs",
        f"saved by:    taskresize {info['taskresize_version']}",
    ]
    if info["provenance"]:
        lines.append("provenance:")
        lines += [f"  {key}: {_value(value)}" for key, value in info["provenance"].items()]
    else:
        lines.append("provenance:  none recorded")
    if "metrics" in info:
        lines.append("metrics.json:")
        lines += [f"  {key}: {_value(value)}" for key, value in info["metrics"].items()]
    print("\n".join(lines))
    return 0
