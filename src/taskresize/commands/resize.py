"""Resize image files and folders with a trained resizer or a classic method.

Folders are searched recursively and their images written to the same relative paths under --out, with the
extension of --format. Each image is decoded (EXIF orientation applied; any Pillow mode becomes RGB, transparency
on white, 16-bit scaled), then:
  - a learned resizer (a .safetensors file or a run folder) first pre-resizes it to the resizer's training input
    size, as the training data loader did (--in-size changes or, with 'none', skips this), then resizes it in
    float and rounds to uint8;
  - a classic METHOD (bilinear, bicubic, lanczos, area, nearest) resizes it in uint8 with Pillow's antialiased
    algorithm (taskresize.resize), no float.
--keep-aspect fits the image inside HxW keeping its aspect ratio (Pillow's ImageOps.contain): the limiting side
becomes H or W exactly, the other is scaled by the same factor and rounded (at least 1 px); small images grow.

Inputs are never overwritten: if an output path would be an input, or --out is an input folder or inside one,
nothing is written; an --out that cannot be created or written to is refused before any image is decoded. Files
that cannot be decoded are skipped with a warning; the summary lists them and the exit status is then 1.

Examples:
  taskresize resize --resizer runs/learnable photos/ --out small/
  taskresize resize --resizer lanczos photos/ --out small/ --size 224 --keep-aspect --format jpg --quality 90
"""

from __future__ import annotations

import argparse
import sys

from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resizer", required=True, help="resizer file, run folder, hf-hub:ORG/NAME or classic method")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--size", help="output size N or HxW (default: the learned resizer's output size)")
    parser.add_argument(
        "--in-size", help="learned resizers: pre-resize to N or HxW first, or 'none' (default: its training input)"
    )
    parser.add_argument("--keep-aspect", action="store_true", help="fit inside --size keeping the aspect ratio")
    parser.add_argument("--format", choices=["png", "jpg", "webp"], default="png", help="output format (png)")
    parser.add_argument("--quality", type=int, default=95, help="jpg / webp quality, 1-100 (95)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass of a learned resizer")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (0: decode in this process)")
    parser.add_argument(
        "--engine", choices=["torch", "compile", "onnxruntime"], default="torch",
        help="what runs a learned resizer: eager PyTorch (default), torch.compile (compiles per image size, "
        "seconds to a minute) or ONNX Runtime (exports per image size and checks the export, a few seconds); "
        "docs/results.md measures what each gains; "
        "outputs equal the default's within 1 grey level",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="where the learned resizer runs: auto (a GPU if there is "
                        "one, default), cpu, cuda, cuda:N, mps; decoding and the uint8 pre-resize stay on the "
                        "CPU")  # fmt: skip
    parser.add_argument("--max-pixels", type=int, help="skip larger images as possible decompression bombs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: on a terminal)")


def run(args: argparse.Namespace) -> int:
    from taskresize.data.decode import DEFAULT_MAX_PIXELS
    from taskresize.inference.files import (
        OutputConflictError,
        OutputFolderError,
        check_output_folder,
        plan_jobs,
        remove_empty_folders,
        resize_files,
    )
    from taskresize.inference.image import load_image_resizer
    from taskresize.sizes import to_size

    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality {args.quality}: use a value from 1 to 100")
    if args.batch_size < 1 or args.workers < 0:
        raise UserError("--batch-size must be at least 1 and --workers at least 0")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise UserError(f"--max-pixels {args.max_pixels}: give a positive number of pixels")
    try:
        size = to_size(args.size, what="--size") if args.size else None
        if args.in_size is None:
            in_size = "auto"
        else:
            in_size = None if args.in_size.lower() == "none" else to_size(args.in_size, what="--in-size")
        resizer = load_image_resizer(args.resizer, in_size=in_size, engine=args.engine, device=args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    if size is None and resizer.classic:
        raise UserError(f"--size is needed with the classic method {args.resizer!r}, e.g. --size 224")
    try:
        jobs, ignored = plan_jobs(args.inputs, args.out, args.format)
    except (FileNotFoundError, OutputConflictError) as error:
        raise UserError(str(error)) from None
    if not jobs:
        raise UserError(f"no image files in {', '.join(args.inputs)} (extensions .jpg .png .webp .bmp .tif .gif)")
    try:
        created = check_output_folder(args.out)  # before decoding: an unwritable --out fails once, not per image
    except OutputFolderError as error:
        raise UserError(str(error)) from None

    print(f"{len(jobs)} image{'s' * (len(jobs) != 1)}: {resizer.describe(size, args.keep_aspect)}", file=sys.stderr)
    summary = resize_files(
        jobs, resizer, size, keep_aspect=args.keep_aspect, fmt=args.format, quality=args.quality,
        batch_size=args.batch_size, workers=args.workers, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        progress=False if args.no_progress else None,
    )  # fmt: skip
    summary.ignored = ignored
    if not summary.written:
        remove_empty_folders(created)  # leave no empty --out behind
    for line in summary.lines(args.out):
        print(line)
    return 1 if summary.skipped else 0
