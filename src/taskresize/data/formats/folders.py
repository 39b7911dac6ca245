"""Class-per-folder image collections: scanning, train/validation splits, the dataset."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from taskresize.data.decode import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    is_image_file,
    load_image,
    probe_image,
)
from taskresize.data.split import validation_count
from taskresize.errors import DataError


@dataclass(frozen=True)
class Sample:
    path: str
    label: int


@dataclass
class ClassFolders:
    """The images of a class-per-folder tree: ``root/<class>/**/<image>``."""

    root: Path
    classes: list[str]
    samples: list[Sample]


def scan_class_folders(root: str | os.PathLike, classes: Sequence[str] | None = None) -> ClassFolders:
    """Find the classes (sub-folders, sorted) and their image files (recursively, sorted).

    Args:
        root: the folder holding one sub-folder per class.
        classes: the expected class names (e.g. a validation folder must have the training classes).

    Raises:
        DataError: the folder is missing, has no class folders or only one (a classifier needs two), a class has
            no images, or the classes differ from ``classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: pass a folder with one sub-folder of images per class")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise DataError(f"{root} has no class folders: expected {root}/<class name>/<images>")
    if classes is not None and list(classes) != found:
        raise DataError(f"{root} has classes {found}, expected the training classes {list(classes)}")
    samples = []
    for label, name in enumerate(found):
        files = sorted(
            str(p) for p in (root / name).rglob("*") if p.is_file() and is_image_file(p) and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"class folder {root / name} has no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
        samples += [Sample(f, label) for f in files]
    if classes is None and len(found) == 1:
        raise DataError(
            f"{root} has one class folder ({found[0]}): a classifier needs at least two, one sub-folder of images "
            f"per class ({root}/<class name>/<images>)"
        )
    return ClassFolders(root, found, samples)


def split_samples(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split each class in the same proportion, with a seeded shuffle (the split depends only on the seed).

    Every class keeps at least one training image; a class with at least two images gets at least one
    validation image.
    """
    validation_count(2, val_fraction)  # checks the fraction, also when there are no samples
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    train, val = [], []
    rng = random.Random(seed)
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: s.path)
        rng.shuffle(items)
        n_val = validation_count(len(items), val_fraction)
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def train_val_folders(
    root: str | os.PathLike, val_fraction: float, seed: int
) -> tuple[list[str], list[Sample], list[Sample]]:
    """``root/train`` and ``root/val`` if both exist, else ``root`` split by ``val_fraction``.

    Returns ``(classes, train_samples, val_samples)``.
    """
    root = Path(root)
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = scan_class_folders(root / "train")
        val = scan_class_folders(root / "val", classes=train.classes)
        return train.classes, train.samples, val.samples
    folders = scan_class_folders(root)
    train, val = split_samples(folders.samples, val_fraction, seed)
    return folders.classes, train, val


@dataclass
class ScreenReport:
    """What :func:`screen_samples` found: files skipped by reason, and images smaller than needed."""

    checked: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    small: list[str] = field(default_factory=list)
    min_size: tuple[int, int] | None = None

    def lines(self) -> list[str]:
        def some(paths: list[str]) -> str:
            return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")

        out = [f"skipped {len(paths)} file(s) ({reason}): {some(paths)}" for reason, paths in self.skipped.items()]
        if self.small:
            h, w = self.min_size or (0, 0)
            out.append(f"{len(self.small)} image(s) smaller than {h}x{w} will be up-scaled: {some(self.small)}")
        return out


def screen_samples(
    samples: Sequence[Sample],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
    strict: bool = False,
) -> tuple[list[Sample], ScreenReport]:
    """Check every file once, here: keep the readable images, skip the others, note images below ``min_size``.

    Each file's header is read and the file proved complete as cheaply as its format allows (``probe_image`` with
    ``verify``: a PNG's checksums, a JPEG's end marker), so truncated and corrupt files are skipped and counted
    here, before training, and ``strict`` stops on them here. (A file damaged later, during the run, is still
    skipped by :class:`ImageFolderDataset`.)

    Raises:
        DataError: with ``strict``, if any file was skipped or is smaller than ``min_size``.
    """
    report = ScreenReport(checked=len(samples), min_size=min_size)
    kept = []
    for sample in samples:
        try:
            height, width = probe_image(sample.path, max_pixels, verify=True)
        except ImageDecodeError as error:
            report.skipped.setdefault(error.reason, []).append(sample.path)
            continue
        if min_size is not None and (height < min_size[0] or width < min_size[1]):
            report.small.append(sample.path)
        kept.append(sample)
    if strict and (report.skipped or report.small):
        raise DataError("--strict: " + "; ".join(report.lines()))
    return kept, report


def screen_splits(
    train: Sequence[Sample], val: Sequence[Sample], max_pixels: int, min_size: tuple[int, int], strict: bool
) -> tuple[list[Sample], list[Sample]]:
    """:func:`screen_samples` on both splits; what was skipped is reported on stderr (by the first process)."""
    from lightning.pytorch.utilities import rank_zero_only

    train, train_report = screen_samples(train, max_pixels, min_size, strict)
    val, val_report = screen_samples(val, max_pixels, min_size, strict)
    if rank_zero_only.rank == 0:
        for split, report in (("training", train_report), ("validation", val_report)):
            for line in report.lines():
                print(f"{split} data: {line}", file=sys.stderr, flush=True)
    if train and not val and not val_report.checked:  # nothing held out, not nothing readable
        raise DataError(
            f"no validation images: every class has a single image ({len(train)} images), and the split keeps a "
            "class's only image for training; add a second image to some classes, or give the data train/ and "
            "val/ sub-folders"
        )
    if not train or not val:
        raise DataError(f"no readable images left: {len(train)} for training, {len(val)} for validation")
    return train, val


class ImageFolderDataset(Dataset):
    """Decodes samples to uint8 ``(3, H, W)`` tensors and applies ``transform``; yields ``(image, label)``.

    A file that fails to decode is reported on stderr once and replaced by the next sample, unless ``strict``,
    when the error stops the run. (:func:`screen_samples` has already skipped the files that were damaged when the
    run started; this is for files that change while it runs.)
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[str], torch.Tensor] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        strict: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.max_pixels = max_pixels
        self.strict = strict
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for offset in range(len(self.samples)):
            sample = self.samples[(index + offset) % len(self.samples)]
            try:
                if self.transform is None:
                    return load_image(sample.path, max_pixels=self.max_pixels), sample.label
                return self.transform(sample.path), sample.label
            except ImageDecodeError as error:
                if self.strict:
                    raise
                if sample.path not in self.failed:
                    self.failed.add(sample.path)
                    print(f"warning: skipping {error}", file=sys.stderr, flush=True)
        raise DataError("no image of this dataset could be decoded")
