"""Using a resizer on images: uint8 pixels in, uint8 pixels out, for one image or a batch.

A learned resizer was trained on images that the data loader had first brought to its input size with a classic
resizer (the *pre-resize*, Pillow's bilinear with antialias unless the run chose another). Used on images, it
does the same by default: decode (EXIF orientation applied, any Pillow mode to RGB), pre-resize to the resizer's
input size, normalise, resize, denormalise, round and clip to uint8 (:class:`~taskresize.inference.pixels.
PixelResizer`). A classic method (``bicubic``, ``lanczos``, ...) resizes the uint8 image directly with
:func:`taskresize.resize`, Pillow's algorithm, without a float detour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, ImageOps
from torch import Tensor

from taskresize.data.decode import pil_to_tensor, tensor_to_pil
from taskresize.data.normalization import IMAGENET, Normalization
from taskresize.hardware import resolve_device
from taskresize.hub import is_hub_name
from taskresize.inference.engine import ENGINES, Engine
from taskresize.inference.pixels import PixelResizer
from taskresize.io import Provenance, load_resizer, read_resizer_header, resolve_resizer_path
from taskresize.resizers import METHODS, Resizer, create_resizer, list_resizers, resize
from taskresize.resizers.registry import UnknownResizerError
from taskresize.runs import RunFolder
from taskresize.sizes import Size, format_size, to_size

DEFAULT_PRE_RESIZE = ("bilinear", True)  # TrainConfig's pre_resize and pre_resize_antialias defaults

Auto = Literal["auto"]


def fit_size(image_size: Sequence[int], box: Sequence[int]) -> Size:
    """The largest size with the image's aspect ratio that fits inside ``box`` ``(h, w)``: ``--keep-aspect``.

    The side that limits is exactly the box's; the other is the image's side scaled by the same factor and rounded
    to the nearest integer (at least 1). This is Pillow's ``ImageOps.contain``; small images are enlarged.

    Args:
        image_size: the image's ``(H, W)``.
        box: the ``(h, w)`` to fit into.
    """
    (height, width), (box_h, box_w) = image_size, box
    if width * box_h > box_w * height:  # relatively wider than the box: the width limits
        return max(1, round(height / width * box_w)), box_w
    if width * box_h < box_w * height:
        return box_h, max(1, round(width / height * box_h))
    return box_h, box_w


@dataclass
class ImageResizer:
    """A resizer ready for images: an optional classic pre-resize to ``in_size``, as in training, then ``pixels``.

    Build one with :func:`load_image_resizer`. Calling it on a uint8 batch resizes it (see :meth:`__call__`).

    Attributes:
        pixels: the resizer on pixel values.
        in_size: the pre-resize target, the resizer's input size in training (``None``: no pre-resize).
        pre_resize: the classic ``(method, antialias)`` of the pre-resize.
        header: the resizer file's header (``name``, ``config``, ``provenance``, ...) when loaded from a file.
        source: what it was loaded from, for messages.
    """

    pixels: PixelResizer
    in_size: Size | None = None
    pre_resize: tuple[str, bool] = DEFAULT_PRE_RESIZE
    header: dict[str, Any] | None = None
    source: str = ""
    engine: Engine | None = None  # what runs the learned resizer (default eager PyTorch)

    @property
    def device(self) -> torch.device:
        """Where the learned resizer runs (decoding and the uint8 pre-resize stay on the CPU, where they match
        Pillow)."""
        return self.pixels.mean.device

    @property
    def classic(self) -> bool:
        return self.pixels.classic

    @property
    def output_size(self) -> Size:
        return self.pixels.output_size

    def sizes(self, image_size: Sequence[int], size: Size | None, keep_aspect: bool) -> tuple[Size | None, Size]:
        """``(pre-resize size or None, output size)`` for an image of ``image_size`` ``(H, W)``.

        With ``keep_aspect`` both are :func:`fit_size` of the image into ``in_size`` and into ``size``.
        """
        out = tuple(size or self.output_size)
        pre = None if self.classic else self.in_size
        if keep_aspect:
            out = fit_size(image_size, out)
            pre = fit_size(image_size, pre) if pre is not None else None
        return pre, out

    def prepare(self, image: Tensor, size: Size | None, keep_aspect: bool) -> tuple[Tensor, Size]:
        """The first, per-image step: uint8 ``(3, H, W)`` -> ``(tensor, out)``.

        A learned resizer's input is the pre-resized image (or the image); a classic method's result is final.
        """
        pre, out = self.sizes(image.shape[-2:], size, keep_aspect)
        if self.classic:
            return self.pixels.resize_uint8(image, out), out
        if pre is not None:
            image = resize(image, pre, *self.pre_resize)
        return image, out

    def finish(self, batch: Tensor, out: Size) -> Tensor:
        """The second step, on a batch of prepared images of one size: uint8 ``(B, 3, h', w')`` -> ``(B, 3, h, w)``."""
        if self.classic:
            return batch
        if self.device.type == "cuda" and batch.device.type == "cpu":  # page-locked: the copy runs asynchronously
            batch = batch.pin_memory()
        out = self.pixels.resize_uint8(batch.to(self.device, non_blocking=True), out, run=self.engine)
        return out.to(batch.device)

    def __call__(self, images: Tensor, size: Size | None = None, keep_aspect: bool = False) -> Tensor:
        """Resize RGB images ``(B, 3, H, W)`` or ``(3, H, W)`` to ``size`` (default the resizer's output size;
        with ``keep_aspect`` the largest size inside it with the images' aspect ratio).

        uint8 images give uint8 images. Float images are pixel values in [0, 255] and give float pixel values
        clipped to [0, 255], computed in float32 throughout (pre-resize included), not rounded.
        """
        if (
            not (images.dtype == torch.uint8 or images.is_floating_point())
            or images.dim() not in (3, 4)
            or (images.shape[-3] != 3)
        ):
            raise TypeError(f"expected RGB images (B, 3, H, W) or (3, H, W), got {images.dtype} {tuple(images.shape)}")
        batched = images.dim() == 4
        batch = images if batched else images.unsqueeze(0)
        if batch.is_floating_point():
            pre, out_size = self.sizes(batch.shape[-2:], size, keep_aspect)
            pixels = batch.to(self.pixels.mean.dtype)  # computed in the resizer's dtype, returned in the input's
            if pre is not None:
                pixels = resize(pixels, pre, *self.pre_resize)
            with torch.no_grad():
                out = self.pixels(pixels.to(self.device), out_size).to(batch.device, batch.dtype)
        else:
            prepared = [self.prepare(image, size, keep_aspect) for image in batch]
            out = self.finish(torch.stack([p for p, _ in prepared]), prepared[0][1])
        return out if batched else out[0]

    def describe(self, size: Size | None = None, keep_aspect: bool = False) -> str:
        """One line: what happens to an image, e.g. ``pre-resize to 96 (bilinear, antialiased) as in training,
        then learned resizer 'learnable' from runs/x to 32``."""
        into = "to fit inside " if keep_aspect else "to "
        out = format_size(tuple(size or self.output_size))
        name = self.pixels.resizer.resizer_name
        if self.classic:
            return f"{name} (Pillow's antialiased algorithm on uint8) {into}{out}"
        steps = f"learned resizer {name!r}" + (f" from {self.source}" if self.source else "")
        if self.engine is not None:
            steps += f" (run by {self.engine.kind})"
        if self.in_size is not None:
            method, antialias = self.pre_resize
            how = f"{method}, antialiased" if antialias else method
            steps = f"pre-resize {into}{format_size(self.in_size)} ({how}) as in training, then {steps}"
        return f"{steps} {into}{out}"


def _pre_resize_of(path: Path, provenance: Provenance) -> tuple[str, bool]:
    """The run's pre-resize: from the provenance if recorded, else its run folder's config.yaml, else the default."""
    if provenance.pre_resize is not None:
        return provenance.pre_resize, provenance.pre_resize_antialias
    run = RunFolder.of_resizer_file(path)
    saved = run.config() if run is not None else {}
    if saved.get("pre_resize") in METHODS:
        return saved["pre_resize"], bool(saved.get("pre_resize_antialias", True))
    return DEFAULT_PRE_RESIZE


def load_image_resizer(
    resizer: str | os.PathLike | Resizer | ImageResizer,
    *,
    in_size: Size | int | Auto | None = "auto",
    normalization: Normalization | Mapping[str, Sequence[float]] | None = None,
    fuse: bool = True,
    engine: str = "torch",
    device: str | torch.device = "cpu",
) -> ImageResizer:
    """An :class:`ImageResizer` from a resizer file, a run folder, a classic method name or a resizer module.

    Args:
        resizer: a ``.safetensors`` file written by :func:`taskresize.save_resizer`, a run folder holding
            ``resizer.safetensors``, a hub name (``hf-hub:ORG/NAME``, through huggingface_hub's cache), a classic
            method (``bicubic``, ``lanczos``, ...: Pillow's antialiased algorithm on uint8), or a :class:`Resizer`
            module (learned modules use ``normalization``).
        in_size: pre-resize target. ``"auto"``: the ``in_size`` recorded in the file's provenance (none for a
            module or a classic method); ``None``: no pre-resize, the image goes to the resizer as it is.
        normalization: a :class:`Normalization` or ``{"mean": [...], "std": [...]}`` in 0-255 units; default the
            file's, else ImageNet's.
        fuse: fold BatchNorm into the convolutions (faster, equal up to float rounding).
        engine: what runs a learned resizer on batches of files: ``torch``, ``compile`` or ``onnxruntime``
            (see :class:`Engine`).
        device: where a learned resizer runs: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto``
            (:func:`taskresize.hardware.resolve_device`). Images come and go on their own device.

    Raises:
        ResizerFileError: the path is not a resizer file or run folder.
        UnknownResizerError: ``resizer`` is neither a path that exists nor a classic method name (a ``ValueError``;
            the message suggests close matches).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if isinstance(resizer, ImageResizer):
        return resizer
    header: dict[str, Any] | None = None
    source = ""
    if isinstance(resizer, Resizer):
        module = resizer
    elif isinstance(resizer, str) and resizer in METHODS and not Path(resizer).exists():
        module = create_resizer(resizer, antialias=True)
    elif isinstance(resizer, str | os.PathLike):
        if not Path(resizer).exists() and not is_hub_name(resizer):
            name = str(resizer)
            if name in list_resizers():  # a learned resizer's name: there are no weights to use
                raise UnknownResizerError(
                    name, METHODS, "Classic methods",
                    prefix=f"{name!r} is a learned resizer without weights: give a trained one (a .safetensors file "
                    "or a run folder from `taskresize train`) or a classic method",
                )  # fmt: skip
            raise UnknownResizerError(
                name, METHODS, "Classic methods",
                prefix=f"resizer {name!r} is neither a resizer file, a run folder nor a classic method",
            )  # fmt: skip
        path = resolve_resizer_path(resizer)
        header = read_resizer_header(path)
        module = load_resizer(path)
        source = str(resizer)
    else:
        raise TypeError(f"resizer must be a path, a method name or a Resizer, got {type(resizer).__name__}")
    provenance = Provenance.from_dict((header or {}).get("provenance"))
    if normalization is None:
        normalization = provenance.normalization or IMAGENET
    elif not isinstance(normalization, Normalization):
        normalization = Normalization.from_dict(normalization)
    pre_resize = _pre_resize_of(path, provenance) if header is not None else DEFAULT_PRE_RESIZE
    if in_size == "auto":
        in_size = provenance.in_size if header is not None else None
    pixels = PixelResizer(module, normalization, fuse=fuse).to(resolve_device(device))
    in_size = to_size(in_size, what="in_size") if in_size is not None and not pixels.classic else None
    runner = None if pixels.classic or engine == "torch" else Engine(pixels, engine)
    return ImageResizer(pixels, in_size, pre_resize, header, source, runner)


def resize_image(
    image: Image.Image | Tensor,
    resizer: str | os.PathLike | Resizer | ImageResizer,
    size: int | Sequence[int] | None = None,
    *,
    keep_aspect: bool = False,
    in_size: Size | int | Auto | None = "auto",
    normalization: Normalization | Mapping[str, Sequence[float]] | None = None,
) -> Image.Image | Tensor:
    """Resize one image (or a batch) with a learned or classic resizer; returns the same kind it was given.

    - a Pillow image (any mode; EXIF orientation applied, transparency composited on white) -> an RGB Pillow image;
    - a uint8 tensor ``(3, H, W)`` or ``(B, 3, H, W)`` -> a uint8 tensor of the same rank;
    - a float tensor in [0, 1] (torchvision's convention) -> a float tensor in [0, 1], computed in float32
      throughout and not rounded. The uint8 path rounds after the pre-resize too, so the two can differ by more
      than the final rounding where a learned resizer amplifies that first rounding.

    Args:
        image: the image(s).
        resizer: a resizer file, a run folder, a classic method name, a :class:`Resizer` module or an
            :class:`ImageResizer` (:func:`load_image_resizer`; load once when resizing many images).
        size: output ``(h, w)`` or one int; default the resizer's output size.
        keep_aspect: resize to the largest size inside ``size`` with the image's aspect ratio (:func:`fit_size`).
        in_size: the pre-resize, see :func:`load_image_resizer` (with a file: its training input size).
        normalization: see :func:`load_image_resizer`.
    """
    target = load_image_resizer(resizer, in_size=in_size, normalization=normalization)
    if size is None and isinstance(resizer, str) and target.classic:
        raise ValueError(f"resize_image with the classic method {resizer!r} needs a size, e.g. size=224")
    size = to_size(size) if size is not None else None
    if isinstance(image, Image.Image):
        pixels = pil_to_tensor(ImageOps.exif_transpose(image))
        return tensor_to_pil(target(pixels, size, keep_aspect))
    if not isinstance(image, Tensor):
        raise TypeError(f"resize_image takes a PIL image or a tensor, got {type(image).__name__}")
    if image.is_floating_point():
        return target(image * 255, size, keep_aspect) / 255
    return target(image, size, keep_aspect)
