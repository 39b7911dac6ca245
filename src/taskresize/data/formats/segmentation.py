"""Semantic segmentation data: the Pascal VOC layout or an ``images/`` + ``masks/`` pair, and the uint8 path that
brings an image and its label map to the resizer's input size together.

Label maps are single-channel PNGs of class indices (VOC's palette PNGs, or 8-bit greyscale); 255 marks pixels
that are ignored (VOC's object borders). The image goes to the resizer's input size with a classic resizer, as in
classification (squashed to that aspect ratio); its label map goes to the same size with nearest-neighbour
(Pillow's NEAREST: the label whose pixel centre is nearest), so labels stay labels.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from taskresize.data.decode import IMAGE_EXTENSIONS, is_image_file, load_image
from taskresize.data.split import validation_count
from taskresize.data.transforms import CropResize, flip_coin, plain, random_crop
from taskresize.errors import DataError
from taskresize.resizers.classic import resize
from taskresize.sizes import Size

IGNORE_INDEX = 255
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


@dataclass(frozen=True)
class SegSample:
    image: str
    mask: str


@dataclass
class SegmentationSplits:
    """A segmentation data set: class names (index = label value) and its train and validation samples."""

    root: Path
    classes: list[str]
    train: list[SegSample]
    val: list[SegSample]


def read_classes_file(path: Path) -> list[str] | None:
    """Class names, one per line (blank lines skipped), from ``classes.txt`` if it exists."""
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path} names no classes: write one class name per line, label 0 first")
    return names


def find_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<ext>`` for the first image extension that exists (VOC uses .jpg; others are accepted)."""
    for ext in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def read_id_list(path: Path) -> list[str]:
    """Image ids of a VOC ``ImageSets`` file (first column of each line)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist: the VOC layout needs ImageSets/.../train.txt and val.txt")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def is_voc_segmentation(root: Path) -> bool:
    return (root / "SegmentationClass").is_dir() and (root / "JPEGImages").is_dir()


def scan_voc_segmentation(root: str | os.PathLike) -> SegmentationSplits:
    """``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/{train,val}.txt``.

    The classes come from ``classes.txt`` in ``root`` if present, else they are VOC's 21.
    """
    root = Path(root)
    splits = {}
    for split in ("train", "val"):
        samples = []
        for stem in read_id_list(root / "ImageSets" / "Segmentation" / f"{split}.txt"):
            image = find_image(root / "JPEGImages", stem)
            mask = root / "SegmentationClass" / f"{stem}.png"
            if image is None:
                raise DataError(f"{root / 'JPEGImages'} has no image {stem}.jpg (listed in ImageSets/{split}.txt)")
            if not mask.is_file():
                raise DataError(f"{mask} does not exist (image {stem} is listed in ImageSets/{split}.txt)")
            samples.append(SegSample(str(image), str(mask)))
        splits[split] = samples
    classes = read_classes_file(root / "classes.txt") or list(VOC_CLASSES)
    return SegmentationSplits(root, classes, splits["train"], splits["val"])


def scan_mask_pairs(root: str | os.PathLike, val_fraction: float, seed: int) -> SegmentationSplits:
    """``root/images/<name>.<ext>`` with ``root/masks/<name>.png``, split at random by ``val_fraction``.

    The classes come from ``classes.txt`` if present, else they are ``0 .. max label`` (every mask is read once).
    """
    root = Path(root)
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DataError(
            f"{root} is neither the VOC layout (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/) nor an "
            "images/ + masks/ pair (images/<name>.jpg with masks/<name>.png)"
        )
    samples = []
    for path in sorted(p for p in images.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")):
        mask = masks / f"{path.stem}.png"
        if not mask.is_file():
            raise DataError(f"{path} has no label map {mask}: every image needs masks/<same name>.png")
        samples.append(SegSample(str(path), str(mask)))
    if len(samples) < 2:
        raise DataError(f"{images} holds {len(samples)} image(s); a train/validation split needs at least 2")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-split {val_fraction} must be between 0 and 1 (exclusive)")
    classes = read_classes_file(root / "classes.txt")
    if classes is None:
        top = max(int(np.where(m == IGNORE_INDEX, 0, m).max()) for m in (read_mask(s.mask) for s in samples))
        classes = [str(i) for i in range(top + 1)]
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    n_val = validation_count(len(shuffled), val_fraction)
    train, val = (sorted(part, key=lambda s: s.image) for part in (shuffled[n_val:], shuffled[:n_val]))
    return SegmentationSplits(root, classes, train, val)


def scan_segmentation(root: str | os.PathLike, val_fraction: float, seed: int) -> SegmentationSplits:
    """The VOC layout if ``root`` has it, else an ``images/`` + ``masks/`` pair."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: pass a VOC-style folder or one with images/ and masks/")
    return scan_voc_segmentation(root) if is_voc_segmentation(root) else scan_mask_pairs(root, val_fraction, seed)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A label map as uint8 ``(H, W)`` class indices.

    Palette (``P``) PNGs give their indices (VOC), greyscale gives its values; 16-bit maps are accepted while
    their labels fit in 0-255. Colour (RGB) maps are refused: their colours are not labels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                raise DataError(
                    f"{path} is a {mode} image; label maps must hold one class index per pixel (a palette PNG as in "
                    "VOC's SegmentationClass, or 8-bit greyscale)"
                )
            array = np.array(image.convert("L") if mode in ("1", "LA", "PA") else image)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such label map") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: not a readable label map ({error})") from None
    if array.ndim != 2:
        raise DataError(f"{path}: a label map must have one channel, this one has shape {array.shape}")
    if array.dtype != np.uint8:
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise DataError(f"{path}: labels must lie in 0-255 (255 = ignore), found {array.min()}..{array.max()}")
        array = array.astype(np.uint8)
    return array


def resize_labels(labels: torch.Tensor, size: Size) -> torch.Tensor:
    """Nearest-neighbour resize of a label map ``(H, W)`` (Pillow's NEAREST convention), any integer dtype."""
    return resize(labels[None, None], size, "nearest")[0, 0]


@dataclass
class PairResize(CropResize):
    """``(image path, mask path) -> uint8 (3, h, w), uint8 (h, w)``: decode both, augment both alike, resize.

    With ``augment``: a random resized crop (area ``scale``, aspect ``ratio``) and a horizontal flip, the same for
    the image and its label map (torchvision v2's crop sampler, ``crop`` and ``horizontal_flip`` on a
    ``tv_tensors.Image`` and its ``Mask``). The image is resized with a classic filter (``method``, ``antialias``),
    the label map with nearest-neighbour; the flip comes after the resize.
    """

    def __call__(self, sample: SegSample) -> tuple[torch.Tensor, torch.Tensor]:
        image = load_image(sample.image, max_pixels=self.max_pixels)
        labels = torch.from_numpy(read_mask(sample.mask))
        if tuple(labels.shape) != tuple(image.shape[-2:]):
            raise DataError(
                f"{sample.mask} is {labels.shape[1]}x{labels.shape[0]} px but its image {sample.image} is "
                f"{image.shape[2]}x{image.shape[1]}: a label map must have its image's size"
            )
        return self.apply(image, labels)

    def apply(self, image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment and resize a decoded uint8 ``(3, H, W)`` image and its ``(H, W)`` label map."""
        if self.augment:
            image, labels = tv_tensors.Image(image), tv_tensors.Mask(labels)
            crop = random_crop([image, labels], self.scale, self.ratio)
            image, labels = plain(F.crop(image, **crop)), plain(F.crop(labels, **crop))
        image = resize(image, self.size, self.method, self.antialias)
        labels = resize_labels(labels, self.size)
        if self.augment and flip_coin():
            image = plain(F.horizontal_flip(tv_tensors.Image(image)))
            labels = plain(F.horizontal_flip(tv_tensors.Mask(labels)))
        return image, labels


class SegmentationDataset(Dataset):
    """Yields ``(image uint8 (3, h, w), labels uint8 (h, w))``; labels outside the classes raise a DataError."""

    def __init__(self, samples: Sequence[SegSample], transform: PairResize, num_classes: int) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        image, labels = self.transform(sample)
        bad = (labels >= self.num_classes) & (labels != IGNORE_INDEX)
        if bool(bad.any()):
            raise DataError(
                f"{sample.mask} has label {int(labels[bad].max())} but the data set has {self.num_classes} classes "
                f"(0-{self.num_classes - 1}, {IGNORE_INDEX} = ignore): list every class in classes.txt"
            )
        return image, labels
