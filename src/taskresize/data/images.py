"""Decoding image files into uint8 RGB tensors, whatever their mode, orientation or size."""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_MAX_PIXELS = 100_000_000  # about 10,000 x 10,000: above this a file is treated as a decompression bomb
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white

T = TypeVar("T")

# Never decode a truncated file into half an image silently: Pillow raises, and we report the file.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageDecodeError(ValueError):
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is enforced here
            with Image.open(path) as image:
                width, height = image.size
                _check_pixels(path, width, height, max_pixels)
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


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(height, width)`` from the file's header, without decoding the pixels (after EXIF orientation).

    Raises:
        ImageDecodeError: the file is missing, empty, not an image, or over ``max_pixels``.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                _check_pixels(path, width, height, max_pixels)
                # PNG keeps EXIF after the pixels, where reading it would decode them: the size is only a hint
                orientation = 1 if image.format == "PNG" else image.getexif().get(0x0112, 1)
    except ImageDecodeError:
        raise
    except Exception as error:  # as above
        raise _decode_error(path, error) from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


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
    return torch.from_numpy(np.array(to_rgb(image))).permute(2, 0, 1)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """uint8 ``(3, H, W)`` tensor -> RGB Pillow image."""
    if tensor.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {tensor.dtype}")
    return Image.fromarray(tensor.permute(1, 2, 0).contiguous().cpu().numpy())
