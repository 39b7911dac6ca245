"""The data-loader path: decode, augment and pre-resize to the resizer's input size, all in uint8."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torchvision.transforms import RandomResizedCrop

from ..resizers.classic import resize
from ..sizes import Size
from .images import DEFAULT_MAX_PIXELS, load_image


@dataclass
class PreResize:
    """``path -> uint8 (3, h, w)``: decode, optionally augment, then a classic resize to ``size``.

    Batches must stack, so every image is brought to the resizer's input size by a classic resizer (Pillow's
    algorithm on uint8, see :func:`taskresize.resize`); the learned resizer then maps that to the model's input.
    With ``augment``, a random resized crop (area ``scale``, aspect ``ratio``) and a horizontal flip come first;
    without, the whole image is resized (squashed to the target aspect ratio, as in the paper).
    JPEGs larger than needed decode at a reduced scale.
    """

    size: Size
    method: str = "bilinear"
    antialias: bool = True
    augment: bool = False
    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def draft_size(self) -> Size:
        """The smallest decode size that still leaves the smallest crop at full resolution."""
        factor = 1 / math.sqrt(self.scale[0]) if self.augment else 1.0
        return math.ceil(self.size[0] * factor), math.ceil(self.size[1] * factor)

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        image = load_image(path, draft_size=self.draft_size(), max_pixels=self.max_pixels)
        return self.apply(image)

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """Augment and resize an already decoded uint8 ``(3, H, W)`` image."""
        if self.augment:
            top, left, h, w = RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
            image = image[:, top : top + h, left : left + w]
        image = resize(image, self.size, self.method, self.antialias)
        if self.augment and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image


def collate_uint8(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image, label)`` pairs into a channels-last uint8 batch and an int64 label vector."""
    images = torch.stack([image for image, _ in batch]).contiguous(memory_format=torch.channels_last)
    return images, torch.tensor([label for _, label in batch], dtype=torch.int64)
