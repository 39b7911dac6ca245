"""Performance benchmarks: every figure is a ratio measured in one run, on the same inputs.

Sections (all by default, or pick with --only):
  input     decode + resize to 224 of JPEGs and PNGs of 1-12 megapixels, one core: taskresize's loader path
            against Pillow (draft + resize) and torchvision (decode_* + resize), with the largest difference
            from Pillow's output in grey levels; and the uint8 resize alone on decoded images.
  inference every learned resizer at 448->224 and 1024->224, batch 1 and 32, float32 and bfloat16, images/s,
            and its share of the time when followed by ResNet-50 / MobileNetV2 at 224, beside its FLOP share.
  training  a training step of resizer + ResNet-18 at 256->64 against bilinear at 64 and at 128.
  memory    peak memory of a training step at 1024->224, batch 16 (each configuration in its own process).
  roofline  the resizers' achieved GFLOP/s against this machine's float32 matrix-product peak.

    python benchmarks/perf.py [--only input inference ...] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.v2.functional as TF
from PIL import Image

from machine import describe
from taskresize import count_flops, create_resizer, resize
from taskresize.data.transforms import PreResize
from timing import timed

from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
LEARNED = ("learnable", "learnable-strided", "downsizenet", "muller")


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour field with edges and mild noise: compresses like a photograph, not like noise."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, 12, 16)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0].numpy()
    image = smooth.transpose(1, 2, 0) * 220
    y, x = np.mgrid[0:height, 0:width]
    image[(x // max(1, width // 9) + y // max(1, height // 7)) % 5 == 0] += 25
    image += rng.normal(0, 4, image.shape)
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))  # interleaved, as Pillow decodes


# ----------------------------------------------------------------------------------------------------- input path
def bench_input(repeats: int) -> str:
    torch.set_num_threads(1)
    sizes = {"1 MP": (864, 1152), "3 MP": (1536, 2048), "6 MP": (2112, 2816), "12 MP": (3000, 4000)}
    out = (224, 224)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (h, w) in sizes.items():
            pixels = photo_like(h, w)
            for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
                path = Path(tmp) / f"{label.replace(' ', '')}.{ext}"
                Image.fromarray(pixels).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 6}))

                def pillow(p=path, f=fmt):
                    with Image.open(p) as im:
                        if f == "JPEG":
                            im.draft("RGB", (out[1], out[0]))
                        return np.asarray(im.convert("RGB").resize((out[1], out[0]), Image.Resampling.BILINEAR))

                ours = PreResize(out, method="bilinear")

                def vision(p=path, f=fmt):
                    data = torchvision.io.read_file(str(p))
                    image = torchvision.io.decode_jpeg(data) if f == "JPEG" else torchvision.io.decode_png(data)
                    return TF.resize(image, list(out), antialias=True)

                reference = pillow().astype(int)
                diff_ours = int(np.abs(ours(path).permute(1, 2, 0).numpy().astype(int) - reference).max())
                diff_vision = int(np.abs(vision().permute(1, 2, 0).numpy().astype(int) - reference).max())
                t_pillow, t_ours, t_vision = (
                    timed(fn, repeats) for fn in (pillow, lambda p=path, o=ours: o(p), vision)
                )
                rows.append(
                    f"| {label} {fmt} | {1 / t_pillow:.1f} | {1 / t_ours:.1f} ({t_pillow / t_ours:.2f}×, "
                    f"Δ{diff_ours}) | {1 / t_vision:.1f} ({t_pillow / t_vision:.2f}×, Δ{diff_vision}) |"
                )
                print(rows[-1], flush=True)
            # the resize alone, on the decoded full-size image
            tensor = torch.from_numpy(pixels).permute(2, 0, 1)
            pil = Image.fromarray(pixels)
            for method, filt in (("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC),
                                 ("lanczos", Image.Resampling.LANCZOS), ("area", Image.Resampling.BOX)):  # fmt: skip
                reference = np.asarray(pil.resize((out[1], out[0]), filt)).astype(int)
                diff = int(np.abs(resize(tensor, out, method).permute(1, 2, 0).numpy().astype(int) - reference).max())
                t_pillow = timed(lambda f=filt, im=pil: im.resize((out[1], out[0]), f), repeats)
                t_ours = timed(lambda m=method, t=tensor: resize(t, out, method=m), repeats)
                rows.append(
                    f"| {label} decoded, resize only ({method}) | {1 / t_pillow:.1f} | {1 / t_ours:.1f} "
                    f"({t_pillow / t_ours:.2f}×, Δ{diff}) | |"
                )
                print(rows[-1], flush=True)
    return (
        "One core (`torch.set_num_threads(1)`), images/s, output 224×224; × is the speed-up over Pillow, Δ the largest "
        "difference from Pillow's output in grey levels. JPEGs are decoded at reduced scale (Pillow's draft) by both "
        "Pillow and taskresize; torchvision decodes them in full, so it also resizes from a different image.\n\n"
        "| image | Pillow draft+resize | taskresize loader | torchvision decode+resize |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
    )


# ------------------------------------------------------------------------------------------------------ inference
def bench_inference(repeats: int) -> str:
    rows = []
    models = {"ResNet-50": torchvision.models.resnet50(), "MobileNetV2": torchvision.models.mobilenet_v2()}
    for m in models.values():
        m.eval()
    for in_size in (448, 1024):
        for batch in (1, 32):
            x = torch.rand(batch, 3, in_size, in_size)
            # bf16 only where it is cheap to show: without AMX / AVX512-BF16 it is far slower than fp32 here
            for dtype in (torch.float32, torch.bfloat16) if (in_size, batch) == (448, 1) else (torch.float32,):
                for name in ("bilinear", *LEARNED):
                    resizer = create_resizer(name, output_size=224).eval()
                    if hasattr(resizer, "fuse"):
                        resizer = resizer.fuse()
                    flops_resizer = count_flops(resizer, (1, 3, in_size, in_size))
                    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                        t_resizer = timed(lambda r=resizer, t=x: r(t), repeats)
                        y = resizer(x).float()
                        shares = []
                        for model in models.values():
                            t_model = timed(lambda m=model, t=y: m(t), repeats)
                            flops_model = count_flops(model, (1, 3, 224, 224))
                            shares.append(
                                f"{t_resizer / (t_resizer + t_model):.0%} (FLOPs "
                                f"{flops_resizer / (flops_resizer + flops_model):.0%})"
                            )
                    dtype_name = "fp32" if dtype == torch.float32 else "bf16"
                    rows.append(f"| {name} | {in_size}→224 | {batch} | {dtype_name} | {batch / t_resizer:.1f} | "
                                + " | ".join(shares) + " |")  # fmt: skip
                    print(rows[-1], flush=True)
    return (
        f"{torch.get_num_threads()} threads; resizers in eval mode, fused (BatchNorm folded) where supported; images/s "
        "of the resizer alone, and its share of the wall time of resizer + model (model at 224, same batch and dtype) "
        "beside its share of the FLOPs.\n\n| resizer | size | batch | dtype | images/s | share with ResNet-50 | "
        "share with MobileNetV2 |\n|---|---|---:|---|---:|---:|---:|\n" + "\n".join(rows)
    )


# ------------------------------------------------------------------------------------------------------- training
def training_step_time(resizer_name: str, in_size: int, out_size: int, batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    resizer = create_resizer(resizer_name, output_size=out_size)
    model = torchvision.models.resnet18(num_classes=10)
    params = list(resizer.parameters()) + list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, in_size, in_size)
    labels = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(model(resizer(x)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return timed(step, repeats, warmup=2)


def bench_training(repeats: int) -> str:
    batch = 32
    base = training_step_time("bilinear", 64, 64, batch, repeats)
    rows = [f"| bilinear | 64→64 | {base * 1000:.0f} | 1.00 |"]
    for name, in_size, out_size in [("bilinear", 128, 128), ("bilinear", 256, 64), *((n, 256, 64) for n in LEARNED)]:
        t = training_step_time(name, in_size, out_size, batch, repeats)
        rows.append(f"| {name} | {in_size}→{out_size} | {t * 1000:.0f} | {t / base:.2f} |")
        print(rows[-1], flush=True)
    return (
        f"One training step (forward, backward, SGD) of resizer + ResNet-18, batch {batch}, float32, "
        f"{torch.get_num_threads()} threads, median of {repeats}; × is relative to bilinear at 64 px (the same model "
        "input without a resizer).\n\n| resizer | input→output | ms/step | × bilinear 64 |\n|---|---|---:|---:|\n"
        + "\n".join(rows)
    )


# -------------------------------------------------------------------------------------------------------- engines
def bench_engines(repeats: int) -> str:
    """Eager PyTorch against torch.compile and ONNX Runtime for the deployed resizer (``taskresize resize``)."""
    from taskresize.inference.export import export_resizer, run_onnx
    from taskresize.inference.pixels import PixelResizer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("learnable", "learnable-strided", "downsizenet"):
            model = PixelResizer(create_resizer(name, output_size=224).eval())
            started = time.perf_counter()
            compiled = torch.compile(model)
            path = Path(tmp) / f"{name}.onnx"
            export_resizer(model, path, "onnx", (448, 448))
            export_seconds = time.perf_counter() - started
            session = run_onnx(path)
            for batch in (1, 8):
                x = torch.rand(batch, 3, 448, 448) * 255
                with torch.inference_mode():
                    t_eager = timed(lambda t=x, m=model: m(t), repeats)
                    started = time.perf_counter()
                    compiled(x)  # compiles for this shape
                    compile_seconds = time.perf_counter() - started
                    t_compiled = timed(lambda t=x, c=compiled: c(t), repeats)
                t_ort = timed(lambda t=x, run=session: run(t), repeats)
                rows.append(
                    f"| {name} | {batch} | {batch / t_eager:.1f} | {batch / t_compiled:.1f} "
                    f"({t_eager / t_compiled:.2f}×; first call {compile_seconds:.0f} s) | {batch / t_ort:.1f} "
                    f"({t_eager / t_ort:.2f}×; export {export_seconds:.0f} s) |"
                )
                print(rows[-1], flush=True)
    return (
        f"{torch.get_num_threads()} threads; the deployed resizer (`PixelResizer`: normalisation, fused resizer, "
        "clipping) at 448→224, float32, images/s, median of the repeats; × is the speed-up over eager PyTorch.\n\n"
        "| resizer | batch | eager | torch.compile (inductor) | ONNX Runtime (CPU) |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(rows)
    )


# --------------------------------------------------------------------------------------------------------- memory
MEMORY_CHILD = """
import json, sys, torch, torchvision, torch.nn.functional as F
from taskresize import create_resizer

def high_water_mib():  # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

name, kwargs = sys.argv[1], json.loads(sys.argv[2])
torch.manual_seed(0)
resizer = create_resizer(name, output_size=224, **kwargs)
model = torchvision.models.resnet18(num_classes=10)
x, y = torch.randn(16, 3, 1024, 1024), torch.randint(0, 10, (16,))
before = high_water_mib()
loss = F.cross_entropy(model(resizer(x)), y)
loss.backward()
print(json.dumps({"peak_mib": high_water_mib(), "before_mib": before}))
"""


def bench_memory() -> str:
    rows = []
    checkpointed = [(n, {"checkpoint": True}) for n in ("learnable", "learnable-strided")]
    configs = [("bilinear", {}), *((n, {}) for n in LEARNED), *checkpointed]
    for name, kwargs in configs:
        result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, name, json.dumps(kwargs)], capture_output=True,
                                text=True, check=True)  # fmt: skip
        m = json.loads(result.stdout.strip().splitlines()[-1])
        label = name + (f" {kwargs}" if kwargs else "")
        rows.append(f"| {label} | {m['peak_mib']:,.0f} | {m['peak_mib'] - m['before_mib']:,.0f} |")
        print(rows[-1], flush=True)
    return (
        "Peak resident memory of one forward + backward of resizer + ResNet-18 at 1024→224, batch 16, float32, each "
        "in a fresh process (`VmHWM`); the second column excludes what the process held before the step "
        "(Python, libraries, the 201 MB input).\n\n| resizer | peak MiB | step MiB |\n|---|---:|---:|\n"
        + "\n".join(rows)
    )


# ------------------------------------------------------------------------------------------------------- roofline
def bench_roofline(repeats: int) -> str:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak = 2 * 2048**3 / timed(lambda: a @ b, repeats) / 1e9
    rows = [f"| float32 matrix product 2048³ | {peak:.1f} | 100% |"]
    x = torch.rand(8, 3, 448, 448).contiguous(memory_format=torch.channels_last)
    backbone = torchvision.models.resnet50().eval().to(memory_format=torch.channels_last)
    workloads = {"ResNet-50 at 224, batch 8 (the backbone)": (backbone, x[:, :, :224, :224].contiguous(
        memory_format=torch.channels_last))}  # fmt: skip
    for name in LEARNED:
        workloads[f"{name}, 448→224, batch 8"] = (create_resizer(name, output_size=224).eval().fuse(), x)
    for label, (model, inputs) in workloads.items():
        flops = count_flops(model, tuple(inputs.shape))
        with torch.inference_mode():
            achieved = flops / timed(lambda m=model, t=inputs: m(t), repeats) / 1e9
        rows.append(f"| {label} | {achieved:.1f} | {achieved / peak:.0%} |")
        print(rows[-1], flush=True)
    return (
        f"{torch.get_num_threads()} threads; eval mode, fused, channels-last; GFLOP/s = FLOPs counted by "
        "`count_flops` (multiply-add = 2) / wall time."
        "\n\n| workload | GFLOP/s | of peak |\n|---|---:|---:|\n" + "\n".join(rows)
    )


SECTIONS = {"input": bench_input, "inference": bench_inference, "engines": bench_engines, "training": bench_training,
            "memory": bench_memory, "roofline": bench_roofline}  # fmt: skip
TITLES = {"input": "Input path", "inference": "Resizer inference", "engines": "Inference engines",
          "training": "Training step", "memory": "Peak memory", "roofline": "Roofline"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--append", action="store_true", help=f"add the tables to {RESULTS}")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    parts = []
    for section in args.only:
        torch.set_num_threads(threads)
        print(f"== {section}", flush=True)
        fn = SECTIONS[section]
        body = fn() if section == "memory" else fn(args.repeats)
        parts.append(f"**{TITLES[section]}.** {body}")
    command = "python benchmarks/perf.py" + (f" --only {' '.join(args.only)}" if args.only != list(SECTIONS) else "")
    text = (
        f"### Performance, {dt.date.today().isoformat()}\n\n`{command}` — {describe()}, Pillow {Image.__version__}, "
        f"torchvision {torchvision.__version__}, {platform.machine()}.\n\n" + "\n\n".join(parts)
    )
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Speed", text)


if __name__ == "__main__":
    main()
