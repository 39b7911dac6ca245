"""Small generated datasets and run helpers for the tests."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
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
