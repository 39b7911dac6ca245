"""Small generated datasets and run helpers for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from taskresize.cli import main

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def colour_folders(root: Path, per_class: int = 12, size: int = 40, seed: int = 0) -> Path:
    """An easy class-per-folder set: noisy images dominated by one colour per class, PNG and JPEG mixed."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (size, size + 8, 3)), 0, 255).astype(np.uint8)
            suffix = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(root / name / f"{i:03d}.{suffix}")
    return root


def train_args(data: Path, output: Path, **overrides) -> list[str]:
    """Command-line arguments of a quick run on ``data``."""
    values = {"--data": data, "--output": output, "--backbone": "torchvision:resnet18", "--in-size": 32,
              "--out-size": 32, "--epochs": 2, "--batch-size": 8, "--workers": 0, "--lr": 0.01,
              "--precise-bn": 16} | overrides  # fmt: skip
    return [str(x) for key, value in values.items() if value is not None for x in (key, value)]


def cli(*args) -> int:
    """Run ``taskresize ARGS`` in this process; its exit status."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code


class StopAtEpoch(L.Callback):
    """Interrupts training (as Ctrl-C would) when epoch ``epoch`` starts."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for a torch.distributed rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_equals_the_sequential_sweep(sweep, tmp_path: Path) -> None:
    """The runs of ``sweep`` that Ray wrote under ``tmp_path / "ray"`` have the metrics of the same sweep run one
    after another in this process with one thread (a Ray task's one CPU)."""
    from taskresize.experiments.sweep.run import run_sweep

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a task's threads: its one CPU
    try:
        assert set(run_sweep(sweep, tmp_path / "seq", log=lambda line: None).values()) == {"finished"}
    finally:
        torch.set_num_threads(threads)
    for run in sweep.runs:
        got = json.loads((tmp_path / "ray" / "grid" / run.name / "metrics.json").read_text())
        want = json.loads((tmp_path / "seq" / "grid" / run.name / "metrics.json").read_text())
        for key in ("top1_error", "val_loss", "flops_total", "seed"):
            assert got[key] == want[key], (run.name, key)
