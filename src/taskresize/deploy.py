"""Using a resizer on images: uint8 pixels in, uint8 pixels out, for one image or folders of files.

A learned resizer works on normalised images, ``(pixels - mean) / std`` with the mean and standard deviation in
0-255 units that its file records (``provenance["normalization"]``; ImageNet's when the file has none, as every
task of this package trains with them). It was trained on images that the data loader had first brought to its
input size with a classic resizer (the *pre-resize*, Pillow's bilinear with antialias unless the run chose
another). Used on images, it does the same by default: decode (EXIF orientation applied, any Pillow mode to RGB),
pre-resize to the resizer's input size, normalise, resize, denormalise, round and clip to uint8. A classic method
(``bicubic``, ``lanczos``, ...) resizes the uint8 image directly with :func:`taskresize.resize`, Pillow's
algorithm, without a float detour.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from PIL import Image, ImageOps
from torch import Tensor, nn

from .data.images import DEFAULT_MAX_PIXELS, ImageDecodeError, is_image_file, load_image, pil_to_tensor, tensor_to_pil
from .io import RESIZER_FILENAME, load_resizer, read_resizer_header, resolve_resizer_path
from .resizers import METHODS, ClassicResizer, Resizer, create_resizer, list_resizers, resize
from .resizers.registry import UnknownResizerError
from .sizes import Size, format_size, to_size

# ImageNet's mean and standard deviation in 0-255 units: what tasks/base.py normalises with.
IMAGENET_MEAN_255 = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD_255 = (0.229 * 255, 0.224 * 255, 0.225 * 255)
DEFAULT_PRE_RESIZE = ("bilinear", True)  # TrainConfig's pre_resize and pre_resize_antialias defaults

FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
DEFAULT_QUALITY = 95

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


def normalization_of(provenance: Mapping[str, Any] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` in 0-255 units from a resizer file's provenance, ImageNet's when it records none."""
    saved = (provenance or {}).get("normalization")
    if not saved:
        return IMAGENET_MEAN_255, IMAGENET_STD_255
    return tuple(float(v) for v in saved["mean"]), tuple(float(v) for v in saved["std"])


class PixelResizer(nn.Module):
    """A resizer on pixel values: float pixels in [0, 255] ``(B, 3, H, W)`` -> float pixels ``(B, 3, h, w)``
    clipped to [0, 255]; normalisation inside. This is the module that ``taskresize export`` exports.

    Args:
        resizer: a learned resizer (it sees ``(pixels - mean) / std``) or a :class:`ClassicResizer` (it sees the
            pixels themselves).
        mean: per-channel mean, 0-255 units (default ImageNet's).
        std: per-channel standard deviation, 0-255 units (default ImageNet's).
        fuse: fold the learned resizer's BatchNorms into its convolutions (:meth:`Resizer.fuse`).
    """

    def __init__(
        self,
        resizer: Resizer,
        mean: Sequence[float] = IMAGENET_MEAN_255,
        std: Sequence[float] = IMAGENET_STD_255,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        self.classic = isinstance(resizer, ClassicResizer)
        # a copy in eval mode either way: the caller's module keeps its mode and gradients
        self.resizer = resizer.fuse() if fuse and not self.classic else copy.deepcopy(resizer).eval()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

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


ENGINES = ("torch", "compile", "onnxruntime")


class Engine:
    """What runs a :class:`PixelResizer` on float pixels: eager PyTorch, ``torch.compile`` or ONNX Runtime.

    ``compile`` compiles once per input and output shape (seconds to tens of seconds); ``onnxruntime`` exports the
    resizer per input and output shape with :func:`taskresize.export.export_resizer`, which checks the file
    against eager PyTorch before it is used. Both pay off on folders of many images of one size; the results equal
    eager PyTorch's up to float rounding (at most one grey level after rounding to uint8).
    """

    def __init__(self, pixels: PixelResizer, kind: str = "torch") -> None:
        if kind not in ENGINES:
            raise ValueError(f"engine {kind!r} is not one of {', '.join(ENGINES)}")
        self.pixels, self.kind = pixels, kind
        self._compiled = torch.compile(pixels) if kind == "compile" else None
        self._sessions: dict[tuple[Size, Size], Callable[[Tensor], Tensor]] = {}

    def __call__(self, pixels: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        if self.kind == "torch":
            return self.pixels(pixels, size)
        out = tuple(to_size(size)) if size is not None else tuple(self.pixels.output_size)
        if self._compiled is not None:
            return self._compiled(pixels, out)
        key = (tuple(pixels.shape[-2:]), out)
        if key not in self._sessions:
            self._sessions[key] = self._onnx_session(*key)
        return self._sessions[key](pixels.contiguous())

    def _onnx_session(self, in_size: Size, out: Size) -> Callable[[Tensor], Tensor]:
        import tempfile

        from .export import _run_onnx, export_resizer

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resizer.onnx"
            export_resizer(self.pixels, path, "onnx", in_size, out)
            return _run_onnx(path)  # the session holds the model; the file can go


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
        return batch if self.classic else self.pixels.resize_uint8(batch, out, run=self.engine)

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
                out = self.pixels(pixels, out_size).to(batch.dtype)
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


def _pre_resize_of(path: Path, provenance: Mapping[str, Any]) -> tuple[str, bool]:
    """The run's pre-resize: from the provenance if recorded, else the run folder's config.yaml, else the default."""
    if "pre_resize" in provenance:
        return str(provenance["pre_resize"]), bool(provenance.get("pre_resize_antialias", True))
    config = path.parent / "config.yaml"
    if path.name == RESIZER_FILENAME and config.is_file():
        try:
            saved = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError):
            saved = {}
        if isinstance(saved, dict) and saved.get("pre_resize") in METHODS:
            return saved["pre_resize"], bool(saved.get("pre_resize_antialias", True))
    return DEFAULT_PRE_RESIZE


def load_image_resizer(
    resizer: str | os.PathLike | Resizer | ImageResizer,
    *,
    in_size: Size | int | Auto | None = "auto",
    normalization: Mapping[str, Sequence[float]] | None = None,
    fuse: bool = True,
    engine: str = "torch",
) -> ImageResizer:
    """An :class:`ImageResizer` from a resizer file, a run folder, a classic method name or a resizer module.

    Args:
        resizer: a ``.safetensors`` file written by :func:`taskresize.save_resizer`, a run folder holding
            ``resizer.safetensors``, a classic method (``bicubic``, ``lanczos``, ...: Pillow's antialiased
            algorithm on uint8), or a :class:`Resizer` module (learned modules use ``normalization``).
        in_size: pre-resize target. ``"auto"``: the ``in_size`` recorded in the file's provenance (none for a
            module or a classic method); ``None``: no pre-resize, the image goes to the resizer as it is.
        normalization: ``{"mean": [...], "std": [...]}`` in 0-255 units; default the file's, else ImageNet's.
        fuse: fold BatchNorm into the convolutions (faster, equal up to float rounding).
        engine: what runs a learned resizer on batches of files: ``torch``, ``compile`` or ``onnxruntime``
            (see :class:`Engine`).

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
        if not Path(resizer).exists():
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
    provenance = (header or {}).get("provenance") or {}
    if normalization is not None:
        mean, std = normalization["mean"], normalization["std"]
    else:
        mean, std = normalization_of(provenance)
    pre_resize = _pre_resize_of(path, provenance) if header is not None else DEFAULT_PRE_RESIZE
    if in_size == "auto":
        in_size = provenance.get("in_size") if header is not None else None
    pixels = PixelResizer(module, mean, std, fuse=fuse)
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
    normalization: Mapping[str, Sequence[float]] | None = None,
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


# ---- folders of files -------------------------------------------------------------------------------------------


class OutputConflictError(ValueError):
    """Outputs that would overwrite an input or each other, or go inside an input folder; nothing has been written."""


class OutputFolderError(ValueError):
    """An output folder that cannot be created or written to; nothing has been decoded or written."""


def check_output_folder(out_dir: str | os.PathLike) -> list[Path]:
    """Create ``out_dir`` if needed and prove that a file can be written in it, before any image is decoded.

    Returns:
        The folders it created, deepest first (for :func:`remove_empty_folders` when nothing gets written).

    Raises:
        OutputFolderError: it is a file, or it cannot be created or written to; the message says why.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"--out {out_dir} is a file, not a folder: give a folder (it is created if needed)")
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        remove_empty_folders(created)
        raise OutputFolderError(f"--out {out_dir} cannot be created ({error.strerror or error})") from None
    probe = out_dir / f".taskresize-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as error:
        remove_empty_folders(created)
        raise OutputFolderError(f"--out {out_dir} is not writable ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return created


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove each folder, deepest first, if it is (still) empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


@dataclass(frozen=True)
class Job:
    """One image file and the file its resized version goes to."""

    source: Path
    target: Path


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def plan_jobs(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, fmt: str) -> tuple[list[Job], int]:
    """The files to resize and where each goes; folders are searched recursively.

    A file given by name goes to ``out_dir/<name>``; the images inside a folder go to the same relative paths
    under ``out_dir``; the extension becomes the format's. Inside folders only files with an image extension are
    taken (the others are counted and left alone); a file given by name is always tried.

    Returns:
        ``(jobs, ignored)``: the jobs in a stable order, and the number of non-image files found in folders.

    Raises:
        FileNotFoundError: an input does not exist.
        OutputConflictError: ``out_dir`` is an input folder or inside one (its outputs would join the inputs, and
            a second run would read them), an output would overwrite an input (the same path, or a hard link to
            it), or two inputs would go to the same output.
    """
    extension = FORMATS[fmt][1]
    inputs = list(inputs)  # read twice below
    out_dir = Path(out_dir)
    out_real = Path(os.path.realpath(out_dir))
    for given in inputs:
        if Path(given).is_dir() and out_real.is_relative_to(os.path.realpath(given)):
            where = "is the input folder" if out_real == Path(os.path.realpath(given)) else "is inside the input folder"
            raise OutputConflictError(
                f"--out {out_dir} {where} {given}: nothing was written; choose an --out folder outside every input"
            )
    jobs: list[Job] = []
    seen: set[str] = set()
    ignored = 0
    for given in inputs:
        root = Path(given)
        if root.is_dir():
            found = []
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if is_image_file(path):
                    found.append((path, path.relative_to(root)))
                else:
                    ignored += 1
        elif root.is_file():
            found = [(root, Path(root.name))]
        else:
            raise FileNotFoundError(f"input {root} does not exist")
        for path, relative in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                jobs.append(Job(path, out_dir / relative.with_suffix(extension)))

    inodes = {_inode(job.source): job.source for job in jobs}
    targets: dict[str, Path] = {}
    for job in jobs:
        key = os.path.realpath(job.target)
        if key in seen or (job.target.exists() and _inode(job.target) in inodes):
            raise OutputConflictError(
                f"{job.target} would overwrite the input {job.source if key in seen else inodes[_inode(job.target)]}:"
                " nothing was written; choose an --out folder outside the inputs"
            )
        if key in targets:
            raise OutputConflictError(
                f"{targets[key]} and {job.source} would both be written to {job.target}: resize them in separate "
                "runs or to separate --out folders"
            )
        targets[key] = job.source
    return jobs, ignored


def encode(image: Tensor, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """uint8 ``(3, H, W)`` -> the bytes of a PNG (lossless), JPEG or WebP file at ``quality``."""
    pillow_format, _ = FORMATS[fmt]
    options: dict[str, Any] = {} if fmt == "png" else {"quality": quality}
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, so that no half-written image is ever left at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Summary:
    """What a folder resize did."""

    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    ignored: int = 0
    seconds: float = 0.0

    def lines(self, out_dir: str | os.PathLike) -> list[str]:
        rate = f" ({self.written / self.seconds:.1f} images/s)" if self.seconds > 0 and self.written else ""
        lines = [f"wrote {self.written} image{'s' * (self.written != 1)} to {out_dir} in {self.seconds:.1f} s{rate}"]
        if self.ignored:
            lines.append(f"ignored {self.ignored} file{'s' * (self.ignored != 1)} without an image extension")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {reason}" for _, reason in self.skipped]
        return lines


def _as_is(item: Any) -> Any:
    return item


class _Decode(torch.utils.data.Dataset):
    """Decode one file (in a data-loader worker): ``index -> (index, uint8 (3, H, W) or None, error or None)``."""

    def __init__(self, jobs: list[Job], max_pixels: int) -> None:
        self.jobs, self.max_pixels = jobs, max_pixels

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None, str | None]:
        try:
            return index, load_image(self.jobs[index].source, max_pixels=self.max_pixels), None
        except ImageDecodeError as error:
            return index, None, str(error)


def resize_files(
    jobs: list[Job],
    resizer: ImageResizer,
    size: Size | None = None,
    *,
    keep_aspect: bool = False,
    fmt: str = "png",
    quality: int = DEFAULT_QUALITY,
    batch_size: int = 16,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool | None = None,
    warn: Callable[[str], None] | None = None,
) -> Summary:
    """Resize every job's file and write the result; unreadable files are skipped, not fatal.

    Files are decoded in ``workers`` data-loader processes (0: in this one); a learned resizer then runs on
    batches of up to ``batch_size`` images of the same size.

    Args:
        jobs: from :func:`plan_jobs`.
        resizer: from :func:`load_image_resizer`.
        size: output ``(h, w)`` (default the resizer's); with ``keep_aspect`` the box the output fits in.
        keep_aspect: see :func:`fit_size`.
        fmt: ``png``, ``jpg`` or ``webp``.
        quality: JPEG / WebP quality (1-100).
        batch_size: images per forward pass of a learned resizer.
        workers: decoding processes.
        max_pixels: larger files are skipped as possible decompression bombs.
        progress: show a progress bar (``None``: when stderr is a terminal).
        warn: called with a line for each skipped file (default: printed to stderr above the progress bar).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    summary = Summary()
    bar = tqdm(total=len(jobs), unit="img", disable=None if progress is None else not progress, file=sys.stderr)
    warn = warn or (lambda line: tqdm.write(line, file=sys.stderr))

    def skip(job: Job, reason: str) -> None:
        summary.skipped.append((job.source, reason))
        warn(f"warning: skipped {reason}")
        bar.update()

    def write(index: int, image: Tensor) -> None:
        job = jobs[index]
        try:
            write_file(job.target, encode(image, fmt, quality))
        except OSError as error:
            skip(job, f"{job.source}: cannot write {job.target} ({error})")
            return
        summary.written += 1
        bar.update()

    pending: dict[tuple, list[tuple[int, Tensor]]] = {}

    def flush(key: tuple) -> None:
        items = pending.pop(key)
        out = resizer.finish(torch.stack([image for _, image in items]), key[-1])
        for (index, _), image in zip(items, out, strict=True):
            write(index, image)

    loader = torch.utils.data.DataLoader(
        _Decode(jobs, max_pixels), batch_size=None, num_workers=workers, collate_fn=_as_is
    )
    try:
        for index, decoded, error in loader:
            if error is not None:
                skip(jobs[index], error)
                continue
            # Resizing stays in this process: torch's matrix products round differently with other thread counts
            # (workers run single-threaded), and the output must not depend on --workers.
            image, out = resizer.prepare(decoded, size, keep_aspect)
            if resizer.classic:
                write(index, image)
                continue
            key = (tuple(image.shape), out)
            pending.setdefault(key, []).append((index, image))
            if len(pending[key]) >= batch_size:
                flush(key)
            elif sum(len(v) for v in pending.values()) >= 4 * batch_size:  # many sizes: do not hoard images
                flush(max(pending, key=lambda k: len(pending[k])))
        for key in list(pending):
            flush(key)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary
