"""How far trained saliency samplers moved from the uniform map (their identity start), and towards the objects.

For each run folder given, the sampler's saliency map on the first five images of every class of a class-folder
data set, as a multiple of the uniform value (1 everywhere at the start): the mean over images of the largest and
smallest value, and the largest weight of the saliency network's last convolution (zero at the start).

On a segmentation set in the VOC layout (``builtin-small-objects``'s segmentation variant), the first 20 validation
images instead, and also the pixels the sampler spends on the objects: the share of its output pixels whose sampling
position falls on a labelled (not background) pixel (the mask read there bilinearly), over that share for a uniform
grid of the same size (the identity start): 1 where the sampler spends pixels as a uniform resize does, above 1
where it magnifies the objects.

    python benchmarks/saliency_uniformity.py DATA_FOLDER RUN_FOLDER [RUN_FOLDER ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from taskresize.data.formats.segmentation import IGNORE_INDEX, is_voc_segmentation, read_mask, scan_voc_segmentation
from taskresize.inference.image import load_image_resizer
from taskresize.resizers.warps import SeparableWarp, separable_grid


def _rgb(path: str | Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def images_and_masks(data: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images ``(N, 3, H, W)`` and, for a VOC segmentation folder, their object masks ``(N, H, W)``."""
    if is_voc_segmentation(data):
        samples = scan_voc_segmentation(data).val[:20]
        masks = torch.from_numpy(np.stack([read_mask(s.mask) for s in samples]))
        return torch.stack([_rgb(s.image) for s in samples]), (masks != 0) & (masks != IGNORE_INDEX)
    files = sorted(p for folder in sorted(data.iterdir()) if folder.is_dir() for p in sorted(folder.glob("*.png"))[:5])
    return torch.stack([_rgb(f) for f in files]), None


def object_share(grid: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """Per image: the share of output pixels on the objects, the object mask read at each sampling position
    (``grid`` in ``grid_sample``'s [-1, 1] convention) by bilinear interpolation."""
    read = torch.nn.functional.grid_sample(objects[:, None].float(), grid, align_corners=False)
    return read.flatten(1).mean(1)


def main(data: str, runs: list[str]) -> None:
    images, objects = images_and_masks(Path(data))
    for run in runs:
        share = None
        resizer = load_image_resizer(run)
        module, pixels = resizer.pixels.resizer, resizer.pixels
        x = (images.float() - pixels.mean) / pixels.std
        with torch.no_grad():
            saliency = module.saliency(x)
            grid = module.grid(x)
            if objects is not None:
                uniform = SeparableWarp.uniform(len(x), tuple(grid.shape[1:3]), like=grid)
                uniform = object_share(separable_grid(uniform.x, uniform.y), objects)
                share = object_share(grid, objects).sum() / uniform.sum()
        relative = saliency.flatten(1) * saliency[0, 0].numel()
        line = (f"{Path(run).name}: {len(images)} images, largest {relative.max(1).values.mean():.4f}, smallest "
                f"{relative.min(1).values.mean():.4f} x uniform; last convolution's largest weight "
                f"{module.net[-1].weight.abs().max():.2e}")  # fmt: skip
        if share is not None:
            line += f"; output pixels on the objects {share:.3f} x a uniform grid's"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
