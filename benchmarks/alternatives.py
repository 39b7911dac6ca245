"""The alternatives measured for the learned resizers' speed choices, against what the code does: each choice of
the inference form (``fuse()``) against the form without it (a choice stays where it earns 10 %), MULLER's blur,
and glibc's malloc told to keep freed memory (what the commands do on a CPU). The figures docs/results.md gives for
choices made and dropped. Medians of interleaved repeats, 2 threads.

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
import torchvision

from machine import describe
from targets import training_step
from taskresize import create_resizer, hardware
from timing import interleaved

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved."""
    return {name: statistics.median(t) for name, t in interleaved(fns, repeats).items()}


def _inference_forms(name: str) -> dict[str, torch.nn.Module]:
    """The learnable resizer's inference form built up a choice at a time: the eval module, the generic BatchNorm
    folding alone, then the stem's affine map after the feature resize (what ``fuse()`` builds)."""
    from taskresize.resizers.fuse import fused_copy

    original = create_resizer(name, output_size=224).eval()
    return {"eval": original, "folded": fused_copy(original), "form": original.fuse()}


def inference_form(repeats: int) -> list[str]:
    """The learnable resizers' inference at 448 -> 224, batch 8, channels-last: each choice of ``fuse()`` against
    the form without it, in one interleaved run."""
    rows = []
    x = torch.rand(8, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    for name in ("learnable", "learnable-strided"):
        forms = _inference_forms(name)
        with torch.inference_mode():
            t = medians({key: lambda m=m: m(x) for key, m in forms.items()}, repeats)
        ms = {key: value * 1e3 for key, value in t.items()}
        rows += [
            f"| {name} 448→224, batch 8: BatchNorms folded | eval module {ms['eval']:.0f} ms | folded "
            f"{ms['folded']:.0f} ms ({t['eval'] / t['folded']:.2f}×) |",
            f"| {name} 448→224, batch 8: the stem's affine map after the feature resize | folded "
            f"{ms['folded']:.0f} ms | {ms['form']:.0f} ms ({t['folded'] / t['form']:.2f}×) |",
        ]
    return rows


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


def _faults_per_step(step) -> float:
    """Median minor page faults of three calls of ``step``."""
    counts = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(counts)


def freed_memory_child(repeats: int) -> None:
    """One process of :func:`freed_memory`, as JSON: the learnable training step's ratio to bilinear and the page
    faults of each step (batch 4: its 16-channel maps under glibc's 32 MB mmap ceiling, above which every block is
    mapped anew whatever the setting); ResNet-50's inference at 224, batch 8, and its faults; then the learnable
    resizer's bf16-autocast inference at 448 -> 224, batch 2, against float32 (after ResNet-50 has run, as in a
    pipeline)."""
    torch.set_num_threads(2)
    retained = hardware.retain_freed_memory()  # what the commands ask for on a CPU (unless opted out)
    learned, plain = training_step("learnable", 256, 64, 4), training_step("bilinear", 64, 64, 4)
    t = medians({"learned": learned, "plain": plain}, repeats)
    faults = {"learned_faults": _faults_per_step(learned), "plain_faults": _faults_per_step(plain)}
    backbone = torchvision.models.resnet50().eval().to(memory_format=torch.channels_last)
    images = torch.rand(8, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    batch = torch.rand(8, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    resizer = create_resizer("learnable", output_size=224).eval()

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            resizer(batch[:2])

    with torch.inference_mode():
        inference = medians({"backbone": lambda: backbone(images)}, repeats)["backbone"]
        faults["backbone_faults"] = _faults_per_step(lambda: backbone(images))
        for name in ("learnable", "downsizenet"):  # the acceptance check's order, where bf16 had run at 0.2x
            fused = create_resizer(name, output_size=224).eval().fuse()
            medians({name: lambda f=fused: f(batch)}, 3)
        speeds = medians({"fp32": lambda: resizer(batch[:2]), "bf16": bf16}, repeats)
    print(json.dumps({"ratio": t["learned"] / t["plain"], "retained": retained, "backbone_ms": 1e3 * inference,
                      "bf16_speed": speeds["fp32"] / speeds["bf16"], **faults}))  # fmt: skip


def freed_memory(repeats: int) -> list[str]:
    """The learnable training step at 256 -> 64, batch 4, × bilinear, ResNet-50's inference and the learnable
    resizer's bf16 inference, with glibc's malloc as it is and told to keep freed memory
    (hardware.retain_freed_memory): three processes of each, alternated, medians over them."""
    results = {"0": [], "1": []}
    for _ in range(3):
        for setting, out in results.items():
            env = dict(os.environ, **{hardware.RETAIN_FREED_MEMORY: setting})
            done = subprocess.run([sys.executable, __file__, "--freed-memory-child", "--repeats", str(repeats)],
                                  env=env, capture_output=True, text=True, check=True)  # fmt: skip
            out.append(json.loads(done.stdout.splitlines()[-1]))
    for runs in results.values():
        if not all(r["retained"] == runs[0]["retained"] for r in runs):
            raise RuntimeError("the processes of one setting disagree on whether memory was retained")
    if not results["1"][0]["retained"]:
        return ["| learnable training step, freed memory retained | not applicable: not glibc, or MALLOC_* set | |"]

    def median(setting: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setting])

    def cells(render) -> str:
        return f"{render('0')} | {render('1')} |"

    head = "glibc's malloc as it is / told to keep freed memory"
    return [
        f"| learnable training step 256→64, batch 4: {head} | " + cells(lambda s: (
            f"{median(s, 'ratio'):.2f}× bilinear; page faults per step: {median(s, 'learned_faults'):.0f} "
            f"(bilinear step: {median(s, 'plain_faults'):.0f})")),
        f"| ResNet-50 inference at 224, batch 8, float32: {head} | " + cells(lambda s: (
            f"{median(s, 'backbone_ms'):.0f} ms; page faults per call: {median(s, 'backbone_faults'):.0f}")),
        f"| learnable 448→224, batch 2, inference after ResNet-50: bf16 autocast speed ÷ float32: {head} | "
        + cells(lambda s: f"{median(s, 'bf16_speed'):.2f}×"),
    ]  # fmt: skip


SECTIONS = (
    inference_form,
    blur,
    freed_memory,
)


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
    text = (f"### Alternatives for the learned resizers' speed choices, {dt.date.today().isoformat()}\n\n"
            f"`python benchmarks/alternatives.py --repeats {args.repeats}{only}` — {describe()}. Medians of "
            "interleaved repeats; the second column is what the code did before or could do, the third what it "
            "does.\n\n"
            "| what | alternative | the code |\n|---|---|---|\n" + "\n".join(rows))  # fmt: skip
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
