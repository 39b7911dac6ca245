"""Export a resizer (BatchNorm folded) to ONNX, TorchScript or a torch.export program, and check it.

The exported model takes float32 pixels in [0, 255], shape (B, 3, H, W), and returns float32 pixels clipped to
[0, 255] at the output size (round them to uint8 yourself); the normalisation the resizer was trained with is
inside. --normalized exports the bare resizer instead, on (pixels - mean) / std as a model trained here expects.
The batch size is free; the input size is fixed at --in-size (default: the resizer's training input) unless
--dynamic, which leaves height and width free. The output size is always fixed (--out-size).

The file is run on random inputs (onnxruntime for ONNX; with --dynamic at two input sizes) and compared with the
eager PyTorch model; the largest absolute difference is printed, and a file that differs by more than
--tolerance is not written.

Formats: onnx (opset 20, torch's dynamo exporter); pt2 (torch.export.save; in Python:
torch.export.load(FILE).module()); torchscript (torch.jit.trace, deprecated in torch 2.14 and warning on load;
for LibTorch/C++ users). Base resizers lanczos and antialiased area export only at a fixed input size, to onnx
or pt2.

Examples:
  taskresize export --resizer runs/learnable --format onnx --dynamic
  taskresize export --resizer resizer.safetensors --format pt2 --in-size 96 --output r.pt2
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from taskresize.commands.options import non_negative_float, size
from taskresize.errors import UserError

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour and cursor codes in the exporters' messages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resizer", required=True, help="resizer file, run folder, hf-hub:ORG/NAME or classic method")
    parser.add_argument("--format", choices=["onnx", "torchscript", "pt2"], default="onnx", help="(onnx)")
    parser.add_argument("--dynamic", action="store_true", help="input height and width free (else fixed)")
    parser.add_argument("--output", help="file to write (default: beside the resizer file, or ./METHOD.onnx)")
    parser.add_argument("--out-size", type=size, metavar="N|HxW",
                        help="output size (default: the resizer's output size)")  # fmt: skip
    parser.add_argument("--in-size", type=size, metavar="N|HxW",
                        help="example input size (default: the resizer's training input)")  # fmt: skip
    parser.add_argument("--normalized", action="store_true", help="export the bare resizer on normalised images")
    parser.add_argument("--device", default="cpu", help="where the exported file is run for the parity check: cpu "
                        "(default), cuda, cuda:N or auto; onnx and torchscript files are made on the CPU, a pt2 "
                        "program on this device (it runs where it was made)")  # fmt: skip
    parser.add_argument("--tolerance", type=non_negative_float, default=0.05,
                        help="largest accepted difference, 0 or more (0.05)")  # fmt: skip


def output_suffix(args: argparse.Namespace) -> str:
    from taskresize.inference.export import FORMATS

    return FORMATS[args.format]


def default_output(resizer: str, fmt: str) -> Path:
    from taskresize.inference.export import FORMATS

    if resizer.startswith("hf-hub:"):  # ./NAME.onnx for hf-hub:ORG/NAME[@REVISION]
        return Path(resizer.split("@")[0].rsplit("/", 1)[-1] + FORMATS[fmt])
    path = Path(resizer)
    if path.is_dir():
        return path / f"resizer{FORMATS[fmt]}"
    if path.is_file():
        return path.with_suffix(FORMATS[fmt])
    return Path(f"{resizer}{FORMATS[fmt]}")


def fixed_size_base(module) -> str | None:
    """The base resizer of ``module`` if it exports only at a fixed input size to onnx or pt2 (lanczos, antialiased
    area: their weight tables are computed in Python from concrete sizes), else None."""
    config = module.config()
    method = getattr(module, "method", None) or config.get("interpolation")
    if method == "lanczos" or (method == "area" and config.get("antialias")):
        return "antialiased area" if method == "area" else method
    return None


def run(args: argparse.Namespace) -> int:
    from taskresize import __version__
    from taskresize.hardware import resolve_device
    from taskresize.inference.export import ExportError, export_resizer
    from taskresize.inference.image import load_image_resizer
    from taskresize.sizes import format_size, to_size

    try:
        size = to_size(args.out_size, what="--out-size") if args.out_size else None
        input_size = to_size(args.in_size, what="--in-size") if args.in_size else None
        resizer = load_image_resizer(args.resizer)
    except ValueError as error:
        raise UserError(str(error)) from None
    input_size = input_size or resizer.in_size
    if input_size is None:
        raise UserError(
            f"{args.resizer} records no training input size: give the example input size, e.g. --in-size 448"
        )
    if size is None and resizer.classic:
        raise UserError(f"--out-size is needed with the classic method {args.resizer!r}, e.g. --out-size 224")
    base = fixed_size_base(resizer.pixels.resizer)
    if base and (args.dynamic or args.format == "torchscript"):
        # refused before tracing: the exporters fail on these only after minutes, printing colour codes
        raise UserError(
            f"{args.resizer}: its base resizer, {base}, builds its weight tables from concrete sizes, so it exports "
            f"only to onnx or pt2 and without --dynamic (given: --format {args.format}"
            f"{' --dynamic' if args.dynamic else ''})"
        )
    output = Path(args.output) if args.output else default_output(args.resizer, args.format)
    if output.is_dir():
        raise UserError(
            f"--output {output} is a folder: give the file to write, e.g. {output / ('resizer' + output_suffix(args))}"
        )
    header = resizer.header or {"name": args.resizer, "config": resizer.pixels.resizer.config()}
    metadata = {
        "taskresize_version": __version__,
        "resizer": header["name"],
        "config": header["config"],
        "input": "normalized: (pixels - mean) / std" if args.normalized else "float32 pixels in [0, 255]",
        "normalization": {"mean": resizer.pixels.mean.flatten().tolist(), "std": resizer.pixels.std.flatten().tolist()},
        "output_size": list(size or resizer.output_size),
        "dynamic": args.dynamic,
        "provenance": header.get("provenance", {}),
    }
    try:
        report = export_resizer(
            resizer.pixels, output, args.format, input_size, size, dynamic=args.dynamic, normalized=args.normalized,
            tolerance=args.tolerance, metadata=metadata, device=resolve_device(args.device),
        )  # fmt: skip
    except ExportError as error:
        raise UserError(ANSI.sub("", str(error))) from None
    inputs = "any HxW" if report.dynamic else format_size(report.input_size)
    runtime = "onnxruntime" if args.format == "onnx" else "the loaded file"
    print(
        f"wrote {report.path} ({args.format}: input (B, 3, H, W) at {inputs}, output {format_size(report.output_size)},"
        f" {'normalised images' if args.normalized else 'float pixels 0-255'}) in {report.seconds:.1f} s"
    )
    for shape, difference in report.checks:
        print(f"  {runtime} vs eager PyTorch on input {shape}: largest absolute difference {difference:.3g}")
    if args.format == "torchscript":
        print("  note: TorchScript is deprecated in torch 2.14; in Python prefer --format pt2")
    return 0
