"""The built-in offline IQA set: synthetic scenes degraded by known amounts, with vote histograms derived from them.

Each image is a random scene at 128×128 px (a smooth colour field, a few hard-edged discs and rectangles, a patch
of fine stripes with a period of 3-6 px, thin lines and mild grain) with two degradations:

* **haze** of amount ``h ~ U(0, 1)``: a blend towards a light grey that takes away up to 70% of the contrast.
  It is coarse: as visible at 32 px as at 128 px.
* **one fine distortion** of strength ``s ~ U(0, 1)``, the four kinds in turn:

  ===========  =====================================================================
  ``blur``     Gaussian blur, σ = 3·s px
  ``noise``    additive Gaussian noise, σ = 35·s grey levels
  ``jpeg``     JPEG compression, quality = 50 − 45·s
  ``rescale``  bicubic down-scaling by 1 + 5·s and back up (detail loss, ringing)
  ===========  =====================================================================

  (pixel amounts are for 128 px and scale with ``size``). Most of this damage is fine-scale: it mostly averages
  out when the image is brought down to 32 px, less so at 64 px.

The intended mean score is ``7.5 − 2.5·s − 2.5·h`` plus a per-image jitter of σ = 0.3 (rater taste), clipped to
[1.5, 9.5]; 60-200 votes are then drawn from a discretised Gaussian over 1..10 with that mean and a spread of
1.0-1.8
(:func:`~taskresize.data.formats.iqa.gaussian_histogram`), so each image's ground truth is a vote histogram as in
AVA. Half of the score is thus readable at any resolution and half needs fine detail: a model that sees 32 px
bicubic images can judge the haze but little of the rest, while one that sees 64 px, or a learned resizer that
looks at 64 px, has more to go on. (Without the haze, a network trained from scratch on a few thousand images
learnt almost nothing at 32 px.) Like the classification set, it tests whether a resizer carries quality cues
through down-scaling; it says nothing about the aesthetics of real photographs.

Generated deterministically on first use (:func:`builtin_iqa_table`) into the cache folder, atomically:
``scores.csv`` (``path,1,...,10,distortion,strength,haze,design_score``; the reader ignores the last four
columns), ``images/<index>.png`` and ``dataset.json``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from taskresize.data.builtin.cache import build_atomically, cached_set, smooth_field
from taskresize.data.formats.iqa import VOTE_COLUMNS, gaussian_histogram

GENERATOR_VERSION = 1
NAMES = ("builtin-iqa", "builtin")  # values of --data that mean this set (for --task iqa)
DISTORTIONS = ("blur", "noise", "jpeg", "rescale")
TABLE = "scores.csv"


def render_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A clean random scene, uint8 ``(size, size, 3)``."""
    scale = size / 128
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.stack([smooth_field(rng, size, 3) for _ in range(3)], axis=-1) * 0.6 + 0.2
    for _ in range(rng.integers(3, 7)):  # hard-edged shapes
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(8, 30) * scale
        if rng.random() < 0.5:
            mask = (y - cy) ** 2 + (x - cx) ** 2 < r**2
        else:
            mask = (np.abs(y - cy) < r) & (np.abs(x - cx) < r * rng.uniform(0.4, 1.5))
        image[mask] = rng.uniform(0.05, 0.95, 3)
    # a patch of fine stripes at a random angle
    h, w = rng.uniform(0.3, 0.6, 2) * size
    top, left = rng.uniform(0, size - h), rng.uniform(0, size - w)
    patch = (y >= top) & (y < top + h) & (x >= left) & (x < left + w)
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, 6) * scale
    stripes = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    image[patch] = (0.5 + 0.35 * np.sign(stripes[patch]))[:, None] * rng.uniform(0.5, 1.0, 3)
    for _ in range(rng.integers(2, 5)):  # thin lines
        if rng.random() < 0.5:
            row = int(rng.uniform(0, size))
            image[row : row + max(1, round(scale)), :] = rng.uniform(0, 1, 3)
        else:
            col = int(rng.uniform(0, size))
            image[:, col : col + max(1, round(scale))] = rng.uniform(0, 1, 3)
    image += rng.normal(0, 0.01, image.shape)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def distort(image: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` uint8 ``(H, W, 3)`` with one distortion of ``strength`` in [0, 1] (see the module docstring)."""
    scale = image.shape[0] / 128
    if kind == "blur":
        sigma = 3 * strength * scale
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma))) if sigma > 0 else image
    if kind == "noise":
        noisy = image + rng.normal(0, 35 * strength, image.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=round(50 - 45 * strength))
        return np.asarray(Image.open(buffer).convert("RGB"))
    if kind == "rescale":
        h, w = image.shape[:2]
        factor = 1 + 5 * strength
        small = Image.fromarray(image).resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.BICUBIC)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    raise ValueError(f"unknown distortion {kind!r}; known: {', '.join(DISTORTIONS)}")


def haze(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Blend uint8 ``image`` ``(H, W, 3)`` towards a light, slightly tinted grey: ``amount`` in [0, 1] takes away
    up to 70% of the contrast. A coarse degradation, as visible at 32 px as at 128 px."""
    veil = 0.75 * 255 + rng.uniform(-15, 15, 3)
    return np.clip(np.rint(image * (1 - 0.7 * amount) + veil * 0.7 * amount), 0, 255).astype(np.uint8)


def sample(index: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Image ``index`` of the set and its record: a pure function of ``(index, size, seed)``.

    Returns:
        The distorted image, uint8 ``(size, size, 3)``, and ``{"distortion", "strength", "haze",
        "design_score", "votes"}`` (``votes``: 10 counts for the scores 1..10).
    """
    rng = np.random.default_rng([GENERATOR_VERSION, seed, index, size])
    kind = DISTORTIONS[index % len(DISTORTIONS)]
    strength, hazy = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
    image = distort(haze(render_scene(rng, size), hazy, rng), kind, strength, rng)
    score = float(np.clip(7.5 - 2.5 * strength - 2.5 * hazy + rng.normal(0, 0.3), 1.5, 9.5))
    votes = rng.multinomial(int(rng.integers(60, 201)), gaussian_histogram(score, float(rng.uniform(1.0, 1.8))))
    return image, {"distortion": kind, "strength": strength, "haze": hazy, "design_score": score,
                   "votes": votes.tolist()}  # fmt: skip


def _write_images(folder: Path, start: int, stop: int, size: int, seed: int) -> list[list[str]]:
    """Write images ``start..stop-1`` to ``folder/images``; returns their table rows."""
    rows = []
    for i in range(start, stop):
        image, record = sample(i, size, seed)
        name = f"images/{i:05d}.png"
        Image.fromarray(image).save(folder / name, compress_level=1)
        rows.append([name, *map(str, record["votes"]), record["distortion"],
                     *(f"{record[k]:.4f}" for k in ("strength", "haze", "design_score"))])  # fmt: skip
    return rows


def generate(root: str | os.PathLike, count: int, size: int = 128, seed: int = 0, workers: int | None = None) -> Path:
    """Write ``count`` images and ``root/scores.csv`` (atomically: all or nothing); returns the table's path.

    Images are rendered in parallel by ``workers`` processes (default: one per CPU).
    """
    workers = min(workers or os.cpu_count() or 1, max(1, count // 100))

    def write(staging: Path) -> None:
        (staging / "images").mkdir()
        bounds = np.linspace(0, count, workers + 1).astype(int).tolist()
        jobs = [(staging, a, b, size, seed) for a, b in itertools.pairwise(bounds)]
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                chunks = list(pool.map(_write_images, *zip(*jobs, strict=True)))
        else:
            chunks = [_write_images(*job) for job in jobs]
        with (staging / TABLE).open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", *VOTE_COLUMNS, "distortion", "strength", "haze", "design_score"])
            for rows in chunks:
                writer.writerows(rows)
        info = {"generator_version": GENERATOR_VERSION, "count": count, "size": size, "seed": seed}
        (staging / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")

    return build_atomically(root, write) / TABLE


def builtin_iqa_table(count: int = 2000, size: int = 128, seed: int = 0) -> Path:
    """The built-in IQA set's table in the cache, generated on first use."""
    return cached_set("builtin-iqa", GENERATOR_VERSION, count, size, seed, generate) / TABLE
