"""The GPU check of `make gpu-check`: what a learned resizer costs at the paper's setting on one GPU.

For bilinear, learnable, learnable-strided, downsizenet and muller in front of ResNet-50 at 448 -> 224, batch 64,
bf16 autocast (where the GPU supports it, else float32): training images/s of a full step (forward, backward,
SGD), each resizer's share of the inference time of resizer + backbone, and the peak GPU memory of a training
step. Prints a Markdown table headed with the GPU's name; ``--append`` adds it to docs/results.md.

    python benchmarks/gpu_check.py --device cuda --append      # about 2-4 minutes on one recent GPU
    python benchmarks/gpu_check.py --device cpu --quick        # a tiny run that only checks the script works
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

import taskresize
from taskresize.hardware import resolve_device

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
RESIZERS = ("bilinear", "learnable", "learnable-strided", "downsizenet", "muller")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per call of ``step()``, after ``warmup`` calls, on a synchronised device."""
    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def measure(name: str, device: torch.device, settings: dict) -> dict:
    in_size, out_size, batch = settings["in_size"], settings["out_size"], settings["batch"]
    resizer = taskresize.create_resizer(
        name, output_size=out_size, **({"antialias": True} if name == "bilinear" else {})
    )
    backbone = getattr(torchvision.models, settings["backbone"])(num_classes=1000)
    model = torch.nn.Sequential(resizer, backbone).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, in_size, in_size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device=device)
    dtype = settings["dtype"]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def train_step() -> None:
        with autocast:
            loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train = timed(train_step, device, settings["warmup"], settings["steps"])
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    model.eval()
    with torch.no_grad(), autocast:
        whole = timed(lambda: model(images), device, settings["warmup"], settings["steps"])
        alone = timed(lambda: resizer(images), device, settings["warmup"], settings["steps"])
    flops = taskresize.count_flops(resizer.eval(), (1, 3, in_size, in_size), size=out_size)
    return {"name": name, "train_images_per_s": batch / train, "resizer_share": alone / whole,
            "resizer_gflops": flops / 1e9, "peak_mib": peak}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu with --quick")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one step: checks the script, times nothing")
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.quick:
        settings = {"in_size": 64, "out_size": 32, "batch": 2, "backbone": "resnet18", "warmup": 0, "steps": 1}
    else:
        settings = {"in_size": 448, "out_size": 224, "batch": 64, "backbone": "resnet50", "warmup": 3, "steps": 10}
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    settings["dtype"] = torch.bfloat16 if bf16 else torch.float32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    rows = [measure(resizer, device, settings) for resizer in RESIZERS]
    base = rows[0]["train_images_per_s"]
    lines = [
        f"### GPU check, {dt.date.today().isoformat()}: {name}",
        "",
        f"`python benchmarks/gpu_check.py --device {args.device}{' --quick' if args.quick else ''}`: resizer + "
        f"{settings['backbone']} at {settings['in_size']} -> {settings['out_size']}, batch {settings['batch']}, "
        f"{'bf16 autocast' if bf16 else 'float32'}, channels-last; {settings['steps']} timed steps after "
        f"{settings['warmup']} warm-up; torch {torch.__version__}.",
        "",
        "| resizer | train images/s | × bilinear | resizer's share of inference time | resizer GFLOPs/image "
        "| peak GPU memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['train_images_per_s']:.0f} | {row['train_images_per_s'] / base:.2f} "
            f"| {row['resizer_share']:.0%} | {row['resizer_gflops']:.2f} | {row['peak_mib']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with RESULTS.open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
