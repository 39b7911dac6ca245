"""The alternatives measured for the learned resizers' CPU paths (issue 18), against what the code does: the
figures docs/results.md gives for choices made and dropped. Medians of interleaved repeats, 2 threads.

    python benchmarks/alternatives.py [--repeats 9] [--only SECTION] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from machine import describe
from targets import training_step
from taskresize import create_resizer, hardware
from taskresize.resizers import cpu_inference
from taskresize.resizers.batchnorm import moments
from timing import interleaved

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved."""
    return {name: statistics.median(t) for name, t in interleaved(fns, repeats).items()}


def head(repeats: int) -> list[str]:
    """The learnable resizer's last convolution, 16 -> 3 channels, 7x7, at 224 x 224: directly or by phases."""
    layer = torch.nn.Conv2d(16, 3, 7, padding=3).eval()
    x = torch.rand(1, 16, 224, 224).contiguous(memory_format=torch.channels_last)
    direct = torch.ops.mkldnn._convolution_pointwise
    with torch.inference_mode():
        t = medians({"direct": lambda: direct(x, layer.weight, layer.bias, [3, 3], [1, 1], [1, 1], 1, "none", [], ""),
                     "phases": lambda: cpu_inference.conv(x, layer)}, repeats)  # fmt: skip
    return [f"| head 16→3, 7×7, 224², one image | direct {t['direct'] * 1e3:.2f} ms | by phases "
            f"{t['phases'] * 1e3:.2f} ms ({t['direct'] / t['phases']:.1f}×) |"]  # fmt: skip


def blur(repeats: int) -> list[str]:
    """MULLER's blur of one 448 x 448 image: depthwise convolutions (the former code) against shifted sums."""
    muller = create_resizer("muller", output_size=224)
    taps = muller.taps

    def depthwise(x):
        c, pad = x.shape[1], muller.kernel_size // 2
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="replicate"), taps.reshape(1, 1, 1, -1).expand(c, 1, 1, -1),
                     groups=c)  # fmt: skip
        return F.conv2d(F.pad(x, (0, 0, pad, pad), mode="replicate"), taps.reshape(1, 1, -1, 1).expand(c, 1, -1, 1),
                        groups=c)  # fmt: skip

    rows = []
    for label, layout in (("contiguous", torch.contiguous_format), ("channels-last", torch.channels_last)):
        x = torch.rand(1, 3, 448, 448).contiguous(memory_format=layout)
        with torch.inference_mode():
            t = medians({"conv": lambda x=x: depthwise(x), "shifts": lambda x=x: muller.blur(x)}, repeats)
        rows.append(f"| MULLER blur, 448², {label} | depthwise conv {t['conv'] * 1e3:.2f} ms | shifted sums "
                    f"{t['shifts'] * 1e3:.2f} ms ({t['conv'] / t['shifts']:.1f}×) |")  # fmt: skip
    return rows


def statistics_pass(repeats: int) -> list[str]:
    """Batch statistics of a channels-last (2, 16, 256, 256) map, forward and backward: torch.var_mean, and the
    sum with a dot product of squares (the former forward of ``moments``), against ``moments``."""
    h = (torch.randn(2, 16, 256, 256) * 2 + 1).contiguous(memory_format=torch.channels_last).requires_grad_()

    def var_mean():
        var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=0)
        (var.sum() + mean.sum()).backward()

    def sum_of_squares():
        rows = h.movedim(1, -1).reshape(-1, h.shape[1])
        mean = rows.sum(0) / rows.shape[0]
        m2 = torch.linalg.vecdot(rows.T, rows.T) - rows.shape[0] * mean * mean
        (m2.sum() + mean.sum()).backward()

    def ours():
        mean, m2 = moments(h)
        (m2.sum() + mean.sum()).backward()

    t = medians({"torch.var_mean": var_mean, "sum and dot product of squares": sum_of_squares, "moments": ours},
                repeats)  # fmt: skip
    return [f"| BatchNorm statistics, (2, 16, 256²), forward + backward | {label} {t[label] * 1e3:.2f} ms | moments "
            f"{t['moments'] * 1e3:.2f} ms ({t[label] / t['moments']:.1f}×) |"
            for label in ("torch.var_mean", "sum and dot product of squares")]  # fmt: skip


def training_chunks(repeats: int) -> list[str]:
    """The learnable training step at 256 -> 64, batch 16, by chunk size and with checkpointing, × bilinear."""
    default = cpu_inference._CHUNK_ELEMENTS
    rows = []
    settings = [(f"chunks of {n >> 20} M elements ({4 * n >> 20} MB)", n, {}) for n in (1 << 20, 1 << 21, 1 << 22,
                                                                                      1 << 23, 1 << 26)]  # fmt: skip
    settings.append(("chunks of 2 M elements, checkpoint=True", 1 << 21, {"checkpoint": True}))
    try:
        for label, elements, kwargs in settings:
            cpu_inference._CHUNK_ELEMENTS = elements
            t = medians({"learned": training_step("learnable", 256, 64, 16, **kwargs),
                         "plain": training_step("bilinear", 64, 64, 16)},
                        repeats)  # fmt: skip
            chosen = "the code's setting" if elements == default and not kwargs else ""
            rows.append(f"| learnable training step 256→64, batch 16, {label} | {t['learned'] / t['plain']:.2f}× "
                        f"bilinear at 64 | {chosen} |")  # fmt: skip
    finally:
        cpu_inference._CHUNK_ELEMENTS = default
    return rows


def stem_bands(repeats: int) -> list[str]:
    """The fused learnable resizer on one image, its stem in row bands or whole, at 448 and 1024 px."""
    default = cpu_inference._BANDED_ABOVE
    resizer = create_resizer("learnable", output_size=224).eval().fuse()
    rows = []
    try:
        for size in (448, 1024):
            x = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)

            def run(banded_above, x=x):
                cpu_inference._BANDED_ABOVE = banded_above
                return resizer(x)

            with torch.inference_mode():
                t = medians({"bands": lambda: run(0), "whole": lambda: run(1 << 62)}, repeats)
            rows.append(f"| learnable {size}→224, one image | whole stem {t['whole'] * 1e3:.1f} ms | in row bands "
                        f"{t['bands'] * 1e3:.1f} ms ({t['whole'] / t['bands']:.2f}×) |")  # fmt: skip
    finally:
        cpu_inference._BANDED_ABOVE = default
    return rows


def _faults_per_step(step) -> float:
    """Median minor page faults of three calls of ``step``."""
    counts = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(counts)


def freed_memory_child(repeats: int) -> None:
    """One process of :func:`freed_memory`: its ratio and its page faults per step, as JSON."""
    torch.set_num_threads(2)
    learned, plain = training_step("learnable", 256, 64, 16), training_step("bilinear", 64, 64, 16)
    t = medians(  # the first learned step, a warm-up, asks for retained memory (unless the environment opts out)
        {"learned": learned, "plain": plain}, repeats
    )
    faults = {"learned_faults": _faults_per_step(learned), "plain_faults": _faults_per_step(plain)}
    print(json.dumps({"ratio": t["learned"] / t["plain"], "retained": hardware.retain_freed_memory(), **faults}))


def freed_memory(repeats: int) -> list[str]:
    """The learnable training step at 256 -> 64, batch 16, × bilinear, with glibc's malloc as it is and told to keep
    freed memory (hardware.retain_freed_memory): three processes of each, alternated, medians over them."""
    results = {"0": [], "1": []}
    for _ in range(3):
        for setting, out in results.items():
            env = dict(os.environ, **{hardware.RETAIN_FREED_MEMORY: setting})
            done = subprocess.run([sys.executable, __file__, "--freed-memory-child", "--repeats", str(repeats)],
                                  env=env, capture_output=True, text=True, check=True)  # fmt: skip
            out.append(json.loads(done.stdout.splitlines()[-1]))

    def summary(runs: list[dict]) -> str:
        if not all(r["retained"] == runs[0]["retained"] for r in runs):
            raise RuntimeError("the processes of one setting disagree on whether memory was retained")
        ratio = statistics.median(r["ratio"] for r in runs)
        faults = statistics.median(r["learned_faults"] for r in runs)
        plain = statistics.median(r["plain_faults"] for r in runs)
        return f"{ratio:.2f}× bilinear; page faults per step: {faults:.0f} (bilinear step: {plain:.0f})"

    if not results["1"][0]["retained"]:
        return ["| learnable training step, freed memory retained | not applicable: not glibc, or MALLOC_* set | |"]
    return [f"| learnable training step 256→64, batch 16: glibc's malloc as it is / told to keep freed memory | "
            f"{summary(results['0'])} | {summary(results['1'])} |"]  # fmt: skip


SECTIONS = (head, blur, statistics_pass, stem_bands, training_chunks, freed_memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    parser.add_argument("--only", choices=[section.__name__ for section in SECTIONS], help="one section")
    parser.add_argument("--freed-memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.freed_memory_child:
        freed_memory_child(args.repeats)
        return
    torch.set_num_threads(2)
    rows = []
    for section in SECTIONS:
        if args.only and section.__name__ != args.only:
            continue
        rows += section(args.repeats)
        print("\n".join(rows[-2:]), flush=True)
    only = f" --only {args.only}" if args.only else ""
    text = (f"### Alternatives for the learned resizers' CPU paths (issue 18), {dt.date.today().isoformat()}\n\n"
            f"`python benchmarks/alternatives.py --repeats {args.repeats}{only}` — {describe()}. Medians of "
            "interleaved repeats; the second column is what the code did before or could do, the third what it "
            "does.\n\n"
            "| what | alternative | the code |\n|---|---|---|\n" + "\n".join(rows))  # fmt: skip
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
