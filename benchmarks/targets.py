"""The performance targets (issue 18), every row measured in one run: each figure is the median of ratios of
interleaved repeats (A, B, A, B, ...: the machine's drift falls on both), with their range, beside its target.

Rows: uint8 classic resize against Pillow (one thread, 2 MP and 12 MP to 224, contiguous and channels-last);
each learned resizer's share of inference with ResNet-50 at 448 -> 224 beside its FLOP share; the training step
at 256 -> 64 with ResNet-18 and at the paper's 448 -> 224 with ResNet-50 beside the FLOP ratio of the same step;
bf16 against float32 and what ``train --precision bf16-mixed`` does on this CPU. Each section runs in a fresh
process.

    python benchmarks/targets.py [--repeats 7] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from machine import describe
from perf import photo_like
from taskresize import count_flops, create_resizer, resize
from taskresize.hardware import slow_precision
from timing import interleaved

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
LEARNED = ("learnable", "learnable-strided", "downsizenet", "muller")
Row = dict  # {"what", "median", "low", "high", "target", "met", "unit"}


def ratios(a: Callable[[], object], b: Callable[[], object], repeats: int, combine) -> tuple[float, float, float]:
    """``combine(time_a, time_b)`` of each of ``repeats`` interleaved pairs: median, min, max."""
    times = interleaved({"a": a, "b": b}, repeats)
    values = sorted(combine(ta, tb) for ta, tb in zip(times["a"], times["b"], strict=True))
    return statistics.median(values), values[0], values[-1]


def row(what: str, measured: tuple[float, float, float], target: str, met: bool, unit: str = "×") -> Row:
    median, low, high = measured
    return {"what": what, "median": median, "low": low, "high": high, "target": target, "met": met, "unit": unit}


# ------------------------------------------------------------------------------------------------ uint8 classic
def classic_rows(repeats: int) -> list[Row]:
    torch.set_num_threads(1)
    rows = []
    pillow_filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                      "lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}  # fmt: skip
    for label, (h, w) in (("2 MP", (1200, 1600)), ("12 MP", (3000, 4000))):
        pixels = photo_like(h, w)
        pil = Image.fromarray(pixels)
        layouts = {"(3, H, W)": torch.from_numpy(pixels).permute(2, 0, 1).contiguous(),
                   "channels-last view": torch.from_numpy(pixels).permute(2, 0, 1)}  # fmt: skip
        for method, filt in pillow_filters.items():
            for layout, tensor in layouts.items():
                measured = ratios(lambda f=filt, im=pil: im.resize((224, 224), f),
                                       lambda m=method, t=tensor: resize(t, (224, 224), m), repeats,
                                       lambda pillow, ours: pillow / ours)  # fmt: skip
                need = 3.0 if method in ("bilinear", "bicubic") and layout == "(3, H, W)" else (
                    2.0 if method in ("lanczos", "area") else 1.0)  # fmt: skip
                rows.append(row(f"uint8 {method}, {label} {layout} → 224, 1 thread, speed-up over Pillow", measured,
                                f"≥ {need:g}×", measured[0] >= need))  # fmt: skip
                print(rows[-1], flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ learned, eval
def inference_rows(repeats: int) -> list[Row]:
    torch.set_num_threads(2)
    backbone = torchvision.models.resnet50().eval().to(memory_format=torch.channels_last)
    x = torch.rand(8, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    y = torch.rand(8, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    backbone_flops = count_flops(backbone, (1, 3, 224, 224))
    rows = []
    with torch.inference_mode():
        for name in LEARNED:
            resizer = create_resizer(name, output_size=224).eval().fuse()
            flops = count_flops(resizer, (1, 3, 448, 448))
            flop_share = flops / (flops + backbone_flops)
            measured = ratios(lambda r=resizer: r(x), lambda: backbone(y), repeats, lambda a, b: a / (a + b))
            rows.append(row(f"{name}: share of inference, 448→224 + ResNet-50, batch 8, fp32, 2 threads", measured,
                            f"≤ its FLOP share {flop_share:.1%}", measured[0] <= flop_share, unit="%"))  # fmt: skip
            print(rows[-1], flush=True)
    return rows


# -------------------------------------------------------------------------------------------------- training
def training_step(name: str, in_size: int, out_size: int, batch: int, backbone: str = "resnet18", **kwargs):
    """One SGD step of resizer ``name`` (``kwargs`` its options) and a 10-class ``backbone``, on a fixed batch."""
    torch.manual_seed(0)
    resizer = create_resizer(name, output_size=out_size, **kwargs)
    model = getattr(torchvision.models, backbone)(num_classes=10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([*resizer.parameters(), *model.parameters()], lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, in_size, in_size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(resizer(x)), labels).backward()
        optimizer.step()

    return step


def _step_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def training_rows(repeats: int) -> list[Row]:
    torch.set_num_threads(2)
    rows = []
    settings = [(name, 256, 64, 32, "resnet18") for name in LEARNED] + [("learnable", 448, 224, 8, "resnet50")]
    for name, in_size, out_size, batch, backbone in settings:
        learned = training_step(name, in_size, out_size, batch, backbone)
        plain = training_step("bilinear", out_size, out_size, batch, backbone)
        flop_ratio = _step_flops(learned) / _step_flops(plain)
        measured = ratios(learned, plain, repeats if backbone == "resnet18" else max(3, repeats // 2),
                               lambda a, b: a / b)  # fmt: skip
        what = (f"{name} {in_size}→{out_size} + {backbone}, batch {batch}: training step × bilinear at {out_size} "
                f"(FLOP ratio {flop_ratio:.2f})")  # fmt: skip
        rows.append(row(what, measured, f"≤ 1.1 × {flop_ratio:.2f} = {1.1 * flop_ratio:.2f}×",
                        measured[0] <= 1.1 * flop_ratio))  # fmt: skip
        print(rows[-1], flush=True)
    return rows


# ------------------------------------------------------------------------------------------------------- bf16
def bf16_rows(repeats: int) -> list[Row]:
    torch.set_num_threads(2)
    resizer = create_resizer("learnable", output_size=224).eval()
    x = torch.rand(2, 3, 448, 448).contiguous(memory_format=torch.channels_last)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            resizer(x)

    with torch.inference_mode():
        measured = ratios(lambda: resizer(x), bf16, repeats, lambda f32, b16: f32 / b16)
    refused = slow_precision("bf16-mixed", "cpu")
    target = "chosen by what the CPU supports: never silently many times slower (< 0.5×: refused)"
    verdict = "train --precision bf16-mixed refuses here" if refused else "train --precision bf16-mixed runs here"
    met = bool(refused) if measured[0] < 0.5 else not refused
    return [row(f"learnable 448→224, batch 2: bf16 autocast speed ÷ fp32 ({verdict})", measured, target, met)]


SECTIONS = {"classic": classic_rows, "inference": inference_rows, "training": training_rows, "bf16": bf16_rows}


def _child(section: str, repeats: int) -> list[Row]:
    command = [sys.executable, __file__, "--child", section, "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _format(rows: list[Row]) -> str:
    lines = ["| what | measured: median (range) | target | met |", "|---|---:|---|---|"]
    for r in rows:
        scale, unit = (100, "%") if r["unit"] == "%" else (1, "×")
        median, low, high = (r[k] * scale for k in ("median", "low", "high"))
        met = "yes" if r["met"] else "**no**"
        lines.append(f"| {r['what']} | {median:.2f}{unit} ({low:.2f}-{high:.2f}) | {r['target']} | {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    parser.add_argument("--child", choices=list(SECTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(SECTIONS[args.child](args.repeats)))
        return
    parts = []
    for section in args.only:
        print(f"== {section}", flush=True)
        parts.append(f"**{section}**\n\n" + _format(_child(section, args.repeats)))
        print(parts[-1], flush=True)
    command = "python benchmarks/targets.py" + (f" --only {' '.join(args.only)}" if args.only != list(SECTIONS) else "")
    text = (f"### Performance targets (issue 18), {dt.date.today().isoformat()}\n\n`{command} --repeats "
            f"{args.repeats}` — {describe()}, numpy {np.__version__}.\n\n" + "\n\n".join(parts))  # fmt: skip
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
