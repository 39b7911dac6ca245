"""Decoding image files into uint8 RGB tensors, whatever their mode, orientation or size."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from taskresize.errors import TaskresizeError

if TYPE_CHECKING:  # imported where tensors are made: the configuration and `--help` need this module, not torch
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_MAX_PIXELS = 100_000_000  # about 10,000 x 10,000: above this a file is treated as a decompression bomb
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white

T = TypeVar("T")

# Never decode a truncated file into half an image silently: Pillow raises, and we report the file.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_PILLOW_LIMIT = threading.Lock()
JPEG_TAIL = 4096  # bytes at a JPEG's end searched for its end-of-image marker


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """``Image.open(path)`` with ``max_pixels`` as the only pixel limit, then that limit checked.

    Pillow has a limit of its own (``Image.MAX_IMAGE_PIXELS``: a warning above 89 Mpx, an error above 179 Mpx),
    which would refuse images that ``max_pixels`` (``--max-pixels``) accepts. It applies only while a file is
    opened, so it is lifted for that moment (under a lock: it is a global) and ``max_pixels`` is enforced here,
    in whichever process decodes (data-loader workers included), before any pixel is decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _PILLOW_LIMIT:
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        with image:
            width, height = image.size
            _check_pixels(path, width, height, max_pixels)
            yield image


class ImageDecodeError(TaskresizeError):
    """An image file that cannot be used; the message names the file and the reason.

    ``reason`` is one of ``missing``, ``empty``, ``not an image``, ``corrupt``, ``too large``.
    """

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparency (RGBA, LA, PA, P with a transparent index) is composited on white; 16- and 32-bit integer
    images are scaled to 8 bits (Pillow's own conversion clips them instead); float images are clipped to
    [0, 255]; CMYK, YCbCr, LAB, HSV, 1 and L go through Pillow's conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(data * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(
    path: str | os.PathLike, draft_size: tuple[int, int] | None, max_pixels: int, convert: Callable[[Image.Image], T]
) -> T:
    """Open, check, decode, orient and convert to RGB; ``convert`` turns the result into what the caller keeps
    before the file is closed."""
    path = Path(path)
    try:
        with _opened(path, max_pixels) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", (draft_size[1], draft_size[0]))
            image.load()
            return convert(to_rgb(ImageOps.exif_transpose(image)))
    except ImageDecodeError:
        raise
    except Exception as error:  # every decoder failure on a bad file becomes one error type
        raise _decode_error(path, error) from None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
            "(a possible decompression bomb); raise --max-pixels to accept it",
            reason="too large",
        )


def _decode_error(path: Path, error: Exception) -> ImageDecodeError:
    """Translate whatever Pillow raised for ``path`` into an :class:`ImageDecodeError` with a reason."""
    if isinstance(error, FileNotFoundError):
        return ImageDecodeError(f"{path}: no such file", reason="missing")
    if isinstance(error, IsADirectoryError):
        return ImageDecodeError(f"{path}: a folder, not an image file", reason="not an image")
    if isinstance(error, Image.DecompressionBombError):
        return ImageDecodeError(f"{path}: refused as a decompression bomb ({error})", reason="too large")
    if isinstance(error, UnidentifiedImageError):
        if path.exists() and path.stat().st_size == 0:
            return ImageDecodeError(f"{path}: empty file", reason="empty")
        return ImageDecodeError(f"{path}: not an image Pillow can read", reason="not an image")
    if isinstance(error, (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError)):
        return ImageDecodeError(f"{path}: corrupt or truncated image ({error})", reason="corrupt")
    return ImageDecodeError(f"{path}: cannot be decoded ({type(error).__name__}: {error})", reason="corrupt")


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, verify: bool = False) -> tuple[int, int]:
    """``(height, width)`` from the file's header, without decoding the pixels (after EXIF orientation).

    Args:
        path: the file.
        max_pixels: files with more pixels are refused.
        verify: also prove that the file is complete, as cheaply as the format allows (:func:`_verify`):
            a PNG's chunks and checksums are read (no decompression), a JPEG must end with its end-of-image
            marker (else it is decoded at 1/8 scale to decide), other formats are decoded.

    Raises:
        ImageDecodeError: the file is missing, empty, not an image, over ``max_pixels`` or (``verify``)
            truncated or corrupt.
    """
    path = Path(path)
    try:
        with _opened(path, max_pixels) as image:
            width, height = image.size
            # PNG keeps EXIF after the pixels, where reading it would decode them: the size is only a hint
            orientation = 1 if image.format == "PNG" else image.getexif().get(0x0112, 1)
            if verify:
                _verify(path, image)
    except ImageDecodeError:
        raise
    except Exception as error:  # as above
        raise _decode_error(path, error) from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


EXIF_ORIENTATIONS = range(1, 9)  # the EXIF orientation tag's values; 1: as stored


def probe_jpeg(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, int] | None:
    """``(height, width, orientation)`` of a colour (YCbCr or RGB) or greyscale JPEG, from its header: the size
    after its EXIF orientation, and the orientation (1 to 8, what :func:`load_image` applies). None for any other
    file: other formats, CMYK JPEGs.

    Raises:
        ImageDecodeError: the file is missing, empty, not an image or over ``max_pixels``.
    """
    path = Path(path)
    try:
        with _opened(path, max_pixels) as image:
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return None
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except ImageDecodeError:
        raise
    except Exception as error:  # as above
        raise _decode_error(path, error) from None
    orientation = orientation if orientation in EXIF_ORIENTATIONS else 1  # others: left as stored, as Pillow does
    return (width, height, orientation) if orientation in (5, 6, 7, 8) else (height, width, orientation)


def _verify(path: Path, image: Image.Image) -> None:
    """Raise if ``image`` (just opened from ``path``) is truncated or corrupt; ``image`` is unusable afterwards.

    A PNG's chunks are read and their checksums checked without decoding the pixels; a JPEG with its end marker
    costs one small read (docs/results.md, Robustness, has the measured costs).
    """
    if image.format == "PNG":
        image.verify()  # every chunk read and its CRC checked, up to IEND: a truncated file raises
        return
    if image.format == "JPEG":
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - JPEG_TAIL))
            if b"\xff\xd9" in file.read():
                return  # the end-of-image marker is there: not truncated
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))  # no marker: decode to decide
    image.load()


def open_image(
    path: str | os.PathLike, *, draft_size: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode an image file to an RGB Pillow image: EXIF orientation applied, any mode converted (:func:`to_rgb`).

    Args:
        path: the file.
        draft_size: ``(h, w)`` the caller needs at least; JPEGs much larger than this decode at a reduced scale
            (Pillow's ``draft``: 1/2, 1/4 or 1/8, never below the size asked for).
        max_pixels: files with more pixels than this are refused as decompression bombs before decoding.

    Raises:
        ImageDecodeError: the file is missing, empty, not an image, truncated, corrupt or too large.
    """
    return _decode(path, draft_size, max_pixels, Image.Image.copy)


def load_image(
    path: str | os.PathLike, *, draft_size: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> torch.Tensor:
    """Decode an image file to a uint8 RGB tensor ``(3, H, W)`` with channels-last memory (see :func:`open_image`)."""
    return _decode(path, draft_size, max_pixels, pil_to_tensor)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """Pillow image -> uint8 RGB ``(3, H, W)`` tensor with channels-last memory."""
    import torch

    return torch.from_numpy(np.array(to_rgb(image))).permute(2, 0, 1)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """uint8 ``(3, H, W)`` tensor -> RGB Pillow image."""
    import torch

    if tensor.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {tensor.dtype}")
    return Image.fromarray(tensor.permute(1, 2, 0).contiguous().cpu().numpy())
