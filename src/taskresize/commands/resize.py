"""Resize image files and folders with a trained resizer or a classic method.

Folders are searched recursively and their images written to the same relative paths under --output, with the
extension of --format. Each image is decoded (EXIF orientation applied; any Pillow mode becomes RGB, transparency
on white, 16-bit scaled), then:
  - a learned resizer (a .safetensors file or a run folder) first pre-resizes it to the resizer's training input
    size, as the training data loader did (--in-size changes or, with 'none', skips this), then resizes it in
    float and rounds to uint8;
  - a classic METHOD (bilinear, bicubic, lanczos, area, nearest) resizes it in uint8 with Pillow's antialiased
    algorithm (taskresize.resize), no float.
--keep-aspect fits the image inside --out-size HxW keeping its aspect ratio (Pillow's ImageOps.contain): the
limiting side becomes H or W exactly, the other is scaled by the same factor and rounded (at least 1 px); small
images grow.

Nothing of yours is overwritten: if an output path would be an input, or --output is an input folder or inside one,
or an output file exists already (unless --overwrite), nothing is written; an --output that cannot be created or
written to, or an --out-size beyond this machine's memory, is refused before any image is decoded. Files that
cannot be decoded are skipped, each named in a warning as it happens; the summary counts them and the exit status
is then 1. Progress: a bar on a terminal, else a line every ten seconds (--no-progress: none). On a CPU, freed
memory is kept for reuse (--no-retain-freed-memory: not).

Exit status: 0 all written; 1 some files skipped (listed); 2 nothing done, the line says what to change.

Examples:
  taskresize resize --resizer runs/learnable photos/ --output small/
  taskresize resize --resizer lanczos photos/ --output small/ --out-size 224 --keep-aspect --format jpg --quality 90
"""

from __future__ import annotations

import argparse
import sys

from taskresize.commands.options import (
    add_retain_flag,
    format_bytes,
    non_negative_int,
    positive_int,
    quality,
    retain_freed_memory_unless,
    size,
    size_or_none,
    total_memory,
)
from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resizer", required=True, help="resizer file, run folder, hf-hub:ORG/NAME or classic method")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--out-size", type=size, metavar="N|HxW",
                        help="output size (default: the learned resizer's output size)")  # fmt: skip
    parser.add_argument("--in-size", type=size_or_none, metavar="N|HxW|none",
                        help="learned resizers only: pre-resize to this size first, or 'none' (default: its training "
                        "input size)")  # fmt: skip
    parser.add_argument("--keep-aspect", action="store_true", help="fit inside --out-size keeping the aspect ratio")
    parser.add_argument("--format", choices=["png", "jpg", "webp"], default="png", help="output format (png)")
    parser.add_argument("--quality", type=quality, default=95, help="jpg / webp quality, 1-100 (95)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files that exist in --output already (default: refuse, writing nothing)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="images per forward pass of a learned resizer (16)")  # fmt: skip
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="data-loading (decoding) processes (0: decode in this process)")  # fmt: skip
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
    parser.add_argument("--max-pixels", type=positive_int, help="skip larger images as possible decompression bombs")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress (default: a bar on a terminal, else a line every ten seconds)",
    )
    add_retain_flag(parser)


def memory_needed(size: tuple[int, int], in_size: tuple[int, int] | None, learned: bool, batch_size: int) -> int:
    """Bytes one image needs at the least at these sizes: its uint8 result and, for a learned resizer, a float32
    batch at the input and at the output size."""
    pixels = size[0] * size[1]
    if not learned:
        return 3 * pixels * 2  # Pillow's result and its tensor
    inputs = in_size[0] * in_size[1] if in_size else 0
    return 3 * pixels + batch_size * 3 * (inputs + pixels) * 4


def run(args: argparse.Namespace) -> int:
    from taskresize.sizes import to_size

    size = to_size(args.out_size, what="--out-size") if args.out_size else None
    if args.in_size is None:
        in_size = "auto"
    else:
        in_size = None if args.in_size.lower() == "none" else to_size(args.in_size, what="--in-size")

    from taskresize.data.decode import DEFAULT_MAX_PIXELS
    from taskresize.inference.files import (
        OutputConflictError,
        OutputFolderError,
        check_output_folder,
        existing_targets,
        plan_jobs,
        remove_empty_folders,
        resize_files,
    )
    from taskresize.inference.image import load_image_resizer

    try:
        resizer = load_image_resizer(args.resizer, in_size=in_size, engine=args.engine, device=args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    if resizer.classic and args.in_size is not None:
        raise UserError(
            f"--in-size {args.in_size}: {args.resizer!r} is a classic method, which resizes each image directly to "
            "--out-size; leave --in-size out (it is the pre-resize of a learned resizer)"
        )
    if size is None and resizer.classic:
        raise UserError(f"--out-size is needed with the classic method {args.resizer!r}, e.g. --out-size 224")
    needed = memory_needed(size or resizer.output_size, resizer.in_size, not resizer.classic, args.batch_size)
    available = total_memory()
    if available is not None and needed > available:
        raise UserError(
            f"--out-size {args.out_size or 'default'}: one image needs at least {format_bytes(needed)} of memory at "
            f"this size, and this machine has {format_bytes(available)}; give a smaller --out-size"
            + (" or --batch-size" if not resizer.classic and args.batch_size > 1 else "")
        )
    try:
        jobs, ignored = plan_jobs(args.inputs, args.output, args.format)
    except (FileNotFoundError, OutputConflictError) as error:
        raise UserError(str(error)) from None
    if not jobs:
        raise UserError(f"no image files in {', '.join(args.inputs)} (extensions .jpg .png .webp .bmp .tif .gif)")
    existing = existing_targets(jobs)
    if existing and not args.overwrite:
        more = f" and {len(existing) - 2} more" if len(existing) > 2 else ""
        shown = ", ".join(str(p) for p in existing[:2]) + more
        raise UserError(
            f"{len(existing)} output file{'s' * (len(existing) != 1)} already exist{'s' * (len(existing) == 1)} "
            f"({shown}): nothing was written; pass --overwrite to replace them, or choose another --output"
        )
    try:
        created = check_output_folder(args.output)  # before decoding: an unwritable --output fails once, not per image
    except OutputFolderError as error:
        raise UserError(str(error)) from None
    retain_freed_memory_unless(args, on_cpu=resizer.classic or resizer.device.type == "cpu")

    print(f"{len(jobs)} image{'s' * (len(jobs) != 1)}: {resizer.describe(size, args.keep_aspect)}", file=sys.stderr)
    try:
        summary = resize_files(
            jobs, resizer, size, keep_aspect=args.keep_aspect, fmt=args.format, quality=args.quality,
            batch_size=args.batch_size, workers=args.workers, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
            progress=False if args.no_progress else None,
        )  # fmt: skip
    except BaseException:  # a full disk, Ctrl-C: the whole images written so far stay, an empty --output does not
        remove_empty_folders(created)
        raise
    summary.ignored = ignored
    if not summary.written:
        remove_empty_folders(created)  # leave no empty --output behind
    for line in summary.lines(args.output):
        print(line)
    return 1 if summary.skipped else 0
