"""Offline segmentation and detection sets: shapes on textured backgrounds, with thin structures.

Generated deterministically on first use into the cache folder (:func:`taskresize.data.builtin.cache.cache_root`),
atomically, and written in the Pascal VOC layouts, so that the real readers
(:mod:`taskresize.data.formats.segmentation`,
:mod:`taskresize.data.formats.detection`) are what reads them:

* ``builtin-seg``: ``JPEGImages/*.png`` (lossless, so one-pixel lines survive), ``SegmentationClass/*.png``
  (palette PNGs), ``ImageSets/Segmentation/{train,val}.txt`` and ``classes.txt``. The scenes of ``builtin-det``
  labelled by region: ``disc`` (a filled disc), ``ring`` (the disc a circle outline 1-2 px thick encloses) and
  ``frame`` (the square a square outline 1-2 px thick encloses); unlabelled thin lines are distractors. The
  labels are regions a stride-8 network can draw at a third of the size, but inside a ring or a frame only its
  outline tells it from the background, so it must survive the down-scaling.
* ``builtin-det``: ``JPEGImages/*.png``, ``Annotations/*.xml`` (VOC boxes, 1-based inclusive pixel indices),
  ``ImageSets/Main/{train,val}.txt`` and ``classes.txt``. Classes: ``disc`` (filled), ``ring`` (a circle outline
  1-2 px thick) and ``frame`` (a square outline 1-2 px thick); unlabelled thin lines are scattered as distractors.

Backgrounds are a smooth colour field plus a fine random texture (stripes of period 3-7 px or pixel noise) and
noise; object colours differ from the background by a random, sometimes small, contrast. The thin classes are what
naive down-scaling erases: plain bilinear interpolation by a factor of 3 samples one input column in three, so a
one-pixel line vanishes where it falls between samples, while the filled shapes survive any resize.
These sets test whether a resizer carries thin structures through down-scaling; they are no evidence about
natural images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from taskresize.data.builtin.cache import build_atomically, cached_set, smooth_field
from taskresize.data.split import validation_count
from taskresize.errors import DataError

SEG_VERSION, DET_VERSION = 2, 1  # bumped when a set's images change: the cache folder is named by it
SEG_CLASSES = ("background", "disc", "ring", "frame")
DET_CLASSES = ("disc", "ring", "frame")
SEG_NAME, DET_NAME = "builtin-seg", "builtin-det"


def voc_palette() -> list[int]:
    """The Pascal VOC colour map (256 RGB triples, flattened): class ``i`` gets the colour VOC gives it."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour field with a fine texture: float ``(size, size, 3)`` around [0.2, 0.8]."""
    field = np.stack([smooth_field(rng, size, 3) for _ in range(3)], axis=-1) * 0.5 + 0.25
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    if rng.random() < 0.5:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3.0, 7.0)
        texture = np.sign(np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period))
    else:
        texture = rng.uniform(-1, 1, (size, size))
    return field + rng.uniform(0.02, 0.1) * texture[..., None]


def _colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """An object colour that differs from the mean of ``under`` (N, 3) by a random contrast of 0.12-0.45."""
    sign = rng.choice([-1.0, 1.0])
    base = under.mean(axis=0) if len(under) else np.full(3, 0.5)
    colour = base + sign * rng.uniform(0.12, 0.45) + rng.normal(0, 0.08, 3)
    if np.any(colour > 1.0) or np.any(colour < 0.0):  # out of range: go the other way
        colour = base - sign * rng.uniform(0.12, 0.45) + rng.normal(0, 0.08, 3)
    return np.clip(colour, 0.0, 1.0)


def _thick(distance: np.ndarray, thickness: float) -> np.ndarray:
    return distance < thickness / 2


def _disc(y, x, cy, cx, r):
    return (y - cy) ** 2 + (x - cx) ** 2 < r**2


def _ring(y, x, cy, cx, r, thickness):
    return _thick(np.abs(np.sqrt((y - cy) ** 2 + (x - cx) ** 2) - r), thickness)


def _frame(y, x, cy, cx, half, thickness):
    inside = np.maximum(np.abs(y - cy), np.abs(x - cx))
    return _thick(np.abs(inside - half), thickness)


def _segment(y, x, y0, x0, y1, x1, thickness):
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
    return _thick(np.hypot(y - (y0 + t * dy), x - (x0 + t * dx)), thickness)


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    image = image + rng.normal(0, 0.02, image.shape)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The pixel extent of ``mask`` as 0-based inclusive ``(xmin, ymin, xmax, ymax)``, or None if empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray]]]:
    """A textured background with thin unlabelled lines and 1-4 separate objects of :data:`DET_CLASSES`.

    Returns the image (float, before noise) and ``[(class name, drawn pixels, enclosed region)]``: for a disc both
    masks are the disc; for a ring or a frame the drawn pixels are the outline and the region is what it encloses.
    """
    image = _background(rng, size)
    y, x = (g + 0.5 for g in np.mgrid[0:size, 0:size].astype(np.float64))  # pixel centres
    s = size
    for _ in range(rng.integers(0, 3)):  # unlabelled thin lines: distractors for the ring and frame classes
        (y0, x0), (y1, x1) = rng.uniform(0.0, 1.0, (2, 2)) * s
        mask = _segment(y, x, y0, x0, y1, x1, rng.uniform(1.0, 2.2))
        image[mask] = _colour(rng, image[mask])
    objects: list[tuple[str, np.ndarray, np.ndarray]] = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(rng.integers(1, 5)):
        for _attempt in range(20):
            r = rng.uniform(0.07, 0.2) * s
            cy, cx = rng.uniform(r + 1, s - r - 1, 2)
            if all(np.hypot(cy - ty, cx - tx) > r + tr + 2 for ty, tx, tr in taken):
                break
        else:
            continue
        taken.append((cy, cx, r))
        name = DET_CLASSES[rng.integers(len(DET_CLASSES))]
        thickness = rng.uniform(1.0, 2.2)
        if name == "disc":
            drawn = region = _disc(y, x, cy, cx, r)
        elif name == "ring":
            drawn = _ring(y, x, cy, cx, r, thickness)
            region = _disc(y, x, cy, cx, r + thickness / 2)
        else:
            half = r * 0.85
            drawn = _frame(y, x, cy, cx, half, thickness)
            region = np.maximum(np.abs(y - cy), np.abs(x - cx)) < half + thickness / 2
        if not drawn.any():
            continue
        image[drawn] = _colour(rng, image[drawn])
        objects.append((name, drawn, region))
    return image, objects


def render_segmentation(seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """One image and its label map: uint8 ``(size, size, 3)`` and uint8 ``(size, size)`` (indices of
    :data:`SEG_CLASSES`), a pure function of ``(seed, size)``."""
    rng = np.random.default_rng([SEG_VERSION, 1, seed, size])
    image, objects = _render_scene(rng, size)
    labels = np.zeros((size, size), np.uint8)
    for name, _drawn, region in objects:
        labels[region] = SEG_CLASSES.index(name)
    return _finish(image, rng), labels


def render_detection(seed: int, size: int = 128) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """One image and its objects: uint8 ``(size, size, 3)`` and ``[(class name, (xmin, ymin, xmax, ymax))]``
    with 0-based inclusive pixel indices (the box covers exactly the object's pixels)."""
    rng = np.random.default_rng([DET_VERSION, 2, seed, size])
    image, objects = _render_scene(rng, size)
    boxes = [(name, _box_of(drawn)) for name, drawn, _region in objects]
    return _finish(image, rng), boxes


def voc_annotation_xml(
    filename: str, size: tuple[int, int], objects: list[tuple[str, tuple[int, int, int, int]]]
) -> str:
    """A VOC annotation; ``objects`` boxes are 0-based inclusive and written 1-based, as VOC does."""
    h, w = size
    parts = [
        "<annotation>",
        f"  <filename>{escape(filename)}</filename>",
        f"  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>",
    ]
    for name, (x0, y0, x1, y1) in objects:
        parts += [
            "  <object>",
            f"    <name>{escape(name)}</name><difficult>0</difficult>",
            f"    <bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
            f"<xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox>",
            "  </object>",
        ]
    return "\n".join([*parts, "</annotation>"]) + "\n"


def _write_split(folder: Path, ids: list[str], val_fraction: float) -> None:
    folder.mkdir(parents=True)
    n_val = validation_count(len(ids), val_fraction)
    (folder / "train.txt").write_text("".join(f"{i}\n" for i in ids[n_val:]))
    (folder / "val.txt").write_text("".join(f"{i}\n" for i in ids[:n_val]))


def generate_segmentation(root: str | os.PathLike, count: int, size: int = 96, seed: int = 0) -> Path:
    """Write ``count`` images in the VOC segmentation layout to ``root`` (atomically); the first 20% are ``val``."""

    def write(staging: Path) -> None:
        (staging / "JPEGImages").mkdir()
        (staging / "SegmentationClass").mkdir()
        palette = voc_palette()
        ids = [f"{i:05d}" for i in range(count)]
        for i, name in enumerate(ids):
            image, labels = render_segmentation(seed * 1_000_003 + i, size)
            Image.fromarray(image).save(staging / "JPEGImages" / f"{name}.png", compress_level=1)
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette(palette)
            mask.save(staging / "SegmentationClass" / f"{name}.png")
        _write_split(staging / "ImageSets" / "Segmentation", ids, 0.2)
        (staging / "classes.txt").write_text("".join(f"{c}\n" for c in SEG_CLASSES))
        _info(staging, SEG_VERSION, count, size, seed)

    return build_atomically(root, write)


def generate_detection(root: str | os.PathLike, count: int, size: int = 128, seed: int = 0) -> Path:
    """Write ``count`` images in the VOC detection layout to ``root`` (atomically); the first 20% are ``val``."""

    def write(staging: Path) -> None:
        (staging / "JPEGImages").mkdir()
        (staging / "Annotations").mkdir()
        ids = [f"{i:05d}" for i in range(count)]
        for i, name in enumerate(ids):
            image, objects = render_detection(seed * 1_000_003 + i, size)
            Image.fromarray(image).save(staging / "JPEGImages" / f"{name}.png", compress_level=1)
            xml = voc_annotation_xml(f"{name}.png", (size, size), objects)
            (staging / "Annotations" / f"{name}.xml").write_text(xml)
        _write_split(staging / "ImageSets" / "Main", ids, 0.2)
        (staging / "classes.txt").write_text("".join(f"{c}\n" for c in DET_CLASSES))
        _info(staging, DET_VERSION, count, size, seed)

    return build_atomically(root, write)


def _info(staging: Path, version: int, count: int, size: int, seed: int) -> None:
    info = {"generator_version": version, "count": count, "size": size, "seed": seed}
    (staging / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")


def builtin_root(data: str, name: str) -> Path | None:
    """The generated set that ``--data`` names, or None when it names none.

    ``builtin`` and ``NAME`` are the set at its default size; ``NAME@SIZE`` is the same scenes drawn at ``SIZE``
    pixels (e.g. ``builtin-seg@192``): thin structures stay 1-2 px thick at every size, so a larger set asks a
    resizer to carry them through a larger down-scaling factor.
    """
    builders = {SEG_NAME: builtin_segmentation, DET_NAME: builtin_detection}
    base, _, size = data.partition("@")
    if data == "builtin":
        base = name
    if base != name:
        return None
    if not size:
        return builders[name]()
    if not size.isdigit() or not 16 <= int(size) <= 2048:
        raise DataError(f"--data {data}: the size after '@' must be a whole number of pixels from 16 to 2048")
    return builders[name](size=int(size))


def builtin_segmentation(count: int = 600, size: int = 96, seed: int = 0) -> Path:
    """The ``builtin-seg`` set's folder in the cache, generated on first use (a few seconds)."""
    return cached_set(SEG_NAME, SEG_VERSION, count, size, seed, generate_segmentation)


def builtin_detection(count: int = 600, size: int = 128, seed: int = 0) -> Path:
    """The ``builtin-det`` set's folder in the cache, generated on first use (a few seconds)."""
    return cached_set(DET_NAME, DET_VERSION, count, size, seed, generate_detection)
