"""torchvision transforms v2 that resize with taskresize: Pillow-exact classic filters and trained resizers.

Drop them into a ``torchvision.transforms.v2`` pipeline (``v2.Compose``, a dataset's ``transforms=``, a
``DataLoader``'s workers) in place of ``v2.Resize``. Every input of one call gets the same output size:

- images (``tv_tensors.Image``, a plain tensor ``(..., C, H, W)``, a PIL image) and videos (``tv_tensors.Video``):
  resized by the transform's resizer; uint8 stays uint8, float stays float (``[0, 1]`` for :class:`LearnedResize`,
  torchvision's convention; any range for :class:`Resize`);
- ``tv_tensors.Mask``: nearest neighbour at pixel centres (``F.interpolate``'s ``nearest-exact``, Pillow's
  ``NEAREST``), so labels stay labels and align with the resized image;
- ``tv_tensors.BoundingBoxes`` (and key points): scaled with the image by torchvision's own kernel, canvas size
  updated.

Sizes follow ``v2.Resize``: ``(h, w)`` exactly, or one int ``s``: the shorter side becomes ``s`` and the longer
keeps the aspect ratio (at most ``max_size``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from taskresize.inference.image import ImageResizer, load_image_resizer
from taskresize.resizers.classic import METHODS, resize

__all__ = ["LearnedResize", "Resize"]


def output_size(canvas: Sequence[int], size: int | Sequence[int], max_size: int | None = None) -> tuple[int, int]:
    """The ``(h, w)`` an image of ``canvas`` ``(H, W)`` is resized to, as ``v2.Resize`` computes it.

    Args:
        canvas: the image's ``(H, W)``.
        size: ``(h, w)``, or one int for the shorter side (the longer one keeps the aspect ratio, truncated).
        max_size: with an int ``size``, the longest the longer side may be (the shorter one then shrinks).
    """
    if not isinstance(size, int):
        h, w = (int(v) for v in size)
        return h, w
    height, width = int(canvas[0]), int(canvas[1])
    short, long = min(height, width), max(height, width)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if height <= width else (new_long, new_short)


def _canvas(flat_inputs: list[Any]) -> tuple[int, int]:
    """The one ``(H, W)`` of the images, videos, masks and boxes of a sample (they must agree)."""
    sizes = {
        tuple(TF.get_size(x))
        for x in flat_inputs
        if isinstance(x, tv_tensors.TVTensor | PIL.Image.Image) or type(x) is Tensor
    }
    if len(sizes) != 1:
        raise ValueError(f"the images, masks and boxes of one sample must have one size, got {sorted(sizes)}")
    h, w = sizes.pop()
    return int(h), int(w)


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest neighbour at pixel centres (``nearest-exact``) on ``(..., H, W)`` of any dtype: labels stay labels."""
    height, width = mask.shape[-2:]
    h, w = size
    rows = ((torch.arange(h, device=mask.device) + 0.5) * (height / h)).floor().long().clamp_(max=height - 1)
    cols = ((torch.arange(w, device=mask.device) + 0.5) * (width / w)).floor().long().clamp_(max=width - 1)
    return mask[..., rows[:, None], cols[None, :]]


def _size_argument(size: int | Sequence[int] | None, what: str) -> int | tuple[int, int] | None:
    if size is None or (isinstance(size, int) and not isinstance(size, bool)):
        if isinstance(size, int) and size < 1:
            raise ValueError(f"{what} must be positive, got {size}")
        return size
    if isinstance(size, Sequence) and len(size) == 1:
        return _size_argument(int(size[0]), what)
    if isinstance(size, Sequence) and len(size) == 2 and all(int(v) >= 1 for v in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{what} must be an int or (h, w) of positive ints, got {size!r}")


class _ResizeBase(v2.Transform):
    """The shared part: one output size per call, masks and boxes alongside (see the module docstring)."""

    def __init__(self, size: int | Sequence[int] | None, max_size: int | None = None) -> None:
        super().__init__()
        self.size = _size_argument(size, "size")
        self.max_size = max_size

    def _default_size(self) -> tuple[int, int]:
        raise ValueError("size is required")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self.size is None:
            return {"size": self._default_size()}
        return {"size": output_size(_canvas(flat_inputs), self.size, self.max_size)}

    def _resize_images(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, h, w)``, same dtype."""
        raise NotImplementedError

    def _images(self, inpt: Tensor, size: tuple[int, int]) -> Tensor:
        batch = inpt.reshape(-1, *inpt.shape[-3:])
        return self._resize_images(batch, size).reshape(*inpt.shape[:-2], *size)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        size = params["size"]
        if isinstance(inpt, tv_tensors.Mask):
            return tv_tensors.wrap(resize_mask(inpt.as_subclass(Tensor), size), like=inpt)
        if isinstance(inpt, tv_tensors.Image | tv_tensors.Video):
            return tv_tensors.wrap(self._images(inpt.as_subclass(Tensor), size), like=inpt)
        if isinstance(inpt, PIL.Image.Image):
            pixels = TF.pil_to_tensor(inpt.convert("RGB") if inpt.mode not in ("RGB", "L") else inpt)
            return TF.to_pil_image(self._images(pixels, size))
        if isinstance(inpt, tv_tensors.TVTensor):  # bounding boxes, key points: torchvision scales them
            return TF.resize(inpt, list(size))
        return self._images(inpt, size)  # a plain tensor taken as the image


class Resize(_ResizeBase):
    """Resize with a classic filter, Pillow-exact on uint8 (``Image.resize`` within 1 grey level), as a v2 transform.

    Args:
        size: ``(h, w)``, or one int for the shorter side (``v2.Resize``'s convention).
        method: ``nearest``, ``bilinear``, ``bicubic``, ``area`` (Pillow's BOX) or ``lanczos``.
        antialias: Pillow's antialiasing when down-scaling (False: ``F.interpolate``'s plain kernels).
        max_size: with an int ``size``, the longest the longer side may be.

    Example:
        >>> from torchvision.transforms import v2
        >>> pipeline = v2.Compose([Resize((224, 224), method="lanczos"), v2.ToDtype(torch.float32, scale=True)])
    """

    def __init__(
        self, size: int | Sequence[int], method: str = "bilinear", antialias: bool = True, max_size: int | None = None
    ) -> None:
        if size is None:
            raise ValueError("Resize needs a size: (h, w) or one int for the shorter side")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        super().__init__(size, max_size)
        self.method = method
        self.antialias = antialias

    def _resize_images(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        return resize(images, size, self.method, antialias=self.antialias)


class LearnedResize(_ResizeBase):
    """Resize with a trained resizer (a file, a run folder or ``hf-hub:ORG/NAME``), as a v2 transform.

    Each image is first pre-resized to the resizer's training input size (as in training, and as
    ``taskresize resize`` does), then normalised, resized and de-normalised with the statistics saved in the file;
    uint8 images come back rounded, float images (``[0, 1]``) unrounded. Runs without gradients.

    Args:
        resizer: a ``.safetensors`` resizer file, a run folder, ``hf-hub:ORG/NAME[@REVISION]``, or an
            :class:`~taskresize.inference.image.ImageResizer`.
        size: ``(h, w)``, or one int for the shorter side; default the resizer's output size.
        max_size: with an int ``size``, the longest the longer side may be.
        in_size: the pre-resize: ``"auto"`` (the file's training input size), ``None`` (none) or a size.
        device: where the resizer runs (images come back on their own device).
    """

    def __init__(
        self,
        resizer: str | os.PathLike | ImageResizer,
        size: int | Sequence[int] | None = None,
        *,
        max_size: int | None = None,
        in_size: Any = "auto",
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(size, max_size)
        self.source = str(getattr(resizer, "source", resizer))
        self._resizer = (
            resizer
            if isinstance(resizer, ImageResizer)
            else load_image_resizer(resizer, in_size=in_size, device=device)
        )
        if self._resizer.classic:
            raise ValueError(f"{self.source!r} is a classic method: use taskresize.transforms.Resize for it")

    @property
    def resizer(self) -> ImageResizer:
        """The loaded resizer (pre-resize, normalisation and module)."""
        return self._resizer

    def _default_size(self) -> tuple[int, int]:
        h, w = self._resizer.output_size
        return int(h), int(w)

    def _resize_images(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        if images.shape[-3] != 3:
            raise ValueError(f"LearnedResize takes RGB images (3 channels), got shape {tuple(images.shape)}")
        if images.is_floating_point():
            return self._resizer(images * 255, size) / 255
        return self._resizer(images, size)
