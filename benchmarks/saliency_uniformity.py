"""How far trained saliency samplers moved from the uniform map (their identity start).

For each run folder given, the sampler's saliency map on the first five images of every class of a class-folder
data set, as a multiple of the uniform value (1 everywhere at the start): the mean over images of the largest and
smallest value, and the largest weight of the saliency network's last convolution (zero at the start).

    python benchmarks/saliency_uniformity.py DATA_FOLDER RUN_FOLDER [RUN_FOLDER ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from taskresize.inference.image import load_image_resizer


def main(data: str, runs: list[str]) -> None:
    files = sorted(
        p for folder in sorted(Path(data).iterdir()) if folder.is_dir() for p in sorted(folder.glob("*.png"))[:5]
    )
    images = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])
    for run in runs:
        resizer = load_image_resizer(run)
        module, pixels = resizer.pixels.resizer, resizer.pixels
        with torch.no_grad():
            saliency = module.saliency((images.float() - pixels.mean) / pixels.std)
        relative = saliency.flatten(1) * saliency[0, 0].numel()
        print(f"{Path(run).name}: {len(files)} images, largest {relative.max(1).values.mean():.4f}, smallest "
              f"{relative.min(1).values.mean():.4f} x uniform; last convolution's largest weight "
              f"{module.net[-1].weight.abs().max():.2e}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
