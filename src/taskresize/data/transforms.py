"""The data-loader path: decode, augment, distort and pre-resize to the resizer's input size, all in uint8.

The augmentation (a random resized crop and a horizontal flip) is torchvision's ``transforms.v2``: its crop sampler
and its functional ``crop`` and ``horizontal_flip`` on ``tv_tensors``, so that label maps (``Mask``) and boxes
(``BoundingBoxes``) follow their image. Its random numbers come from the global torch random state (seeded per item
by the training data). The resize itself stays :func:`taskresize.resize` (Pillow's algorithm), never torchvision's;
the flip comes after it where nothing depends on the flipped frame (fewer pixels to flip).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from taskresize.data.decode import DEFAULT_MAX_PIXELS, load_image, pil_to_tensor, tensor_to_pil
from taskresize.resizers.classic import resize
from taskresize.sizes import Size

# Talebi & Milanfar Table 9: x4 down-scaled inputs, Gaussian noise of sigma 0.1 (of the [0, 1] range), JPEG quality 10
DISTORTIONS = ("none", "downscale4", "noise0.1", "jpeg10")
NOISE_SIGMA = 0.1
JPEG_QUALITY = 10
DOWNSCALE = 4


@dataclass(frozen=True)
class Distortion:
    """A distortion of the input images (Talebi & Milanfar Table 9), applied in the data loader.

    The distortion fixes how much information reaches the model, relative to the model's input ``out_size``:
    the (augmented) image is first resized to a *working size* — ``out_size / 4`` for ``downscale4``,
    ``out_size`` for ``noise0.1`` and ``jpeg10`` — with the pre-resize's classic method, distorted there, and only
    then pre-resized to the resizer's input size (nothing to do when that equals the working size). So
    ``downscale4`` with ``in_size = out_size / 4`` is the paper's setting (the resizer up-scales by 4), and noise
    and JPEG with ``in_size = out_size`` are its "resolution unchanged" setting. Applying them to the stored image
    instead (256 px here) would let the pre-resize to 32-64 px average the noise and the JPEG blocks away.

    Attributes:
        name: one of :data:`DISTORTIONS`.
        out_size: the model's input size ``(h, w)``.
    """

    name: str
    out_size: Size

    def __post_init__(self) -> None:
        if self.name not in DISTORTIONS:
            raise ValueError(f"distortion {self.name!r} is not one of {', '.join(DISTORTIONS)}")

    @property
    def working_size(self) -> Size | None:
        """The size the distortion acts at; None for ``none``."""
        if self.name == "none":
            return None
        if self.name == "downscale4":
            return tuple(max(1, round(s / DOWNSCALE)) for s in self.out_size)  # type: ignore[return-value]
        return tuple(self.out_size)  # type: ignore[return-value]

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Distort a uint8 ``(3, H, W)`` image already at :attr:`working_size`; ``generator`` draws the noise
        (None: the global random state)."""
        if self.name == "noise0.1":
            noise = torch.randn(image.shape, generator=generator) * (NOISE_SIGMA * 255)
            return (image.float() + noise).round_().clamp_(0, 255).to(torch.uint8)
        if self.name == "jpeg10":
            buffer = io.BytesIO()
            tensor_to_pil(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                return pil_to_tensor(decoded.convert("RGB"))
        return image  # none, downscale4: the resize to the working size is the distortion


@functools.cache
def _crop_sampler(scale: tuple[float, float], ratio: tuple[float, float]) -> v2.RandomResizedCrop:
    return v2.RandomResizedCrop(size=1, scale=scale, ratio=ratio)  # only its make_params is used: size is unused


def random_crop(inputs: Sequence[Any], scale: Sequence[float], ratio: Sequence[float]) -> dict[str, int]:
    """``top``, ``left``, ``height``, ``width`` of a crop of random area (``scale`` of the image's) and aspect ratio
    (log-uniform in ``ratio``), as torchvision v2's ``RandomResizedCrop.make_params`` draws them (from the global
    torch random state) for ``inputs``, tensors or ``tv_tensors`` of one size. Cut them with ``F.crop``; the resize
    is left to :func:`taskresize.resize`."""
    (low, high), (narrow, wide) = scale, ratio
    return _crop_sampler((float(low), float(high)), (float(narrow), float(wide))).make_params(list(inputs))


def flip_coin() -> bool:
    """Whether to flip: torchvision v2's ``RandomHorizontalFlip(p=0.5)`` draw, one ``torch.rand`` below 1/2."""
    return bool(torch.rand(1) < 0.5)


def plain(tensor: torch.Tensor) -> torch.Tensor:
    """A ``tv_tensor`` as a plain tensor (no copy)."""
    return tensor.as_subclass(torch.Tensor)


def sample_generator(path: str | os.PathLike) -> torch.Generator:
    """A random generator seeded by a sample's file (its last two path parts), for repeatable validation."""
    key = "/".join(Path(path).parts[-2:]).encode()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:7], "little"))


@dataclass
class CropResize:
    """The loader's resize settings: the classic resize to ``size`` (``method``, ``antialias``) and, with
    ``augment``, the random resized crop (area ``scale``, aspect ``ratio``, :func:`random_crop`) and flip."""

    size: Size
    method: str = "bilinear"
    antialias: bool = True
    augment: bool = False
    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class PreResize(CropResize):
    """``path -> uint8 (3, h, w)``: decode, optionally augment, then a classic resize to ``size``.

    Batches must stack, so every image is brought to the resizer's input size by a classic resizer (Pillow's
    algorithm on uint8, see :func:`taskresize.resize`); the learned resizer then maps that to the model's input.
    With ``augment``, a random resized crop (area ``scale``, aspect ``ratio``, :func:`random_crop`) comes first and a
    horizontal flip last; without, the whole image is resized (squashed to the target aspect ratio, as in the paper).
    JPEGs larger than needed decode at a reduced scale. A :class:`Distortion` comes after the augmentation:
    random in training (``augment``), repeatable per file in validation.
    """

    distortion: Distortion | None = None

    def draft_size(self) -> Size:
        """The smallest decode size that still leaves the smallest crop at full resolution."""
        factor = 1 / math.sqrt(self.scale[0]) if self.augment else 1.0
        return math.ceil(self.size[0] * factor), math.ceil(self.size[1] * factor)

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        image = load_image(path, draft_size=self.draft_size(), max_pixels=self.max_pixels)
        random = self.distortion is not None and self.distortion.name == "noise0.1"
        generator = sample_generator(path) if random and not self.augment else None
        return self.apply(image, generator)

    def apply(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment, distort and resize an already decoded uint8 ``(3, H, W)`` image (``generator``: the
        distortion's random numbers; None for the global random state)."""
        if self.augment:
            image = plain(F.crop(tv_tensors.Image(image), **random_crop([image], self.scale, self.ratio)))
        working = self.distortion.working_size if self.distortion is not None else None
        if working is not None:
            image = self.distortion(resize(image, working, self.method, self.antialias), generator)
        if working is None or tuple(image.shape[-2:]) != tuple(self.size):
            image = resize(image, self.size, self.method, self.antialias)
        if self.augment and flip_coin():
            image = plain(F.horizontal_flip(tv_tensors.Image(image)))
        return image
