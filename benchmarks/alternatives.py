"""The alternatives measured for the learned resizers' CPU paths (issue 18), against what the code does: the
figures docs/results.md gives for choices made and dropped. Medians of interleaved repeats, 2 threads.

    python benchmarks/alternatives.py [--repeats 9] [--only SECTION] [--append]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from machine import describe
from targets import training_step
from taskresize import DownsizeNet, MullerResizer, create_resizer, hardware, resize
from taskresize.resizers import cpu_inference
from taskresize.resizers.batchnorm import moments
from taskresize.resizers.classic import in_float32
from timing import interleaved

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved."""
    return {name: statistics.median(t) for name, t in interleaved(fns, repeats).items()}


@contextlib.contextmanager
def swapping(owner: object, attribute: str) -> Iterator[Callable[[object, Callable[[], object]], Callable[[], None]]]:
    """Yields ``swap(value, fn)``: ``fn`` as a call that first sets ``owner.attribute`` to ``value`` (the code, or
    what it did before, in interleaved timings); the attribute is restored on exit."""
    original = getattr(owner, attribute)

    def swap(value: object, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            setattr(owner, attribute, value)
            fn()

        return run

    try:
        yield swap
    finally:
        setattr(owner, attribute, original)


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


def _direct_head(x: torch.Tensor, layer: torch.nn.Conv2d, add: torch.Tensor | None) -> torch.Tensor:
    """The former training path of a convolution to few channels: directly, not by output phases."""
    y = layer(x)
    return y if add is None else y + add


def _narrowed_texture_at(self, x, anchors):
    """DownsizeNet's former ``_texture_at``: the texture map narrowed on both axes even by nothing."""
    *body, last, relu = self.texture
    h = cpu_inference.run(body, x)
    stride, padding, selects = [], [], []
    for axis, (anchor, spacing) in zip((-2, -1), anchors, strict=True):
        start, step = spacing if spacing is not None else (0, 1)
        pad = 1 if start == 0 else 0
        h = h.narrow(axis, start - 1 + pad, h.shape[axis] - (start - 1 + pad))
        stride.append(step)
        padding.append(pad)
        selects.append(None if spacing is not None else anchor)
    y = cpu_inference.conv(h, last, activation=relu, stride=tuple(stride), padding=tuple(padding))
    for axis, (anchor, _), select in zip((-2, -1), anchors, selects, strict=True):
        y = y.index_select(axis, select) if select is not None else y.narrow(axis, 0, anchor.numel())
    return y


def _unchunked_muller_forward(self, x, size=None):
    """MULLER's former forward: chunk by chunk only in inference, each band resized from its full-resolution
    difference."""
    size = self.target_size(size)

    def bands(t):
        y = resize(t, size, self.interpolation, self.antialias)
        for layer in range(self.layers):
            blurred = self.blur(t)
            band = resize(blurred - t, size, self.interpolation, self.antialias)
            y = y + torch.tanh(self.weight[layer] * band + self.bias[layer])
            t = blurred
        return y

    if cpu_inference.fast_path(x):
        return cpu_inference.by_image(bands, x, x.shape[1])
    return in_float32(bands, x)


def training_changes(repeats: int) -> list[str]:
    """Training steps at 256 -> 64, ResNet-18, batch 32, × bilinear at 64, with the former code of each change and
    with the code, in interleaved repeats in one process (the former code swapped in for its calls)."""
    changes = [  # (what, resizer, the object, the attribute, the former code)
        ("learnable: its head by output phases in training too", "learnable", cpu_inference,
         "_conv_by_phases", _direct_head),
        ("DownsizeNet: no narrowing of the texture map by nothing", "downsizenet", DownsizeNet, "_texture_at",
         _narrowed_texture_at),
        ("MULLER: chunk by chunk in training, bands as differences of resized images", "muller", MullerResizer,
         "forward", _unchunked_muller_forward),
    ]  # fmt: skip
    rows = []
    plain = training_step("bilinear", 64, 64, 32)
    for what, name, owner, attribute, former in changes:
        step = training_step(name, 256, 64, 32)
        with swapping(owner, attribute) as swap:
            code = getattr(owner, attribute)
            t = medians({"plain": plain, "former": swap(former, step), "code": swap(code, step)}, repeats)
        rows.append(f"| training step, {what} | former code {t['former'] / t['plain']:.2f}× bilinear | "
                    f"{t['code'] / t['plain']:.2f}× bilinear |")  # fmt: skip
    return rows


def weight_grad_bands(repeats: int) -> list[str]:
    """The training step at 448 -> 224, ResNet-50, batch 8 (the stem's chunks hold one image), × bilinear at 224:
    its convolutions' weight gradients as one batch per chunk, and in bands of rows (the code)."""
    rows = []
    plain = training_step("bilinear", 224, 224, 8, "resnet50")
    for name in ("learnable", "downsizenet"):
        step = training_step(name, 448, 224, 8, "resnet50")
        with swapping(cpu_inference, "_weight_grad_bands") as swap:
            banded = cpu_inference._weight_grad_bands
            t = medians({"plain": plain, "one": swap(lambda *args: 1, step), "bands": swap(banded, step)}, repeats)
        rows.append(f"| {name} training step 448→224 + ResNet-50, batch 8, weight gradients of one-image chunks | "
                    f"as one batch {t['one'] / t['plain']:.3f}× bilinear | in bands of rows "
                    f"{t['bands'] / t['plain']:.3f}× bilinear |")  # fmt: skip
    return rows


def resize_by_depthwise(repeats: int) -> list[str]:
    """A plain bilinear resize at an integer factor (and the BatchNorm after it): torch's interpolation against one
    depthwise convolution, on a channels-last 16-channel map, and in the fused learned resizers at 448 -> 224."""
    from taskresize.resizers import learnable

    rows = []
    factors = cpu_inference._DEPTHWISE_FACTORS
    for size, factor in ((448, 2), (450, 3), (448, 4)):
        x = torch.rand(1, 16, size, size).contiguous(memory_format=torch.channels_last)
        out = (size // factor, size // factor)
        cpu_inference._DEPTHWISE_FACTORS = (factor,)  # measured at every factor, whether the code takes it or not
        try:
            with torch.inference_mode():
                t = medians({"interpolate": lambda x=x, out=out: F.interpolate(x, size=out, mode="bilinear"),
                             "depthwise": lambda x=x, out=out: cpu_inference.resize_by_depthwise(x, out, "bilinear",
                                                                                                 False)},
                            repeats)  # fmt: skip
        finally:
            cpu_inference._DEPTHWISE_FACTORS = factors
        used = "the code's" if factor in factors else "not taken"
        rows.append(f"| plain bilinear {size}→{out[0]}, (1, 16) channels-last, factor {factor} | F.interpolate "
                    f"{t['interpolate'] * 1e3:.3f} ms | depthwise convolution {t['depthwise'] * 1e3:.3f} ms "
                    f"({used}) |")  # fmt: skip
    x = torch.rand(8, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    for name in ("learnable", "learnable-strided"):
        resizer = create_resizer(name, output_size=224).eval().fuse()
        with swapping(learnable, "resize_by_depthwise") as swap, torch.inference_mode():
            depthwise = learnable.resize_by_depthwise
            t = medians({"interpolate": swap(lambda *args, **kwargs: None, lambda r=resizer: r(x)),
                         "depthwise": swap(depthwise, lambda r=resizer: r(x))}, repeats)  # fmt: skip
        rows.append(
            f"| {name} 448→224, batch 8, fused: its skip and feature resizes | by interpolation "
            f"{t['interpolate'] * 1e3:.1f} ms | by depthwise convolutions {t['depthwise'] * 1e3:.1f} ms |"
        )
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
    """One process of :func:`freed_memory`, as JSON: the learnable training step's ratio to bilinear and the page
    faults of each step; ResNet-50's inference at 224, batch 8, and its faults; then the learnable resizer's
    bf16-autocast inference at 448 -> 224, batch 2, against float32 (after ResNet-50 has run, as in a pipeline)."""
    torch.set_num_threads(2)
    retained = hardware.retain_freed_memory()  # what a learned resizer's first CPU forward asks for (unless opted out)
    learned, plain = training_step("learnable", 256, 64, 16), training_step("bilinear", 64, 64, 16)
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
    """The learnable training step at 256 -> 64, batch 16, × bilinear, ResNet-50's inference and the learnable
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
        f"| learnable training step 256→64, batch 16: {head} | " + cells(lambda s: (
            f"{median(s, 'ratio'):.2f}× bilinear; page faults per step: {median(s, 'learned_faults'):.0f} "
            f"(bilinear step: {median(s, 'plain_faults'):.0f})")),
        f"| ResNet-50 inference at 224, batch 8, float32: {head} | " + cells(lambda s: (
            f"{median(s, 'backbone_ms'):.0f} ms; page faults per call: {median(s, 'backbone_faults'):.0f}")),
        f"| learnable 448→224, batch 2, inference after ResNet-50: bf16 autocast speed ÷ float32: {head} | "
        + cells(lambda s: f"{median(s, 'bf16_speed'):.2f}×"),
    ]  # fmt: skip


SECTIONS = (
    head,
    blur,
    statistics_pass,
    stem_bands,
    resize_by_depthwise,
    training_chunks,
    training_changes,
    weight_grad_bands,
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
