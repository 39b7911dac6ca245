"""Generated test images: fine textures (chirps), hard edges and noise, deterministic by seed."""

from __future__ import annotations

import numpy as np
import torch


def synthetic_image(height: int, width: int, seed: int = 0, low: int = 0, high: int = 255) -> np.ndarray:
    """An RGB uint8 image ``(H, W, 3)`` with values in ``[low, high]`` mixing aliasing-prone content.

    Channel 0: a radial chirp (frequency rising to Nyquist), channel 1: rectangles and a disc with hard edges,
    channel 2: uniform noise. Each channel spans the full ``[low, high]`` range.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = ((y - height / 2) ** 2 + (x - width / 2) ** 2) / max(height, width)
    chirp = 0.5 + 0.5 * np.cos(np.pi * r2)
    edges = np.zeros((height, width))
    for _ in range(6):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        edges[y0 : y0 + rng.integers(2, height // 2 + 3), x0 : x0 + rng.integers(1, width // 3 + 2)] = rng.random()
    disc = (y - height * 0.3) ** 2 + (x - width * 0.6) ** 2 < (min(height, width) * 0.2) ** 2
    edges[disc] = 1.0
    edges[::7, :] = 1.0 - edges[::7, :]  # one-pixel lines
    noise = rng.random((height, width))
    img = np.stack([chirp, edges, noise], axis=-1)
    return np.rint(low + img * (high - low)).astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` uint8 array -> ``(1, C, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_array(t: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` tensor -> ``(H, W, C)`` array."""
    if t.dim() == 4:
        t = t[0]
    return t.permute(1, 2, 0).cpu().numpy()
