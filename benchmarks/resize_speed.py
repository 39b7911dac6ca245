"""Speed of every registered resizer beside F.interpolate and Pillow, on the same images.

Float32, channels_last, batch 32 (by default) at 448->224 and 1024->224. Pillow resizes the same images as uint8
RGB, one at a time (it has no batch). Prints a Markdown table; ``--append`` adds it, dated, to docs/results.md.

    python benchmarks/resize_speed.py [--threads 1] [--batch 32] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import taskresize
from taskresize import create_resizer, list_resizers
from timing import timed

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
PILLOW = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
          "lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}  # fmt: skip


def images(batch: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields with noise: ``(batch, size, size, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((batch, 3, 8, 8)).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bicubic", align_corners=False)
    noisy = smooth.numpy().transpose(0, 2, 3, 1) * 200 + rng.normal(0, 20, (batch, size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def run(batch: int, sizes: list[int], out: int, repeats: int) -> list[dict]:
    rows = []
    for size in sizes:
        pixels = images(batch, size)
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255).contiguous(memory_format=torch.channels_last)
        pil = [Image.fromarray(p) for p in pixels]
        entries: list[tuple[str, Callable[[], object]]] = []
        for method, resample in PILLOW.items():
            entries.append((f"Pillow {method} (uint8, one image at a time)",
                            lambda r=resample, p=pil: [im.resize((out, out), r) for im in p]))  # fmt: skip
        for mode in ("bilinear", "bicubic"):
            entries.append((f"F.interpolate {mode} antialias",
                            lambda m=mode, t=x: F.interpolate(t, size=(out, out), mode=m, antialias=True)))  # fmt: skip
        for name in list_resizers():
            module = create_resizer(name, output_size=out).eval()
            entries.append((f"taskresize {name}", lambda m=module, t=x: m(t)))
        for label, fn in entries:
            with torch.inference_mode():
                seconds = timed(fn, repeats)
            rows.append({"input": size, "resizer": label, "images_per_s": batch / seconds})
            print(f"{size}->{out} {label:48s} {batch / seconds:10.1f} img/s", flush=True)
    return rows


def table(rows: list[dict], out: int) -> str:
    lines = []
    for size in sorted({r["input"] for r in rows}):
        subset = [r for r in rows if r["input"] == size]
        pillow = next(r["images_per_s"] for r in subset if r["resizer"].startswith("Pillow bilinear"))
        interp = next(r["images_per_s"] for r in subset if r["resizer"] == "F.interpolate bilinear antialias")
        lines += [f"\n**{size}→{out}**\n", "| resizer | images/s | × Pillow bilinear | × F.interpolate bilinear |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for r in subset:
            v = r["images_per_s"]
            lines.append(f"| {r['resizer']} | {v:,.1f} | {v / pillow:.2f} | {v / interp:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Pillow is single-threaded)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[448, 1024])
    parser.add_argument("--out", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--append", action="store_true", help=f"append the table to {RESULTS}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args.batch, args.sizes, args.out, args.repeats)
    command = "python benchmarks/resize_speed.py " + " ".join(
        f"--{k} {v}" for k, v in [("threads", args.threads), ("batch", args.batch)]
    )
    header = (
        f"### Resizer speed, {dt.date.today().isoformat()}\n\n"
        f"`{command}` — taskresize {taskresize.__version__}, torch {torch.__version__}, "
        f"Pillow {Image.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s); "
        f"float32 channels_last batch {args.batch}, median of {args.repeats}. Learned resizers are untrained "
        "(speed does not depend on the weights)."
    )
    text = header + "\n" + table(rows, args.out) + "\n"
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
