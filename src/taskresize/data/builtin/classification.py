"""The built-in offline dataset: synthetic, generated deterministically on first use.

Eight classes: two coarse shapes (disc, square) times four fine textures (horizontal stripes, vertical stripes,
checkerboard, dots) with a period of 8-14 pixels at 256 px. The shape survives any resize; the texture survives a
resize to 96 px but mostly not one to 32 px (its period falls below two output pixels there), so a classifier that
sees bilinear 32 px images can tell the shapes apart but the textures only poorly, while a resizer that looks at the
96 px image can encode the texture into the small one. Contrast varies down to barely visible, with
noise and random colours, so that no resizer reaches a perfect score.

It is a designed test of whether a resizer can carry fine detail through down-scaling, not evidence about
natural images: the real-image benchmark is in docs/results.md.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from taskresize.data.builtin.cache import build_atomically, cached_set, smooth_field

GENERATOR_VERSION = 2
SHAPES = ("disc", "square")
TEXTURES = ("hstripes", "vstripes", "checker", "dots")
CLASSES = tuple(f"{shape}-{texture}" for shape in SHAPES for texture in TEXTURES)


def _texture(kind: str, y: np.ndarray, x: np.ndarray, period: float, phase: np.ndarray) -> np.ndarray:
    """A zero-mean texture in [-1, 1]."""
    w = 2 * np.pi / period
    if kind == "hstripes":
        return np.sign(np.sin(w * y + phase[0]))
    if kind == "vstripes":
        return np.sign(np.sin(w * x + phase[1]))
    if kind == "checker":
        return np.sign(np.sin(w * y + phase[0]) * np.sin(w * x + phase[1]))
    # dots: a dot per cell covering about half of it, shifted to zero mean
    cy = np.sin(w * y / 2 + phase[0]) ** 2
    cx = np.sin(w * x / 2 + phase[1]) ** 2
    dots = (cy * cx > 0.25).astype(np.float64)
    return (dots - dots.mean()) / max(dots.std(), 1e-6)


def render(label: int, seed: int, size: int = 256) -> np.ndarray:
    """One image of class ``label``: uint8 ``(size, size, 3)``, a pure function of ``(label, seed, size)``."""
    rng = np.random.default_rng([GENERATOR_VERSION, label, seed, size])
    shape, texture = CLASSES[label].split("-")
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)

    background = np.stack([smooth_field(rng, size, 3) for _ in range(3)], axis=-1) * 0.5 + 0.25
    half = rng.uniform(0.25, 0.4) * size
    cy, cx = rng.uniform(half, size - half, 2)
    if shape == "disc":
        mask = (y - cy) ** 2 + (x - cx) ** 2 < half**2
    else:
        mask = (np.abs(y - cy) < half * 0.88) & (np.abs(x - cx) < half * 0.88)

    period = rng.uniform(8.0, 14.0) * size / 256
    contrast = rng.uniform(0.03, 0.3)
    pattern = _texture(texture, y, x, period, rng.uniform(0, 2 * np.pi, 2))
    colour = rng.uniform(0.3, 0.7, 3) + rng.choice([-0.2, 0.2])  # lighter or darker than the background
    fill = colour[None, None, :] + contrast * pattern[..., None]
    image = np.where(mask[..., None], fill, background)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def _write_class(folder: Path, label: int, per_class: int, size: int, seed: int) -> None:
    folder.mkdir()
    for i in range(per_class):
        image = render(label, seed * 1_000_003 + i, size)
        Image.fromarray(image).save(folder / f"{i:05d}.png", compress_level=1)


def generate(
    root: str | os.PathLike, per_class: int, size: int = 256, seed: int = 0, workers: int | None = None
) -> Path:
    """Write ``per_class`` images of every class to ``root/<class>/<index>.png`` (atomically: all or nothing).

    Classes are rendered in parallel by ``workers`` processes (default: one per CPU).
    """
    workers = workers or os.cpu_count() or 1

    def write(staging: Path) -> None:
        jobs = [(staging / name, label, per_class, size, seed) for label, name in enumerate(CLASSES)]
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_write_class, *zip(*jobs, strict=True)))
        else:
            for job in jobs:
                _write_class(*job)
        info = {"generator_version": GENERATOR_VERSION, "per_class": per_class, "size": size, "seed": seed}
        (staging / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")

    return build_atomically(root, write)


def builtin_dataset(per_class: int = 250, size: int = 256, seed: int = 0) -> Path:
    """The built-in dataset's folder in the cache, generated on first use.

    Its name counts images per class: ``builtin-v2-250x256-seed0`` holds 8 x 250 images."""
    return cached_set("builtin", GENERATOR_VERSION, per_class, size, seed, generate)
