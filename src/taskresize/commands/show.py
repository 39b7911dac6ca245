"""Show what a learned resizer does: each image, bicubic, the learned resizer, and their amplified difference.

Each image is first pre-resized to the resizer's input size as in training (--in-size to change it), then resized
to the output size (--out-size) by Pillow's antialiased bicubic and by the learned resizer; the last column is
|learned - bicubic| x --amplify (as Talebi & Milanfar, Figs. 2 and 4-6). All panels are drawn at the larger of the
input and output sizes with nearest-neighbour pixels, so no pixel is hidden.

Example:
  taskresize show --resizer runs/learnable photo1.jpg photo2.png --output resized.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskresize.commands.options import positive_float, size
from taskresize.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resizer", required=True, help="resizer file, run folder or hf-hub:ORG/NAME")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--output", required=True, help="figure to write (PNG)")
    parser.add_argument("--out-size", type=size, metavar="N|HxW",
                        help="output size (default: the resizer's output size)")  # fmt: skip
    parser.add_argument("--in-size", type=size, metavar="N|HxW",
                        help="input size (default: the resizer's training input size)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="where the learned resizer runs: auto (a GPU if there is "
                        "one, default), cpu, cuda, cuda:N, mps; decoding and the uint8 pre-resize stay on the "
                        "CPU")  # fmt: skip
    parser.add_argument("--amplify", type=positive_float, default=4.0, help="factor on the difference column (4)")


def run(args: argparse.Namespace) -> int:
    import torch

    from taskresize.data.decode import load_image
    from taskresize.experiments.figures import comparison_figure, saliency_column
    from taskresize.inference.image import load_image_resizer
    from taskresize.resizers import resize
    from taskresize.sizes import format_size, to_size

    try:
        size = to_size(args.out_size, what="--out-size") if args.out_size else None
        in_size = to_size(args.in_size, what="--in-size") if args.in_size else "auto"
        resizer = load_image_resizer(args.resizer, in_size=in_size, device=args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    if resizer.classic:
        raise UserError(f"{args.resizer} is a classic method: show compares a learned resizer with bicubic")
    if resizer.in_size is None:
        raise UserError(f"{args.resizer} records no training input size: give one, e.g. --in-size 448")
    out = size or resizer.output_size
    images = torch.stack([resize(load_image(p), resizer.in_size, *resizer.pre_resize) for p in args.images])
    name = resizer.pixels.resizer.resizer_name
    columns = {
        "bicubic": lambda x: resize(x, out, "bicubic", antialias=True),
        name: lambda x: resizer.finish(x, out),
    }
    saliency = saliency_column(resizer.pixels)
    if saliency is not None:  # a saliency sampler: where it spends its output pixels
        columns["saliency map"] = saliency
    title = f"{args.resizer}: {format_size(resizer.in_size)} -> {format_size(out)}"
    if Path(args.output).is_dir():
        raise UserError(f"--output {args.output} is a folder: give the figure's file name, e.g. {args.output}/show.png")
    path = comparison_figure(images, columns, args.output, reference="bicubic", amplify=args.amplify, title=title)
    print(f"wrote {path}")
    return 0
