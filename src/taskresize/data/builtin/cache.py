"""The cache of the generated data sets, and what their generators share.

Each set is generated once, deterministically from its size and seed, into ``cache_root()/<name>-v<version>-
<count>x<size>-seed<seed>`` (written to a staging folder and renamed, so a half-written set never appears).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """``$TASKRESIZE_CACHE``, else ``$XDG_CACHE_HOME/taskresize``, else ``~/.cache/taskresize``."""
    if "TASKRESIZE_CACHE" in os.environ:
        return Path(os.environ["TASKRESIZE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskresize"


def build_atomically(root: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(staging)`` in a fresh folder beside ``root``, then rename it to ``root``: all or nothing."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write(staging)
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def cached_set(name: str, version: int, count: int, size: int, seed: int, generate: Callable[..., object]) -> Path:
    """The folder of a generated set in the cache, ``generate(folder, count, size, seed)`` on first use."""
    root = cache_root() / f"{name}-v{version}-{count}x{size}-seed{seed}"
    if not (root / "dataset.json").is_file():
        print(f"Generating the {name} dataset in {root} ...", flush=True)
        generate(root, count, size, seed)
    return root


def smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1], ``(size, size)``: bilinear interpolation of a coarse random grid."""
    coarse = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size)
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]
