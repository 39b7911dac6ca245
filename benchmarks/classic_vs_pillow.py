"""uint8 classic resizers against Pillow on one large image, the data-loader case (one thread, median of N).

Each method resizes a random RGB image of 2 MP and of 12 MP to 224 x 224: Pillow's ``Image.resize`` against
``taskresize.resize`` on a contiguous ``(3, H, W)`` tensor (what ``torchvision.io.decode_*`` returns) and on the
channels-last ``(H, W, 3)`` view of a NumPy array. Prints the times, the speed-up over Pillow and the largest
difference from Pillow's result in grey levels (the contiguous tensor takes the compiled uint8 passes of
``resizers/uint8_kernels.py``: bicubic and Lanczos equal Pillow, bilinear and box within one grey level).

    python benchmarks/classic_vs_pillow.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

import taskresize
from timing import timed

PILLOW = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
          "lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| image | method | Pillow ms | (3, H, W) ms | × Pillow | max diff | (H, W, 3) view ms | × Pillow |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for height, width in [(1200, 1600), (3000, 4000)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        planar = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        view = torch.from_numpy(pixels).permute(2, 0, 1)
        for method, resample in PILLOW.items():
            pillow = timed(lambda r=resample, i=image: i.resize((224, 224), r), args.repeats)
            ours = timed(lambda m=method, x=planar: taskresize.resize(x, 224, m), args.repeats)
            on_view = timed(lambda m=method, x=view: taskresize.resize(x, 224, m), args.repeats)
            expected = np.asarray(image.resize((224, 224), resample)).astype(int)
            diff = np.abs(taskresize.resize(planar, 224, method).permute(1, 2, 0).numpy().astype(int) - expected).max()
            print(
                f"| {height}x{width} | {method} | {pillow * 1e3:.1f} | {ours * 1e3:.1f} | {pillow / ours:.2f} | {diff} "
                f"| {on_view * 1e3:.1f} | {pillow / on_view:.2f} |"
            )


if __name__ == "__main__":
    main()
