"""The GPU check of `make gpu-check`: what the learned resizers cost on one CUDA GPU, and whether they are right there.

Runs with the machine's own Python and ``PYTHONPATH=src``: nothing is installed (the GPU machines at hand reach no
package registry). It prints the versions it finds and skips, with a line saying so, what needs a missing package.

Rows (bf16 autocast where the GPU has it, else float32; channels-last; cuDNN autotuning on, as the training command
sets it; times from CUDA events, after ``warmup`` steps, ``steps`` timed steps, the median of ``repeats``):

* training images/s of a full step (forward, backward, SGD) of ResNet-50 at 224 alone, with antialiased bilinear
  448 -> 224 in front, and with each learned resizer 448 -> 224; one more row in float16 with a GradScaler;
  the peak GPU memory and the host-device synchronisations of one step (``torch.cuda.set_sync_debug_mode``);
* inference: batch-64 images/s and batch-1 latency (median, p90) of each resizer (its inference form, ``fuse()``)
  alone and with ResNet-50;
* the training loader's two data paths alone (generated 1-megapixel JPEGs, augmented as in training, the training
  command's default workers) against the training step: ``--decode-on cpu`` (``PreResize`` in the workers) and
  ``--decode-on device`` (``DeferredPreResize`` in the workers, each batch decoded on the GPU by
  ``EncodedBatch.to``: ``torchvision.io.decode_jpeg`` on the list, nvJPEG, then the crops, resizes and flips
  there); and the GPU's decoded pixels against Pillow's;
* correctness probes: each training row against a float32 CPU reference step (TF32 off) in float32 and in the
  row's precision; uint8 plain bilinear on the device against the CPU; ``pt2`` export of downsizenet and lanczos
  made on the device; ``torch.compile(fullgraph=True)`` of every registered resizer; the ``gpu`` tests (when
  pytest is installed).

Every result goes to ``gpu-check.json`` and ``gpu-check.md`` in ``$OUT`` when set, else in ``build/gpu-check``.
The exit status is 1 when a probe failed.

    PYTHONPATH=src python3 benchmarks/gpu_check.py              # the full check (the time it took is reported)
    PYTHONPATH=src python3 benchmarks/gpu_check.py --quick      # one repeat, fewer JPEGs, compile traced only
    PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu --smoke   # tiny sizes: checks the script only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
# (distribution, module, what needs it)
PACKAGES = (
    ("torch", "torch", "everything"),
    ("torchvision", "torchvision", "ResNet-50, the loader and GPU decoding"),
    ("numpy", "numpy", "taskresize"),
    ("pillow", "PIL", "generating and decoding the JPEGs"),
    ("lightning", "lightning", "the training command (not used by these rows)"),
    ("timm", "timm", "timm backbones (not used by these rows)"),
    ("numba", "numba", "the CPU's compiled uint8 resize (the CPU reference of the loader)"),
    ("onnx", "onnx", "ONNX export (not probed here)"),
    ("onnxruntime", "onnxruntime", "ONNX Runtime (not probed here)"),
    ("scikit-image", "skimage", "nothing here"),
    ("huggingface_hub", "huggingface_hub", "hf-hub: resizers (not probed here)"),
    ("safetensors", "safetensors", "resizer files"),
    ("pyyaml", "yaml", "configs"),
    ("pytest", "pytest", "the gpu tests"),
    ("ray", "ray", "sweeps on Ray (not probed here)"),
    ("pycocotools", "pycocotools", "COCO detection metrics (not probed here)"),
)


def versions() -> dict[str, str | None]:
    found = {"python": platform.python_version()}
    for dist, module, _ in PACKAGES:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            try:
                found[dist] = getattr(importlib.import_module(module), "__version__", "present")
            except ImportError:
                found[dist] = None
    return found


def settings_for(args: argparse.Namespace, device_type: str) -> dict:
    if args.smoke or device_type != "cuda":
        return {"in_size": 64, "out_size": 32, "batch": 2, "reference_batch": 2, "backbone": "mobilenet_v3_small",
                "warmup": 0, "steps": 1, "repeats": 1, "jpegs": 4, "jpeg_size": (96, 72), "latency_steps": 1,
                "compile_backend": "eager", "smoke": True}  # fmt: skip
    return {"in_size": 448, "out_size": 224, "batch": 64, "reference_batch": 4, "backbone": "resnet50",
            "warmup": 10, "steps": 30, "repeats": 1 if args.quick else 3, "jpegs": 128 if args.quick else 512,
            "jpeg_size": (1152, 864), "latency_steps": 30, "compile_backend": "eager" if args.quick else "inductor",
            "smoke": False}  # fmt: skip


class Timer:
    """Seconds between ``start()`` and ``stop()``: CUDA events on a GPU (no host sync inside the timed work),
    ``perf_counter`` on a CPU."""

    def __init__(self, device):
        import torch

        self.cuda = device.type == "cuda"
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.cuda:
            self.begin.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.begin.elapsed_time(self.end) / 1000
        return time.perf_counter() - self.t0


def per_step(step, device, s: dict, steps: int | None = None) -> float:
    """Median over ``repeats`` of the seconds per call of ``step()``, after ``warmup`` calls."""
    steps = steps or s["steps"]
    timer, runs = Timer(device), []
    for _ in range(s["repeats"]):
        for _ in range(s["warmup"]):
            step()
        timer.start()
        for _ in range(steps):
            step()
        runs.append(timer.stop() / steps)
    return statistics.median(runs)


def latencies(call, device, s: dict) -> tuple[float, float]:
    """Median and p90 of the seconds of single calls."""
    timer, times = Timer(device), []
    for _ in range(s["warmup"]):
        call()
    for _ in range(s["repeats"] * s["latency_steps"]):
        timer.start()
        call()
        times.append(timer.stop())
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def count_syncs(step, device) -> int | None:
    """Host-device synchronisations of one call of ``step()`` (CUDA only)."""
    import torch

    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def autocast_for(device, dtype):
    import torch

    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()


def build(name: str | None, s: dict, seed: int = 0):
    """``(resizer or None, backbone)`` with the same weights for the same seed; ``name`` None: the backbone alone."""
    import torch
    import torchvision

    import taskresize

    torch.manual_seed(seed)
    resizer = None
    if name is not None:
        extra = {"antialias": True} if name == "bilinear" else {}
        resizer = taskresize.create_resizer(name, output_size=s["out_size"], **extra)
    backbone = getattr(torchvision.models, s["backbone"])(num_classes=1000)
    return resizer, backbone


def model_of(resizer, backbone):
    import torch

    return backbone if resizer is None else torch.nn.Sequential(resizer, backbone)


def batch_for(name, s, batch, device, seed=1):
    import torch

    size = s["out_size"] if name is None else s["in_size"]
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=g)
    labels = torch.randint(0, 1000, (batch,), generator=g)
    return images.to(device).contiguous(memory_format=torch.channels_last), labels.to(device)


def train_row(name, label, device, s, dtype, scaler: bool) -> dict:
    import torch
    import torch.nn.functional as F

    resizer, backbone = build(name, s)
    model = model_of(resizer, backbone).to(device, memory_format=torch.channels_last).train()
    # a small learning rate: the same speed, and the same batch again and again stays finite (a saliency sampler's
    # grid went NaN by the third step at 0.01 on a CPU, where grid_sample's backward then crashes)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    grad_scaler = torch.amp.GradScaler(device.type) if scaler else None
    images, labels = batch_for(name, s, s["batch"], device)

    last = {}

    def step() -> None:
        with autocast_for(device, dtype):
            loss = F.cross_entropy(model(images), labels)
        last["loss"] = loss.detach()
        optimiser.zero_grad(set_to_none=True)
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()
            grad_scaler.step(optimiser)
            grad_scaler.update()
        else:
            loss.backward()
            optimiser.step()

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    seconds = per_step(step, device, s)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"row": label, "resizer": name, "precision": str(dtype).removeprefix("torch.") + (" + GradScaler" if scaler
            else ""), "train_images_per_s": s["batch"] / seconds, "peak_mib": peak,
            "syncs_per_step": count_syncs(step, device),
            "finite_loss": bool(torch.isfinite(last["loss"]))}  # fmt: skip


def reference_probe(name, label, device, s, dtype) -> dict:
    """One training step on the device against the same step in float32 on the CPU (TF32 off): the loss, the
    output and the gradient norm, relative differences, in float32 and in ``dtype``."""
    import torch
    import torch.nn.functional as F

    def one_step(dev, precision):
        resizer, backbone = build(name, s, seed=3)
        model = model_of(resizer, backbone).to(dev, memory_format=torch.channels_last).train()
        images, labels = batch_for(name, s, s["reference_batch"], dev, seed=4)
        with autocast_for(dev, precision):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        loss.backward()
        norm = torch.sqrt(sum(p.grad.float().pow(2).sum() for p in model.parameters() if p.grad is not None))
        return float(loss.detach()), logits.detach().float().cpu(), float(norm)

    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        loss, logits, norm = one_step(torch.device("cpu"), torch.float32)
        result = {"row": label}
        for tag, precision in (("float32", torch.float32), ("amp", dtype)):
            if tag == "amp" and dtype == torch.float32:
                continue
            d_loss, d_logits, d_norm = one_step(device, precision)
            result[tag] = {
                "loss": abs(d_loss - loss) / max(abs(loss), 1e-12),
                "logits": float((d_logits - logits).abs().max() / logits.abs().max().clamp(min=1e-12)),
                "grad_norm": abs(d_norm - norm) / max(abs(norm), 1e-12),
            }
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    # relative; float32 on a GPU sums in another order; bf16 (8 bits of mantissa) drifts further
    limits = {"float32": 1e-3, "amp": 1e-1}
    result["ok"] = all(max(result[tag].values()) <= limit for tag, limit in limits.items() if tag in result)
    return result


def inference_row(name, device, s, dtype) -> dict:
    import torch

    resizer, backbone = build(name, s)
    resizer = resizer.fuse() if hasattr(resizer, "fuse") and resizer is not None else resizer
    rows = {}
    for part, module in (("alone", resizer), ("with " + s["backbone"], model_of(resizer, backbone))):
        if module is None:
            continue
        module = module.to(device, memory_format=torch.channels_last).eval()
        for batch in (s["batch"], 1):
            images, _ = batch_for(name, s, batch, device)

            def call(module=module, images=images):
                with torch.inference_mode(), autocast_for(device, dtype):
                    return module(images)

            if batch == 1:
                median, p90 = latencies(call, device, s)
                rows[f"{part} batch-1 ms (median, p90)"] = (median * 1000, p90 * 1000)
            else:
                rows[f"{part} batch-{batch} images/s"] = batch / per_step(call, device, s)
    return {"resizer": name or f"{s['backbone']} alone", **rows}


def make_jpegs(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(count):
        base = (np.sin(xx / (7 + i % 5)) + np.cos(yy / (11 + i % 3))) * 60 + 128
        image = np.clip(base[..., None] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        paths.append(path)
    return paths


def loader_rows(device, s, train_images_per_s: float | None) -> dict:
    """Images/s of the training loader's two data paths on generated JPEGs, augmented as in training, in batches
    moved to ``device``: ``--decode-on cpu`` (``PreResize`` in the workers) and ``--decode-on device``
    (``DeferredPreResize`` in the workers, the batch decoded by ``EncodedBatch.to(device)``); and the device's
    decoded pixels against Pillow's."""
    import torch

    from taskresize.data.collate import image_batch
    from taskresize.data.decode import load_image
    from taskresize.data.device_decode import DeferredPreResize, decode_jpegs
    from taskresize.data.transforms import PreResize
    from taskresize.hardware import default_workers

    result = {}
    size = (s["in_size"], s["in_size"])
    workers = default_workers(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), s["jpegs"], s["jpeg_size"])
        data_paths = (("cpu decode + PreResize (--decode-on cpu)", PreResize(size, augment=True)),
                      ("device decode (--decode-on device)", DeferredPreResize(size, augment=True)))  # fmt: skip
        for name, transform in data_paths:
            loader = torch.utils.data.DataLoader(
                _Decoded(paths, transform), batch_size=min(s["batch"], len(paths)), num_workers=workers,
                collate_fn=image_batch, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
            )  # fmt: skip
            for batch in loader:  # workers started, pages cached, the decoder initialised
                batch.to(device, non_blocking=True)
                break
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            seen = 0
            for batch in loader:
                seen += batch.to(device, non_blocking=True).shape[0]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            rate = seen / (time.perf_counter() - started)
            result[name] = {"workers": workers, "images_per_s": rate}
            if train_images_per_s:
                result[name]["x training step"] = rate / train_images_per_s
        some = paths[:8]
        decoded = decode_jpegs([DeferredPreResize(size)(p) for p in some], device)
        differences = [(d.cpu().int() - load_image(p).int()).abs() for d, p in zip(decoded, some, strict=True)]
        result["decoded on the device against Pillow (grey levels)"] = {
            "max": int(max(d.max() for d in differences)),
            "mean": float(sum(d.float().mean() for d in differences) / len(differences)),
        }
    return result


class _Decoded:
    """``paths[i] -> transform(paths[i])``: a map-style dataset for the DataLoader."""

    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(self.paths[i])


def uint8_probe(device) -> dict:
    import torch

    import taskresize

    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 3, 61, 83), dtype=torch.uint8, generator=g)
    out = {}
    for size in ((30, 41), (97, 120)):
        cpu = taskresize.resize(x, size, "bilinear", antialias=False)
        dev = taskresize.resize(x.to(device), size, "bilinear", antialias=False).cpu()
        out[f"{tuple(x.shape[-2:])}->{size}"] = int((cpu.int() - dev.int()).abs().max())
    return {"max_grey_levels": out, "ok": max(out.values()) <= 1}


def export_probe(device) -> dict:
    import taskresize
    from taskresize.inference.export import export_resizer
    from taskresize.inference.pixels import PixelResizer

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("downsizenet", "lanczos"):
            model = PixelResizer(taskresize.create_resizer(name, output_size=24).eval())
            try:
                report = export_resizer(model, Path(tmp) / f"{name}.pt2", "pt2", (64, 48), device=device)
                out[name] = {"ok": True, "max_difference": report.max_difference}
            except Exception as error:  # the probe reports, the check goes on
                out[name] = {"ok": False, "error": f"{type(error).__name__}: {str(error)[:300]}"}
    return {"pt2": out, "ok": all(v["ok"] for v in out.values())}


def compile_probe(device, s, names: list[str] | None) -> dict:
    import torch

    import taskresize

    out = {}
    for name in names or taskresize.list_resizers():
        torch._dynamo.reset()
        m = taskresize.create_resizer(name, output_size=s["out_size"]).to(device).eval()
        x = torch.rand(2, 3, s["in_size"], s["in_size"], device=device)
        started = time.perf_counter()
        try:
            with torch.no_grad():
                compiled = torch.compile(m, fullgraph=True, backend=s["compile_backend"])
                got, expected = compiled(x), m(x)
            difference = float((got - expected).abs().max())
            out[name] = {"ok": difference <= 1e-3, "max_difference": difference,
                         "seconds": time.perf_counter() - started}  # fmt: skip
        except Exception as error:
            out[name] = {"ok": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    torch._dynamo.reset()
    return {"backend": s["compile_backend"], "resizers": out, "ok": all(v["ok"] for v in out.values())}


def gpu_tests() -> dict:
    started = time.perf_counter()
    # the inductor compilation of every resizer is the compile probe's: not twice
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "gpu", "-k", "not inductor"]
    command.append("tests")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=420)
    tail = [line for line in done.stdout.splitlines() if line.strip()][-1:] or [done.stderr[-300:]]
    return {"ok": done.returncode == 0, "summary": tail[0], "seconds": time.perf_counter() - started,
            "failures": [line for line in done.stdout.splitlines() if line.startswith("FAILED")][:20]}  # fmt: skip


def markdown(results: dict) -> str:
    s, env = results["settings"], results["environment"]
    lines = [
        f"### GPU check, {results['date']}: {env['device']}",
        "",
        f"`{results['command']}` ({results['seconds']:.0f} s): torch {env['versions']['torch']}, CUDA "
        f"{env.get('cuda')}, cuDNN {env.get('cudnn')}; {s['backbone']}, resizers {s['in_size']} -> {s['out_size']}, "
        f"batch {s['batch']}, channels-last; {s['steps']} timed steps after {s['warmup']} warm-up, median of "
        f"{s['repeats']}." + (" Smoke run: tiny sizes, the times mean nothing." if s["smoke"] else ""),
        "",
        "| training row | precision | images/s | peak memory (MiB) | syncs/step |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results.get("training", []):
        peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        syncs = "-" if row["syncs_per_step"] is None else str(row["syncs_per_step"])
        lines.append(f"| {row['row']} | {row['precision']} | {row['train_images_per_s']:.1f} | {peak} | {syncs} |")
    if results.get("inference"):
        keys = []
        for row in results["inference"]:
            keys += [k for k in row if k not in keys and k != "resizer"]
        keys.sort(key=lambda k: not k.startswith("alone"))
        lines += ["", "| inference | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for row in results["inference"]:
            cells = []
            for k in keys:
                v = row.get(k)
                cells.append("-" if v is None else f"{v[0]:.2f}, {v[1]:.2f}" if isinstance(v, tuple | list)
                             else f"{v:.1f}")  # fmt: skip
            lines.append(f"| {row['resizer']} | " + " | ".join(cells) + " |")
    if results.get("loader"):
        lines += ["", "| data path | images/s | × training step (antialiased bilinear row) |", "|---|---:|---:|"]
        for name, row in results["loader"].items():
            if "images_per_s" not in row:
                continue
            ratio = row.get("x training step")
            extra = f" (workers: {row['workers']})" if "workers" in row else ""
            lines.append(f"| {name}{extra} | {row['images_per_s']:.1f} | {'-' if ratio is None else f'{ratio:.2f}'} |")
        pixels = results["loader"].get("decoded on the device against Pillow (grey levels)")
        if pixels:
            lines += ["", f"JPEGs decoded on the device against Pillow: at most {pixels['max']} grey levels apart, "
                      f"{pixels['mean']:.3f} on average."]  # fmt: skip
    lines += ["", "| probe | result |", "|---|---|"]
    for name, probe in results.get("probes", {}).items():
        verdict = "pass" if probe.get("ok") else "FAIL"
        detail = {k: v for k, v in probe.items() if k != "ok"}
        lines.append(f"| {name} | {verdict}: `{json.dumps(detail, default=str)[:400]}` |")
    for line in results["skipped"]:
        lines.append(f"\nSkipped: {line}")
    for line in results["errors"]:
        lines.append(f"\nError: {line}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (implies --smoke)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repeat, fewer JPEGs, the compile probe traced only (eager backend), no gpu tests",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and steps: checks the script, times nothing")
    parser.add_argument("--output", help="folder for gpu-check.json and .md (default: $OUT, else build/gpu-check)")
    parser.add_argument("--append", action="store_true", help=f"add the tables to {RESULTS}")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest -m gpu run")
    parser.add_argument("--resizers", help="comma-separated learned resizers (default: every registered one)")
    args = parser.parse_args()
    started = time.perf_counter()
    skipped, errors = [], []

    def skip(line: str) -> None:
        skipped.append(line)
        print(f"skipped: {line}", flush=True)

    found = versions()
    print(f"python {found['python']} at {sys.executable}")
    for dist, _, needed_by in PACKAGES:
        print(f"  {dist}: {found[dist]}" if found[dist] else f"  {dist}: missing (needed by {needed_by})")
    if not found["torch"] or not found["torchvision"]:
        print("cannot run: torch and torchvision are needed")
        return 1
    import torch

    from taskresize.hardware import resolve_device

    device = resolve_device(args.device)
    s = settings_for(args, device.type)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # an application's choice, as the training command makes it
        bf16 = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device)
    else:
        bf16 = False
        name = f"CPU ({torch.get_num_threads()} threads)"
    dtype = torch.bfloat16 if bf16 else torch.float32
    print(f"device: {name}; smoke: {s['smoke']}", flush=True)
    env = {"device": name, "versions": found, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None}  # fmt: skip
    import taskresize

    learned = args.resizers.split(",") if args.resizers else taskresize.list_resizers(learned=True)
    results: dict = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "environment": env,
                     "settings": s, "skipped": skipped, "errors": errors, "training": [], "inference": [],
                     "probes": {}, "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:])}  # fmt: skip

    def attempt(what: str, fn):
        print(f"... {what}", flush=True)
        try:
            return fn()
        except Exception as error:  # one failing row does not lose the others
            errors.append(f"{what}: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}")
            print(traceback.format_exc(), file=sys.stderr)
            return None

    rows = [(None, f"{s['backbone']} at {s['out_size']} alone"), ("bilinear", "antialiased bilinear")]
    rows += [(n, n) for n in learned]
    for resizer, label in rows:
        row = attempt(f"training {label}", lambda r=resizer, lb=label: train_row(r, lb, device, s, dtype, False))
        if row:
            results["training"].append(row)
    # float16 + GradScaler on a GPU; float32 + GradScaler on a CPU (no fast float16 kernels there)
    fp16 = attempt("training learnable, float16 + GradScaler",
                   lambda: train_row("learnable", "learnable", device, s, torch.float16 if device.type == "cuda"
                                     else torch.float32, True))  # fmt: skip
    if fp16:
        results["training"].append(fp16)
    references = []
    for resizer, label in rows:
        probe = attempt(f"reference step {label}", lambda r=resizer, lb=label: reference_probe(r, lb, device, s, dtype))
        if probe:
            references.append(probe)
    results["probes"]["training steps against float32 on the CPU"] = {
        "ok": bool(references) and all(p["ok"] for p in references),
        "rows": references,
    }
    for resizer in [None, "bilinear", *learned]:
        row = attempt(f"inference {resizer or s['backbone']}", lambda r=resizer: inference_row(r, device, s, dtype))
        if row:
            results["inference"].append(row)
    bilinear = next((r["train_images_per_s"] for r in results["training"] if r["resizer"] == "bilinear"), None)
    results["loader"] = attempt("data loader", lambda: loader_rows(device, s, bilinear)) or {}
    for what, fn in (("uint8 plain bilinear on the device", lambda: uint8_probe(device)),
                     ("pt2 export on the device", lambda: export_probe(device)),
                     ("torch.compile fullgraph", lambda: compile_probe(device, s, None if args.resizers is None
                                                                       else [*learned, "lanczos"]))):  # fmt: skip
        probe = attempt(what, fn)
        results["probes"][what] = probe if probe else {"ok": False}
    if args.no_tests or args.quick or s["smoke"]:
        skip("the pytest -m gpu run (--no-tests, --quick or a smoke run)")
    elif not found["pytest"]:
        skip("the pytest -m gpu run: pytest is missing")
    elif device.type != "cuda":
        skip("the pytest -m gpu run: no CUDA device")
    else:
        results["probes"]["pytest -m gpu"] = attempt("pytest -m gpu", gpu_tests) or {"ok": False}
    results["seconds"] = time.perf_counter() - started
    text = markdown(results)
    print(text)
    folder = Path(args.output or os.environ.get("OUT") or ROOT / "build" / "gpu-check")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu-check.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (folder / "gpu-check.md").write_text(text)
    print(f"written: {folder / 'gpu-check.json'}, {folder / 'gpu-check.md'}")
    if args.append:
        with RESULTS.open("a") as f:
            f.write("\n" + text)
    failed = [name for name, probe in results["probes"].items() if not probe.get("ok")]
    if failed or errors:
        print(f"gpu-check: {len(failed)} probe(s) failed ({', '.join(failed)}), {len(errors)} error(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
