"""The performance targets, every row measured in one run: each figure is the median of ratios of
interleaved repeats (A, B, A, B, ...: the machine's drift falls on both), with their range, beside its target.

Rows: uint8 classic resize against Pillow (one thread, 2 MP and 12 MP to 224, contiguous and channels-last);
each learned resizer's share of inference with ResNet-50 at 448 -> 224 beside its FLOP share; the training step
at 256 -> 64 with ResNet-18 and at the paper's 448 -> 224 with ResNet-50 beside the FLOP ratio of the same step;
bf16 against float32 and what ``train --precision bf16-mixed`` does on this CPU. Each section runs in a fresh
process.

A learned row's target holds when the resizer computes its FLOPs about as fast as the backbone computes its own.
Each such row also says where the resizer's time goes (:func:`split`, three profiled calls after the
timed ones): its GFLOP/s and the backbone's, the GFLOP/s of its convolutions and matrix products alone, the share
its other operators (activations, BatchNorm, statistics, resizes, blurs, copies: memory passes that carry few or
no counted FLOPs) take of its time, and the figure the row would reach if those passes cost nothing.

Each row also shows its figure in the newest targets table of docs/results.md and the change from it, so that a
change of code is read against what the project measured before it.

    python benchmarks/targets.py [--repeats 7] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
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
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from machine import describe
from perf import photo_like
from taskresize import count_flops, create_resizer, resize
from taskresize.hardware import slow_precision
from timing import interleaved

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
LEARNED = ("learnable", "learnable-strided", "downsizenet", "muller")
Row = dict  # {"what", "median", "low", "high", "target", "met", "unit", "where"}


def ratios(a: Callable[[], object], b: Callable[[], object], repeats: int, combine) -> tuple[float, float, float]:
    """``combine(time_a, time_b)`` of each of ``repeats`` interleaved pairs: median, min, max."""
    return timed_ratios(a, b, repeats, combine)[0]


def timed_ratios(a: Callable[[], object], b: Callable[[], object], repeats: int, combine):
    """:func:`ratios`, and the median seconds of ``a`` and of ``b``."""
    times = interleaved({"a": a, "b": b}, repeats)
    values = sorted(combine(ta, tb) for ta, tb in zip(times["a"], times["b"], strict=True))
    return (
        (statistics.median(values), values[0], values[-1]),
        statistics.median(times["a"]),
        statistics.median(times["b"]),
    )


def row(
    what: str, measured: tuple[float, float, float], target: str, met: bool, unit: str = "×", where: str = ""
) -> Row:
    median, low, high = measured
    return {"what": what, "median": median, "low": low, "high": high, "target": target, "met": met, "unit": unit,
            "where": where}  # fmt: skip


# Operators that run convolutions and matrix products: compute-bound kernels (oneDNN, BLAS) and, in a training
# step's FLOP count (FlopCounterMode), the only ones counted.
_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear")


def split(fn: Callable[[], object], calls: int = 3) -> tuple[float, float]:
    """Seconds of ``calls`` calls of ``fn`` in convolutions and matrix products, and in every other operator (the
    operators' self times, torch.profiler; one call runs before, unprofiled)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    products = other = 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        if is_product(event.key):
            products += seconds
        else:
            other += seconds
    return products, other


def is_product(operator: str) -> bool:
    """Whether the profiler's ``operator`` is a convolution (aten's, its backward, oneDNN's fused ones) or a matrix
    product."""
    return operator.startswith(_PRODUCTS) or "convolution" in operator


def where_time_goes(gflops_resizer: float, gflops_backbone: float, gflops_products: float, other_share: float,
                    if_free: str) -> str:  # fmt: skip
    """The explanation column of a learned row (see the module docstring)."""
    products = f"{gflops_products:.0f}" if math.isfinite(gflops_products) else "–"
    return (
        f"resizer {gflops_resizer:.0f} GFLOP/s, backbone {gflops_backbone:.0f}; its convolutions and matrix "
        f"products {products} GFLOP/s; other operators {other_share:.0%} of its time; were they free: {if_free}"
    )


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
            measured, t_resizer, t_backbone = timed_ratios(lambda r=resizer: r(x), lambda: backbone(y), repeats,
                                                           lambda a, b: a / (a + b))  # fmt: skip
            products, other = split(lambda r=resizer: r(x))
            t_products = t_resizer * products / (products + other)  # the profile's fraction of the timed median
            where = where_time_goes(
                8 * flops / t_resizer / 1e9, 8 * backbone_flops / t_backbone / 1e9,
                8 * _product_flops(resizer, (1, 3, 448, 448)) / t_products / 1e9 if products else math.nan,
                other / (products + other), f"share {t_products / (t_products + t_backbone):.1%}",
            )  # fmt: skip
            rows.append(row(f"{name}: share of inference, 448→224 + ResNet-50, batch 8, fp32, 2 threads", measured,
                            f"≤ its FLOP share {flop_share:.1%}", measured[0] <= flop_share, unit="%",
                            where=where))  # fmt: skip
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
    """FLOPs of convolutions and matrix products in one call of ``step`` (FlopCounterMode's count)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def _product_flops(resizer: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of the convolutions and matrix products of one eval forward pass (without the resampling taps that
    ``count_flops`` adds by formula)."""
    with torch.inference_mode():
        return _step_flops(lambda: resizer(torch.zeros(shape).contiguous(memory_format=torch.channels_last)))


def training_rows(repeats: int) -> list[Row]:
    torch.set_num_threads(2)
    rows = []
    settings = [(name, 256, 64, 32, "resnet18") for name in LEARNED] + [("learnable", 448, 224, 8, "resnet50")]
    for name, in_size, out_size, batch, backbone in settings:
        learned = training_step(name, in_size, out_size, batch, backbone)
        plain = training_step("bilinear", out_size, out_size, batch, backbone)
        flops_plain = _step_flops(plain)
        flop_ratio = _step_flops(learned) / flops_plain
        measured, t_learned, t_plain = timed_ratios(learned, plain, repeats if backbone == "resnet18" else max(
            3, repeats // 2), lambda a, b: a / b)  # fmt: skip
        what = (f"{name} {in_size}→{out_size} + {backbone}, batch {batch}: training step × bilinear at {out_size} "
                f"(FLOP ratio {flop_ratio:.2f})")  # fmt: skip
        (products, other), (b_products, b_other) = split(learned), split(plain)
        # the resizer's part of the step: what the learned step adds to the plain one, in time, in the profile's
        # operators and in FLOPs (all of them in convolutions and matrix products here)
        extra, extra_products, extra_other = t_learned - t_plain, products - b_products, other - b_other
        other_share = min(1.0, max(0.0, extra_other / (extra_products + extra_other)))
        extra_flops = flop_ratio * flops_plain - flops_plain
        where = where_time_goes(
            extra_flops / extra / 1e9, flops_plain / t_plain / 1e9,
            extra_flops / ((1 - other_share) * extra) / 1e9 if other_share < 1 else math.nan, other_share,
            f"{(t_plain + (1 - other_share) * extra) / t_plain:.2f}×",
        )  # fmt: skip
        rows.append(row(what, measured, f"≤ 1.1 × {flop_ratio:.2f} = {1.1 * flop_ratio:.2f}×",
                        measured[0] <= 1.1 * flop_ratio, where=where))  # fmt: skip
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


_HEADING = re.compile(r"^### Performance targets.*?(\d{4}-\d{2}-\d{2})\s*$")
_ROW = re.compile(r"^\| (?P<what>[^|]+?) \| (?P<median>-?[\d.]+)(?P<unit>[%×]) \(")


def recorded(results: str) -> dict[str, tuple[float, str, str]]:
    """The newest recorded figure of every targets row in the text of docs/results.md: ``what`` -> ``(median, unit,
    date)``, from the first table that has the row (the file holds the newest tables first)."""
    figures: dict[str, tuple[float, str, str]] = {}
    date = None
    for line in results.splitlines():
        if line.startswith("### "):
            heading = _HEADING.match(line)
            date = heading.group(1) if heading else None
        elif date and (match := _ROW.match(line)):
            figures.setdefault(match["what"], (float(match["median"]), match["unit"], date))
    return figures


def change(r: Row, before: tuple[float, str, str] | None) -> str:
    """The row's median against its recorded one: points for a share, a factor for a ratio."""
    if before is None:
        return "new row"
    value, unit, date = before
    if unit == "%":
        return f"{value:.2f}% on {date}: {100 * r['median'] - value:+.2f} points"
    return f"{value:.2f}× on {date}: ×{r['median'] / value:.2f}"


def _format(rows: list[Row], before: dict[str, tuple[float, str, str]]) -> str:
    explained = any(r.get("where") for r in rows)
    lines = ["| what | measured: median (range) | target | met | last recorded: change |"
             + (" where the resizer's time goes |" * explained),
             "|---|---:|---|---|---|" + ("---|" * explained)]  # fmt: skip
    for r in rows:
        scale, unit = (100, "%") if r["unit"] == "%" else (1, "×")
        median, low, high = (r[k] * scale for k in ("median", "low", "high"))
        met = "yes" if r["met"] else "**no**"
        line = f"| {r['what']} | {median:.2f}{unit} ({low:.2f}-{high:.2f}) | {r['target']} | {met} | "
        line += change(r, before.get(r["what"])) + " |"
        lines.append(line + (f" {r.get('where', '')} |" * explained))
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
    before = recorded(RESULTS.read_text()) if RESULTS.exists() else {}
    for section in args.only:
        print(f"== {section}", flush=True)
        parts.append(f"**{section}**\n\n" + _format(_child(section, args.repeats), before))
        print(parts[-1], flush=True)
    command = "python benchmarks/targets.py" + (f" --only {' '.join(args.only)}" if args.only != list(SECTIONS) else "")
    text = (f"### Performance targets, {dt.date.today().isoformat()}\n\n`{command} --repeats "
            f"{args.repeats}` — {describe()}, numpy {np.__version__}.\n\n" + "\n\n".join(parts))  # fmt: skip
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
