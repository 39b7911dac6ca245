"""JPEGs decoded on the training device: the loader's workers read the files and draw the augmentation; the device
decodes each batch (``torchvision.io.decode_jpeg`` on a list of files, nvJPEG on a CUDA GPU), then crops,
pre-resizes and flips there.

This is the data path of ``--decode-on device``. :class:`DeferredPreResize` is the workers' transform: for a JPEG it
reads the file's bytes and draws the random resized crop and the flip as :class:`PreResize` does (the same draws, in
the same order, from the same per-item random state: same seed, same batches), and returns an :class:`EncodedImage`;
any other file (PNG, a CMYK JPEG, ...) it decodes and pre-resizes in the worker, as :class:`PreResize` does. The
collate function gathers both into an :class:`EncodedBatch`, and moving that to a device (``batch.to(device)``, as
Lightning and the precise-BN pass do) decodes it there into the channels-last uint8 ``(B, 3, h, w)`` batch the tasks
expect. On a device other than a CUDA GPU, torchvision decodes on the CPU, in the training process.

What differs from decoding in the workers (``tests/test_device_decode.py`` measures it on a CPU):

* The decoder. On a CPU torchvision's libjpeg-turbo decodes as Pillow's does, to the bit; nvJPEG's inverse DCT and
  chroma up-sampling are its own, so on a GPU the decoded pixels may differ from Pillow's by a few grey levels.
* No reduced-scale decoding: Pillow decodes a JPEG more than twice as large as needed at 1/2, 1/4 or 1/8 scale
  (``draft``); here every JPEG is decoded whole, and its crop resized from the full resolution.
* The pre-resize runs on a float32 copy of each crop, rounded once (the float path of :func:`taskresize.resize`:
  torch's antialiased kernels for bilinear and bicubic on every device), where the workers resize uint8 and round
  between the passes: within one grey level, except where bicubic overshoots 0 or 255 (the workers clip there, as
  Pillow does). ``nearest`` picks the same pixels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from taskresize.data.decode import JPEG_TAIL, ImageDecodeError, load_image, probe_jpeg
from taskresize.data.transforms import PreResize, flip_coin, random_crop
from taskresize.resizers.classic import resize
from taskresize.sizes import Size

# The pre-resizes the device runs with torch's kernels (no per-size filter tables built in Python per random crop)
DEVICE_PRE_RESIZE = ("bilinear", "bicubic", "nearest")

# EXIF orientation -> what Pillow's ImageOps.exif_transpose makes of a (C, H, W) image
_ORIENT = {
    2: lambda t: t.flip(-1),  # mirrored left-right
    3: lambda t: t.flip(-2, -1),  # rotated 180 degrees
    4: lambda t: t.flip(-2),  # mirrored top-bottom
    5: lambda t: t.transpose(-2, -1),  # transposed
    6: lambda t: t.transpose(-2, -1).flip(-1),  # rotated 90 degrees clockwise
    7: lambda t: t.transpose(-2, -1).flip(-2, -1),  # transversed
    8: lambda t: t.transpose(-2, -1).flip(-2),  # rotated 90 degrees counter-clockwise
}


@dataclass
class EncodedImage:
    """A JPEG file's bytes and what to make of them: the image after its EXIF ``orientation``, cut to ``crop``
    (``top, left, height, width``; None: the whole image), resized to ``size`` (``method``, ``antialias``) and
    flipped left-right if ``flip``; ``max_pixels``: the pixel limit it was checked against."""

    path: str
    data: Tensor  # uint8 (N,): the file
    orientation: int
    crop: tuple[int, int, int, int] | None
    flip: bool
    size: Size
    method: str
    antialias: bool
    max_pixels: int


@dataclass
class DeferredPreResize(PreResize):
    """``path -> EncodedImage`` for a colour or greyscale JPEG (its bytes, the crop and flip drawn now), else
    ``path -> uint8 (3, h, w)`` as :class:`PreResize`. No distortion: those act on decoded pixels."""

    def __post_init__(self) -> None:
        if self.distortion is not None and self.distortion.name != "none":
            raise ValueError(f"distortion {self.distortion.name!r}: JPEGs decoded on the device take no distortion")
        if self.method not in DEVICE_PRE_RESIZE:
            raise ValueError(f"pre-resize {self.method!r} on the device: one of {', '.join(DEVICE_PRE_RESIZE)}")

    def __call__(self, path: str | os.PathLike) -> EncodedImage | Tensor:  # type: ignore[override]
        header = probe_jpeg(path, self.max_pixels)
        if header is None:
            return super().__call__(path)
        height, width, orientation = header
        try:
            data = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
        except OSError as error:
            raise ImageDecodeError(f"{path}: cannot be read ({error})", reason="missing") from None
        if b"\xff\xd9" not in data[-JPEG_TAIL:].numpy().tobytes():  # no end marker: truncated? decoded here, as before
            return super().__call__(path)
        crop = None
        if self.augment:  # PreResize's draws, on an image of this size (no pixels needed)
            box = random_crop([torch.empty(1, 1, 1).expand(3, height, width)], self.scale, self.ratio)
            crop = (box["top"], box["left"], box["height"], box["width"])
        flip = self.augment and flip_coin()
        settings = (tuple(self.size), self.method, self.antialias, self.max_pixels)
        return EncodedImage(str(path), data, orientation, crop, flip, *settings)


class EncodedBatch:
    """A batch of :class:`EncodedImage` and of images the workers decoded (uint8 ``(3, h, w)`` at the batch's size),
    in batch order. ``.to(device)`` decodes it there (:func:`decode_batch`)."""

    def __init__(self, items: Sequence[EncodedImage | Tensor]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Tensor:
        """The batch decoded on ``device``: a channels-last uint8 ``(B, 3, h, w)`` tensor there."""
        return decode_batch(self.items, torch.device(device), non_blocking)

    def pin_memory(self) -> EncodedBatch:
        """The images the workers decoded in pinned memory, for asynchronous copies (the DataLoader calls this)."""
        return EncodedBatch([item if isinstance(item, EncodedImage) else item.pin_memory() for item in self.items])


def decode_batch(items: Sequence[EncodedImage | Tensor], device: torch.device, non_blocking: bool = False) -> Tensor:
    """Decode the JPEGs of ``items`` on ``device`` in one call, orient, crop, resize and flip each there, and stack
    them with the other (already decoded) items: a channels-last uint8 ``(B, 3, h, w)`` tensor on ``device``."""
    encoded = [item for item in items if isinstance(item, EncodedImage)]
    decoded = iter(decode_jpegs(encoded, device))
    images = [
        _finish(item, next(decoded)) if isinstance(item, EncodedImage) else item.to(device, non_blocking=non_blocking)
        for item in items
    ]
    return torch.stack(images).contiguous(memory_format=torch.channels_last)


def decode_jpegs(encoded: Sequence[EncodedImage], device: torch.device) -> list[Tensor]:
    """The images of ``encoded``, uint8 RGB ``(3, H, W)`` on ``device`` after their EXIF orientation.

    One ``decode_jpeg`` call for all of them: nvJPEG on a CUDA device, torchvision's CPU decoder elsewhere (then
    copied to ``device``). A file it cannot decode fails the whole call; the files are then decoded one by one, and
    one that still fails is decoded by Pillow, which raises :class:`ImageDecodeError` naming a damaged file (a
    truncated one never gets here: the workers decode it, and skip it as they skip any file that fails).
    """
    if not encoded:
        return []
    decoder = device if device.type == "cuda" else torch.device("cpu")
    try:
        images = [_orient(image, e.orientation) for image, e in zip(_decode(encoded, decoder), encoded, strict=True)]
    except RuntimeError:
        images = [_decode_alone(e, decoder) for e in encoded]
    return [image.to(device) for image in images]


def _decode(encoded: Sequence[EncodedImage], decoder: torch.device) -> list[Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image decoders in favour of TorchCodec
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
        return decode_jpeg([e.data for e in encoded], mode=ImageReadMode.RGB, device=decoder)


def _decode_alone(encoded: EncodedImage, decoder: torch.device) -> Tensor:
    try:
        return _orient(_decode([encoded], decoder)[0], encoded.orientation)
    except RuntimeError:  # a file the decoder does not take: Pillow decodes it or names what is wrong with it
        return load_image(encoded.path, max_pixels=encoded.max_pixels)


def _orient(image: Tensor, orientation: int) -> Tensor:
    return _ORIENT[orientation](image) if orientation in _ORIENT else image


def _finish(item: EncodedImage, image: Tensor) -> Tensor:
    """Crop, resize (in float32, rounded once) and flip a decoded, oriented uint8 ``(3, H, W)`` image."""
    if item.crop is not None:
        top, left, height, width = item.crop
        image = image[:, top : top + height, left : left + width]
    if tuple(image.shape[-2:]) != tuple(item.size):
        image = resize(image.float(), item.size, item.method, item.antialias).round_().clamp_(0, 255).to(torch.uint8)
    return image.flip(-1) if item.flip else image
