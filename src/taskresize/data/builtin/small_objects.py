"""``builtin-small-objects``: one small object whose fine texture decides the class, on a large cluttered canvas.

A designed case where uniform down-scaling fails: at 512 px each image holds one square object of 24-48 px at a
random place, framed by a 3 px outline, filled with one of four fine textures (horizontal stripes, vertical stripes,
checkerboard, dots) of period 4-6 px; elsewhere a smooth background and 6-12 untextured distractors (discs, bars,
blobs). The texture is the class. A uniform resize to 64 px divides the period by 8 (to under one pixel), so it
is gone, while a sampler that magnifies the object can keep it; the outline and the object's place survive any
resize, so a low-resolution look finds where to zoom.

``builtin-small-objects@SIZE`` draws the same scenes at ``SIZE`` pixels (everything scaled by ``SIZE / 512``).
Three variants of the same generator, chosen by the task, generated deterministically on first use into the cache
(:func:`~taskresize.data.builtin.cache.cache_root`):

* classification: ``<class>/<index>.png`` folders (four classes);
* segmentation: the Pascal VOC segmentation layout, classes ``background`` and the four textures (the object's
  square, outline included, carries its texture's label);
* detection: the Pascal VOC detection layout, one box per image (the object's square, outline included).

These sets test whether a resizer spends its pixels where the deciding detail is; they are no evidence about
natural images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from taskresize.data.builtin.cache import build_atomically, cached_set, smooth_field
from taskresize.data.builtin.shapes import voc_annotation_xml, voc_palette
from taskresize.data.split import validation_count
from taskresize.errors import DataError

NAME = "builtin-small-objects"
GENERATOR_VERSION = 1
CLASSES = ("hstripes", "vstripes", "checker", "dots")
SEG_CLASSES = ("background", *CLASSES)
DEFAULT_SIZE = 512
TASKS = ("classification", "segmentation", "detection")


def _texture(kind: str, y: np.ndarray, x: np.ndarray, period: float, phase: np.ndarray) -> np.ndarray:
    """A texture in [-1, 1] of ``period`` pixels."""
    w = 2 * np.pi / period
    if kind == "hstripes":
        return np.sign(np.sin(w * y + phase[0]))
    if kind == "vstripes":
        return np.sign(np.sin(w * x + phase[1]))
    if kind == "checker":
        return np.sign(np.sin(w * y + phase[0]) * np.sin(w * x + phase[1]))
    dots = (np.sin(w * y / 2 + phase[0]) ** 2 * np.sin(w * x / 2 + phase[1]) ** 2 > 0.25).astype(np.float64)
    return dots * 2 - 1


def scene_label(seed: int) -> int:
    """The class of the segmentation / detection scene ``seed`` (balanced over seeds)."""
    return seed % len(CLASSES)


def render(label: int, seed: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One scene whose object has texture ``CLASSES[label]``: uint8 ``(size, size, 3)`` and the object's square as
    0-based inclusive pixel indices ``(xmin, ymin, xmax, ymax)``; a pure function of ``(label, seed, size)``."""
    rng = np.random.default_rng([GENERATOR_VERSION, label, seed, size])
    s = size / DEFAULT_SIZE
    y, x = (g + 0.5 for g in np.mgrid[0:size, 0:size].astype(np.float64))  # pixel centres
    image = np.stack([smooth_field(rng, size, 4) for _ in range(3)], axis=-1) * 0.5 + 0.25

    side = rng.uniform(24, 48) * s
    y0, x0 = rng.uniform(4 * s, size - side - 4 * s, 2)
    inside = (y >= y0) & (y < y0 + side) & (x >= x0) & (x < x0 + side)
    for _ in range(rng.integers(6, 13)):  # untextured distractors, not over the object
        colour = rng.uniform(0.05, 0.95, 3)
        cy, cx = rng.uniform(0, size, 2)
        kind = rng.integers(3)
        if kind == 0:
            mask = (y - cy) ** 2 + (x - cx) ** 2 < (rng.uniform(8, 40) * s) ** 2
        elif kind == 1:
            angle, length, width = rng.uniform(0, np.pi), rng.uniform(30, 120) * s, rng.uniform(3, 10) * s
            along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
            across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
            mask = (np.abs(along) < length / 2) & (np.abs(across) < width / 2)
        else:
            ry, rx = rng.uniform(10, 50, 2) * s
            mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        mask &= ~inside
        image[mask] = colour

    period = rng.uniform(4.0, 6.0) * s
    contrast = rng.uniform(0.15, 0.4)
    colour = rng.uniform(0.3, 0.7, 3)
    pattern = _texture(CLASSES[label], y, x, period, rng.uniform(0, 2 * np.pi, 2))
    image[inside] = colour + contrast * pattern[inside][:, None]
    border = max(1.0, 3 * s)
    frame = inside & ~((y >= y0 + border) & (y < y0 + side - border) & (x >= x0 + border) & (x < x0 + side - border))
    image[frame] = rng.choice([0.05, 0.95])
    image += rng.normal(0, 0.015, image.shape)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), box


def _save(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path, compress_level=1)


def _info(staging: Path, task: str, count: int, size: int, seed: int) -> None:
    info = {"generator_version": GENERATOR_VERSION, "task": task, "count": count, "size": size, "seed": seed}
    (staging / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")


def _write_split(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True)
    n_val = validation_count(len(ids), 0.2)
    (folder / "train.txt").write_text("".join(f"{i}\n" for i in ids[n_val:]))
    (folder / "val.txt").write_text("".join(f"{i}\n" for i in ids[:n_val]))


def generate_classification(root: str | os.PathLike, per_class: int, size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """Write ``per_class`` scenes of every class to ``root/<class>/<index>.png`` (atomically)."""

    def write(staging: Path) -> None:
        for label, name in enumerate(CLASSES):
            (staging / name).mkdir()
            for i in range(per_class):
                _save(render(label, seed * 1_000_003 + i, size)[0], staging / name / f"{i:05d}.png")
        _info(staging, "classification", per_class, size, seed)

    return build_atomically(root, write)


def generate_segmentation(root: str | os.PathLike, count: int, size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """Write ``count`` scenes in the VOC segmentation layout to ``root`` (atomically); the first 20% are ``val``."""

    def write(staging: Path) -> None:
        (staging / "JPEGImages").mkdir()
        (staging / "SegmentationClass").mkdir()
        ids = [f"{i:05d}" for i in range(count)]
        for i, name in enumerate(ids):
            scene = seed * 1_000_003 + i
            label = scene_label(i)
            image, (x0, y0, x1, y1) = render(label, scene, size)
            _save(image, staging / "JPEGImages" / f"{name}.png")
            labels = np.zeros((size, size), np.uint8)
            labels[y0 : y1 + 1, x0 : x1 + 1] = label + 1
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette(voc_palette())
            mask.save(staging / "SegmentationClass" / f"{name}.png")
        _write_split(staging / "ImageSets" / "Segmentation", ids)
        (staging / "classes.txt").write_text("".join(f"{c}\n" for c in SEG_CLASSES))
        _info(staging, "segmentation", count, size, seed)

    return build_atomically(root, write)


def generate_detection(root: str | os.PathLike, count: int, size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """Write ``count`` scenes in the VOC detection layout to ``root`` (atomically); the first 20% are ``val``."""

    def write(staging: Path) -> None:
        (staging / "JPEGImages").mkdir()
        (staging / "Annotations").mkdir()
        ids = [f"{i:05d}" for i in range(count)]
        for i, name in enumerate(ids):
            label = scene_label(i)
            image, box = render(label, seed * 1_000_003 + i, size)
            _save(image, staging / "JPEGImages" / f"{name}.png")
            xml = voc_annotation_xml(f"{name}.png", (size, size), [(CLASSES[label], box)])
            (staging / "Annotations" / f"{name}.xml").write_text(xml)
        _write_split(staging / "ImageSets" / "Main", ids)
        (staging / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
        _info(staging, "detection", count, size, seed)

    return build_atomically(root, write)


GENERATORS = {
    "classification": (generate_classification, 150),  # per class: 600 images
    "segmentation": (generate_segmentation, 600),
    "detection": (generate_detection, 600),
}


def small_objects_dataset(task: str, count: int | None = None, size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """The folder of ``task``'s variant in the cache, generated on first use (count: per class for
    classification, images otherwise; default 600 images)."""
    generate, default = GENERATORS[task]
    return cached_set(f"{NAME}-{task[:3]}", GENERATOR_VERSION, count or default, size, seed, generate)


def small_objects_root(data: str, task: str) -> Path | None:
    """The generated folder that ``--data`` names for ``task`` (``builtin-small-objects[@SIZE]``), or None when
    it names none."""
    base, _, size = data.partition("@")
    if base != NAME:
        return None
    if task not in GENERATORS:
        raise DataError(f"--data {data}: there is no {task} variant; it has {', '.join(GENERATORS)}")
    if not size:
        return small_objects_dataset(task)
    if not size.isdigit() or not 64 <= int(size) <= 2048:
        raise DataError(f"--data {data}: the size after '@' must be a whole number of pixels from 64 to 2048")
    return small_objects_dataset(task, size=int(size))
