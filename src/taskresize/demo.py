"""The demo: the paper's two-phase protocol on the built-in dataset, end to end, in about ten minutes on 2 cores.

1. ``baseline``: the backbone trained from scratch on bilinear-resized images at the output size;
2. from that checkpoint, the same number of further epochs for each of: bilinear again (the control: what the
   extra epochs alone buy), the learnable resizer and DownsizeNet, both fed the larger input size.

All four see the same training images, seed and output size, so the backbone costs the same; the table shows what
each resizer adds in FLOPs and in wall time, and a figure shows what the learned resizers do to the images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.builtin import builtin_dataset
from .data.folder import train_val_folders
from .data.images import load_image
from .figures import comparison_figure, normalized_column
from .fileio import atomic_write_text
from .io import load_resizer, read_resizer_header
from .resizers.classic import resize
from .training.config import TrainConfig
from .training.run import is_finished, train


@dataclass
class DemoPlan:
    output: Path = Path("runs/demo")
    backbone: str = "timm:resnet10t"
    in_size: int = 96
    out_size: int = 32
    baseline_epochs: int = 10
    joint_epochs: int = 5
    baseline_lr: float | None = None  # the default: 0.05 x 32/128
    joint_lr: float = 0.005  # the paper's fine-tuning rate, unscaled: the new resizer must learn in a few epochs
    batch_size: int = 32
    workers: int = 1
    seed: int = 0
    images_per_class: int = 250  # the built-in dataset's size
    image_size: int = 256

    def data(self) -> Path:
        return builtin_dataset(per_class=self.images_per_class, size=self.image_size)

    def runs(self) -> list[tuple[str, TrainConfig]]:
        """The demo's runs, in order: the baseline, then three runs initialised from it."""
        common = {"data": str(self.data()), "backbone": self.backbone, "out_size": self.out_size, "seed": self.seed,
                  "batch_size": self.batch_size, "workers": self.workers}  # fmt: skip
        base = self.output / "baseline"
        joint = {**common, "init": str(base), "epochs": self.joint_epochs, "lr": self.joint_lr}
        plans = [
            ("baseline", "bilinear", self.out_size, {**common, "epochs": self.baseline_epochs, "lr": self.baseline_lr}),
            ("bilinear", "bilinear", self.out_size, joint),
            ("learnable", "learnable", self.in_size, joint),
            ("downsizenet", "downsizenet", self.in_size, joint),
        ]
        return [
            (label, TrainConfig(**values, resizer=resizer, in_size=in_size, output=str(self.output / label)))
            for label, resizer, in_size, values in plans
        ]


def run_demo(plan: DemoPlan) -> str:
    """Train the demo's runs (finished ones are kept), then write and return the results table."""
    runs = plan.runs()
    for i, (label, cfg) in enumerate(runs, 1):
        sizes = f"{cfg.input_size[0]} -> {cfg.out_size[0]} px"
        print(f"\n=== demo run {i}/{len(runs)}: {label} ({cfg.resizer}, {sizes}) ===", flush=True)
        train(cfg, resume=is_finished(cfg.output))
    table = results_table(runs)
    figure = demo_figure(plan)
    text = f"{table}\n\nFigure: {figure}\n"
    atomic_write_text(plan.output / "results.md", text)
    return text


def results_table(runs: list[tuple[str, TrainConfig]]) -> str:
    lines = [
        "| run | resizer | input → output | epochs | top-1 error | top-5 error | MFLOPs/image (resizer) "
        "| train images/s | wall time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, cfg in runs:
        m = json.loads((Path(cfg.output) / "metrics.json").read_text())
        epochs = f"+{cfg.epochs}" if cfg.init else str(cfg.epochs)
        top5 = f"{m['top5_error']:.1%}" if "top5_error" in m else "—"  # reported only with more than 5 classes
        lines.append(
            f"| {label} | {cfg.resizer} | {cfg.input_size[0]} → {cfg.out_size[0]} | {epochs} "
            f"| {m['top1_error']:.1%} | {top5} | {m['flops_total'] / 1e6:.1f} "
            f"({m['flops_resizer'] / 1e6:.1f}) | {m['train_images_per_s']:.0f} | {m['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def demo_figure(plan: DemoPlan, count: int = 4) -> Path:
    """Validation images of different classes at the resizers' input size, and what each resizer makes of them."""
    classes, _, val = train_val_folders(plan.data(), 0.2, 0)
    picked = [next(s for s in val if s.label == c) for c in range(0, len(classes), max(1, len(classes) // count))]
    size = (plan.in_size, plan.in_size)
    images = torch.stack([resize(load_image(s.path), size) for s in picked[:count]])
    out = (plan.out_size, plan.out_size)
    columns = {"bilinear": lambda x: resize(x, out, "bilinear")}
    for name in ("learnable", "downsizenet"):
        run = plan.output / name
        normalization = read_resizer_header(run)["provenance"]["normalization"]
        columns[name] = normalized_column(load_resizer(run), out, normalization["mean"], normalization["std"])
    rows = ", ".join(classes[s.label] for s in picked[:count])
    title = f"Built-in dataset, {plan.in_size} -> {plan.out_size} px (rows: {rows})"
    return comparison_figure(images, columns, plan.output / "resized.png", reference="bilinear", title=title)
