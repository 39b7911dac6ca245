"""Training with and without ``--compile`` (torch.compile of resizer and backbone), same run otherwise:
the learnable resizer + timm:resnet10t, 64 -> 32 px, batch 32, 3 epochs on 320 built-in images.

    python benchmarks/compile_training.py
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

from taskresize.data.builtin.classification import builtin_dataset
from taskresize.training.config import TrainConfig
from taskresize.training.run import train


def main() -> None:
    data = builtin_dataset(per_class=40, size=96)
    for compiled in (False, True):
        out = Path(tempfile.mkdtemp()) / "run"
        cfg = TrainConfig(data=str(data), backbone="timm:resnet10t", resizer="learnable", in_size=[64, 64],
                          out_size=[32, 32], epochs=3, batch_size=32, workers=1, precise_bn=0, compile=compiled,
                          output=str(out))  # fmt: skip
        started = time.perf_counter()
        train(cfg)
        rows = list(csv.DictReader((out / "epochs.csv").open()))
        speeds = [round(float(r["train_images_per_s"])) for r in rows]
        print(f"compile={compiled}: wall {time.perf_counter() - started:.1f} s; train images/s by epoch {speeds}")


if __name__ == "__main__":
    main()
