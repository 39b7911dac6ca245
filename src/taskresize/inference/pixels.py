"""A resizer on pixel values: normalisation, the resizer, denormalisation and clipping in one module.

A learned resizer works on normalised images, ``(pixels - mean) / std`` with the mean and standard deviation in
0-255 units that its file records (its provenance's ``normalization``; ImageNet's when the file has none, as every
task of this package trains with them). A classic resizer works on the pixels themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from taskresize.data.normalization import IMAGENET, Normalization
from taskresize.resizers import ClassicResizer, Resizer
from taskresize.sizes import Size


class PixelResizer(nn.Module):
    """A resizer on pixel values: float pixels in [0, 255] ``(B, 3, H, W)`` -> float pixels ``(B, 3, h, w)``
    clipped to [0, 255]; normalisation inside. This is the module that ``taskresize export`` exports.

    Args:
        resizer: a learned resizer (it sees ``(pixels - mean) / std``) or a :class:`ClassicResizer` (it sees the
            pixels themselves).
        normalization: what the learned resizer's inputs were normalised with (default ImageNet's).
        fuse: fold the learned resizer's BatchNorms into its convolutions (:meth:`Resizer.fuse`).
    """

    def __init__(
        self,
        resizer: Resizer,
        normalization: Normalization = IMAGENET,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        self.classic = isinstance(resizer, ClassicResizer)
        # a copy in eval mode either way: the caller's module keeps its mode and gradients
        self.resizer = resizer.fuse() if fuse and not self.classic else copy.deepcopy(resizer).eval()
        self.normalization = normalization
        self.register_buffer("mean", torch.tensor(normalization.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(normalization.std, dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def output_size(self) -> Size:
        return self.resizer.output_size

    def forward(self, pixels: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        """Resize float pixels ``(B, 3, H, W)`` in [0, 255] to ``size`` (default the resizer's output size)."""
        if self.classic:
            return self.resizer(pixels, size).clamp(0, 255)
        out = self.resizer((pixels - self.mean) / self.std, size)
        return (out * self.std + self.mean).clamp(0, 255)

    @torch.no_grad()
    def resize_uint8(
        self, images: Tensor, size: int | tuple[int, int] | None = None, run: Callable[..., Tensor] | None = None
    ) -> Tensor:
        """uint8 ``(B, 3, H, W)`` -> uint8 ``(B, 3, h, w)``, rounded; a classic resizer stays in uint8 throughout.

        ``run(pixels, size)`` computes the float result (default this module; see :class:`Engine`)."""
        if self.classic:
            return self.resizer(images, size)
        pixels = images.float().contiguous(memory_format=torch.channels_last)  # one layout: the same numbers
        return (run or self)(pixels, size).round_().to(torch.uint8)
