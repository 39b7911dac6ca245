"""Resizing folders of image files: the plan (which file goes where, refusing every overwrite), decoding in
data-loader workers, batches of one size through the resizer, and atomic writes of PNG, JPEG or WebP."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from taskresize.data.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, is_image_file, load_image, tensor_to_pil
from taskresize.errors import TaskresizeError
from taskresize.fileio import atomic_write_bytes
from taskresize.inference.image import ImageResizer
from taskresize.sizes import Size

FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
DEFAULT_QUALITY = 95
DEFAULT_BATCH_PIXELS = 2**25  # 32 Mi input pixels: 32 images of 1024 x 1024 per forward pass


class OutputConflictError(TaskresizeError):
    """Outputs that would overwrite an input or each other, or go inside an input folder; nothing has been written."""


class OutputFolderError(TaskresizeError):
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
        raise OutputFolderError(f"--output {out_dir} is a file, not a folder: give a folder (it is created if needed)")
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        remove_empty_folders(created)
        raise OutputFolderError(f"--output {out_dir} cannot be created ({error.strerror or error})") from None
    probe = out_dir / f".taskresize-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as error:
        remove_empty_folders(created)
        raise OutputFolderError(f"--output {out_dir} is not writable ({error.strerror or error})") from None
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
                f"--output {out_dir} {where} {given}: nothing was written; choose an --output folder outside every "
                "input"
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
                " nothing was written; choose an --output folder outside the inputs"
            )
        if key in targets:
            raise OutputConflictError(
                f"{targets[key]} and {job.source} would both be written to {job.target}: resize them in separate "
                "runs or to separate --output folders"
            )
        targets[key] = job.source
    return jobs, ignored


def existing_targets(jobs: Iterable[Job]) -> list[Path]:
    """The jobs' output files that exist already (a file of the user's, or of an earlier run): replaced only when
    the caller says so."""
    return [job.target for job in jobs if job.target.exists() or job.target.is_symlink()]


def encode(image: Tensor, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """uint8 ``(3, H, W)`` -> the bytes of a PNG (lossless), JPEG or WebP file at ``quality``."""
    pillow_format, _ = FORMATS[fmt]
    options: dict[str, Any] = {} if fmt == "png" else {"quality": quality}
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


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
        if self.skipped:  # each was told as it happened
            count = len(self.skipped)
            lines.append(f"skipped {count} file{'s' * (count != 1)} (the warnings above say why)")
        return lines


def _as_is(item: Any) -> Any:
    return item


class PipedProgress:
    """Progress where no bar can be drawn (output to a file or a pipe): a line every ``every`` seconds."""

    def __init__(self, total: int, every: float = 10.0, write: Callable[[str], None] | None = None) -> None:
        self.total, self.every, self.n = total, every, 0
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.started = self.last = time.perf_counter()

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.perf_counter()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            rate = self.n / max(now - self.started, 1e-9)
            left = (self.total - self.n) / rate
            self.write(f"{self.n}/{self.total} images ({rate:.1f}/s, about {left:.0f} s left)")

    def close(self) -> None:
        pass


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
    batch_pixels: int = DEFAULT_BATCH_PIXELS,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool | None = None,
    warn: Callable[[str], None] | None = None,
) -> Summary:
    """Resize every job's file and write the result; unreadable files are skipped, not fatal.

    Files are decoded in ``workers`` data-loader processes (0: in this one); a learned resizer then runs on
    batches of up to ``batch_size`` images of the same size, and of at most ``batch_pixels`` input pixels (a
    batch of large images fits the device's memory; one image always makes a batch). Encoding and writing run in
    a few threads (Pillow's encoders release the GIL) while the next batch is resized.

    Args:
        jobs: from :func:`plan_jobs`.
        resizer: from :func:`load_image_resizer`.
        size: output ``(h, w)`` (default the resizer's); with ``keep_aspect`` the box the output fits in.
        keep_aspect: see :func:`fit_size`.
        fmt: ``png``, ``jpg`` or ``webp``.
        quality: JPEG / WebP quality (1-100).
        batch_size: images per forward pass of a learned resizer.
        batch_pixels: input pixels per forward pass, at most (the pixel budget of a batch).
        workers: decoding processes.
        max_pixels: larger files are skipped as possible decompression bombs.
        progress: show progress (``None``: a bar when stderr is a terminal, else a line every ten seconds).
        warn: called with a line for each skipped file (default: printed to stderr above the progress bar).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    summary = Summary()
    if progress is None and not sys.stderr.isatty():
        bar: Any = PipedProgress(len(jobs))
    else:
        bar = tqdm(total=len(jobs), unit="img", disable=progress is False, file=sys.stderr)
    warn = warn or (lambda line: tqdm.write(line, file=sys.stderr))

    def skip(job: Job, reason: str) -> None:
        summary.skipped.append((job.source, reason))
        warn(f"warning: skipped {reason}")
        bar.update()

    threads = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    writers = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="taskresize-write")
    writing: collections.deque = collections.deque()  # (index, future), in order; bookkeeping stays in this thread

    def written(index: int, future: concurrent.futures.Future) -> None:
        job = jobs[index]
        try:
            future.result()
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):  # every later file would fail too: stop here
                raise
            skip(job, f"{job.source}: cannot write {job.target} ({error})")
            return
        summary.written += 1
        bar.update()

    def drain(keep: int) -> None:
        """Account for the finished writes, waiting for the oldest until at most ``keep`` are in flight."""
        while writing and (len(writing) > keep or writing[0][1].done()):
            written(*writing.popleft())

    def write(index: int, image: Tensor) -> None:
        job = jobs[index]
        writing.append((index, writers.submit(lambda: atomic_write_bytes(job.target, encode(image, fmt, quality),
                                                                         sync=False))))  # fmt: skip
        drain(keep=2 * threads)  # a bounded number of images held for encoding

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
            if (
                len(pending[key]) >= batch_size
                or (len(pending[key]) + 1) * image.shape[-2] * image.shape[-1] > batch_pixels
            ):
                flush(key)
            elif sum(len(v) for v in pending.values()) >= 4 * batch_size:  # many sizes: do not hoard images
                flush(max(pending, key=lambda k: len(pending[k])))
        for key in list(pending):
            flush(key)
        drain(keep=0)
    finally:
        writers.shutdown(wait=True, cancel_futures=True)
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary
