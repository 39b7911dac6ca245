"""Build the openclipart benchmark: a fixed classification set of real clip art from Debian's openclipart-png.

    python benchmarks/data/openclipart.py [--output DIR] [--source /usr/share/openclipart/png] [--jobs 2]

Source: the public-domain drawings of Debian's ``openclipart-png`` package (``apt-get install -y
openclipart-png``), 8,121 PNGs under ``/usr/share/openclipart/png/<category>/<sub-category>/...``.

What is built (the defaults; every choice is a flag and is recorded in ``build.json``):

- **Classes**: eight groups of sub-categories, chosen to be visually distinct (:data:`CLASSES`): animals, flags,
  food, icons (computer icons), people, pictograms (map symbols, AIGA symbols, road signs), shapes (arrows,
  callouts, flowchart symbols, jigsaw pieces) and vehicles (vehicles, boats). The other sub-categories (stars,
  playing cards, gradients, patterns, unsorted, ...) are left out: they are tiny, synthetic or mixed.
- **Sources**: drawings whose longest side is at least ``--min-side`` (128) px, so that the drawing, at most
  128 px on the canvas, is never up-scaled (a quarter of the package is 100 px or smaller); at most
  ``--per-class`` (250) per class (200 training and 50 validation at most),
  the first ones in the order of their content hash, so the choice does not depend on file names or on the order
  of the file system.
- **Small objects**: each drawing is cropped to its content (the pixels that are neither transparent nor white),
  composited on white, scaled so that its longest side is a fraction of the canvas drawn uniformly from
  ``--object-scale`` (0.25-0.5) and placed at a random position on a white ``--size`` (256) px square canvas; the
  scale and position are drawn from the file's content hash, so they never change. This is the point of the set:
  a first version with the drawings filling the frame was flat (47.6 % top-1 at 32 px, 47.8 % at 64 px), because
  a whole drawing is still recognisable at 32 px from its colours and outline; a small object in a larger frame,
  as in photographs, needs resolution. ``--object-scale 1 1`` builds the full-frame variant.
- **Split**: a source is in ``val/`` when the first 8 hex digits of its SHA-256 as a fraction of 2^32 are below
  ``--val-fraction`` (0.2): the split is fixed by the file's content and never moves. Identical files under
  several paths are one source (the first path in sorted order).
- **Bad files**, handled explicitly and counted in ``build.json`` and on the console: headers announcing more than
  ``--max-pixels`` (100 M) pixels are refused before decoding (decompression bombs and the 10,000 x 16,000 canvases
  of the package); truncated or unreadable files are skipped; fully transparent or all-white drawings are skipped
  as blank; palette (P), grey + alpha (LA), grey (L), 16-bit and RGBA drawings are converted to RGBA and composited
  on white (counted, not skipped); huge canvases around a small drawing are cropped to the drawing.

Output: ``DIR/train/<class>/*.png`` and ``DIR/val/<class>/*.png`` (RGB, ``--size`` px square), ``manifest.csv``
(one row per image: split, class, file, source path, SHA-256, source size and mode), ``build.json`` (parameters,
counts, skips by reason, the package version). The default ``DIR`` is in the taskresize cache
(``$TASKRESIZE_CACHE``, else ``~/.cache/taskresize``), named after the parameters. A finished folder is reused;
the build is deterministic (the same package and parameters give the same bytes).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

BUILDER_VERSION = 1
DEFAULT_SOURCE = Path("/usr/share/openclipart/png")
WHITE_THRESHOLD = 248  # a composited pixel with every channel at or above this counts as background

# class -> sub-folders of the package (relative to png/) whose drawings, recursively, belong to it
CLASSES: dict[str, tuple[str, ...]] = {
    "animals": ("animals",),
    "flags": ("signs_and_symbols/flags",),
    "food": ("food",),
    "icons": ("computer/icons",),
    "people": ("people",),
    "pictograms": ("signs_and_symbols/map_symbols", "transportation/aiga-symbols", "transportation/roadsigns"),
    "shapes": ("shapes/arrows", "shapes/callouts", "shapes/flowchart", "shapes/jigsaw"),
    "vehicles": ("transportation/vehicles", "transportation/boating"),
}

# skip reasons, in the order they are reported
BOMB, UNREADABLE, TRUNCATED, TOO_SMALL, BLANK, DUPLICATE = (
    "decompression bomb (too many pixels)", "unreadable", "truncated or corrupt", "too small", "blank",
    "duplicate content",
)  # fmt: skip


@dataclass(frozen=True)
class BuildOptions:
    """The parameters of a build; every one of them changes the output (see the module docstring)."""

    size: int = 256
    min_side: int = 128
    per_class: int = 250
    val_fraction: float = 0.2
    object_scale: tuple[float, float] = (0.25, 0.5)
    max_pixels: int = 100_000_000

    def key(self) -> str:
        """A short name for the default output folder."""
        lo, hi = self.object_scale
        return (
            f"openclipart-v{BUILDER_VERSION}-{self.size}px-min{self.min_side}-n{self.per_class}"
            f"-obj{lo:g}-{hi:g}-val{self.val_fraction:g}"
        )


@dataclass
class Source:
    path: str  # relative to the package's png/ folder
    label: str


@dataclass
class Outcome:
    """What happened to one source file."""

    path: str
    label: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    skipped: str | None = None  # a reason from the constants above
    detail: str = ""
    cropped: bool = False  # the drawing covered less than half of its canvas's area
    png: bytes = field(default=b"", repr=False)


@dataclass
class BuildReport:
    output: Path
    counts: dict[str, dict[str, int]]  # split -> class -> images
    skipped: dict[str, int]  # reason -> files
    modes: dict[str, int]  # Pillow mode of the used sources -> files
    cropped: int
    unmapped: int  # files under the package in no class

    def summary(self) -> str:
        lines = [f"openclipart benchmark in {self.output}"]
        for split, per_class in self.counts.items():
            lines.append(
                f"  {split}: {sum(per_class.values())} images, " + ", ".join(f"{k} {v}" for k, v in per_class.items())
            )
        skipped = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.items() if n) or "none"
        lines.append(f"  skipped: {skipped}")
        lines.append(
            "  converted to RGBA and composited on white: " + ", ".join(f"{m} {n}" for m, n in self.modes.items())
        )
        lines.append(f"  cropped to the drawing (content under half the canvas area): {self.cropped}")
        lines.append(f"  files in no class (left out by the mapping): {self.unmapped}")
        return "\n".join(lines)


def find_sources(root: Path) -> tuple[list[Source], int]:
    """The PNG files of each class (sorted) and the number of PNG files in no class."""
    sources, unmapped = [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".png"):
        rel = path.relative_to(root).as_posix()
        label = next(
            (name for name, folders in CLASSES.items() if any(rel.startswith(f.rstrip("/") + "/") for f in folders)),
            None,
        )
        if label is None:
            unmapped += 1
        else:
            sources.append(Source(rel, label))
    return sources, unmapped


def _to_rgba(image: Image.Image) -> Image.Image:
    """Any mode -> RGBA (palette transparency, LA and 16-bit grey included)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(data * 255.0 / peak), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("PA")
    return image.convert("RGBA")


def composite_on_white(image: Image.Image) -> Image.Image:
    """RGBA -> RGB on a white background."""
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")


def content_box(rgb: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box ``(left, top, right, bottom)`` of the non-white pixels, or None if there are none."""
    ink = np.asarray(rgb).min(axis=2) < WHITE_THRESHOLD
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def placement(sha256: str, options: BuildOptions, width: int, height: int) -> tuple[int, int, int, int]:
    """Object size and position on the canvas, a function of the content hash: ``(w, h, left, top)``."""
    rng = np.random.default_rng(int(sha256[:16], 16))
    lo, hi = options.object_scale
    side = options.size * (lo + (hi - lo) * rng.random())
    scale = side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    left = int(rng.integers(0, options.size - w + 1))
    top = int(rng.integers(0, options.size - h + 1))
    return w, h, left, top


def render(image: Image.Image, sha256: str, options: BuildOptions) -> tuple[Image.Image, bool] | None:
    """A decoded drawing -> the benchmark image (RGB, ``size`` square) and whether it was cropped; None if blank."""
    rgb = composite_on_white(_to_rgba(image))
    box = content_box(rgb)
    if box is None:
        return None
    cropped = (box[2] - box[0]) * (box[3] - box[1]) < 0.5 * rgb.width * rgb.height
    drawing = rgb.crop(box)
    w, h, left, top = placement(sha256, options, drawing.width, drawing.height)
    drawing = drawing.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGB", (options.size, options.size), (255, 255, 255))
    canvas.paste(drawing, (left, top))
    return canvas, cropped


def process(root: Path, source: Source, options: BuildOptions) -> Outcome:
    """Check, decode and render one source file; never raises for a bad file (the outcome says why it was skipped)."""
    out = Outcome(source.path, source.label)
    try:
        data = (root / source.path).read_bytes()
    except OSError as error:
        out.skipped, out.detail = UNREADABLE, str(error)
        return out
    out.sha256 = hashlib.sha256(data).hexdigest()
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the pixel limit is enforced below, before decoding
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                out.width, out.height, out.mode = image.width, image.height, image.mode
                if image.width * image.height > options.max_pixels:
                    out.skipped = BOMB
                    out.detail = f"{image.width}x{image.height} > {options.max_pixels:,} pixels"
                    return out
                if max(image.width, image.height) < options.min_side:
                    out.skipped, out.detail = TOO_SMALL, f"{image.width}x{image.height} < {options.min_side} px"
                    return out
                try:
                    image.load()
                except (OSError, SyntaxError, ValueError, EOFError) as error:
                    out.skipped, out.detail = TRUNCATED, str(error)
                    return out
                rendered = render(image, out.sha256, options)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        out.skipped, out.detail = UNREADABLE, str(error).splitlines()[0] if str(error) else type(error).__name__
        return out
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if rendered is None:
        out.skipped, out.detail = BLANK, "no pixel that is neither transparent nor white"
        return out
    canvas, out.cropped = rendered
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=6)
    out.png = buffer.getvalue()
    return out


def in_validation(sha256: str, fraction: float) -> bool:
    """The split of a source: fixed by its content hash."""
    return int(sha256[:8], 16) / 2**32 < fraction


def file_name(outcome: Outcome) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(outcome.path).stem)[:40]
    return f"{stem}-{outcome.sha256[:10]}.png"


def package_version() -> str:
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "openclipart-png"], capture_output=True,
                                text=True, check=False)  # fmt: skip
        return result.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def default_output(options: BuildOptions) -> Path:
    if "TASKRESIZE_CACHE" in os.environ:
        cache = Path(os.environ["TASKRESIZE_CACHE"])
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taskresize"
    return cache / options.key()


def build(
    output: Path | None = None, source: Path = DEFAULT_SOURCE, options: BuildOptions | None = None, jobs: int = 1
) -> BuildReport:
    """Build the set into ``output`` (default: the cache) and return what was built and skipped.

    Raises:
        FileNotFoundError: ``source`` does not exist (install the ``openclipart-png`` package).
    """
    options = options or BuildOptions()
    output = Path(output) if output is not None else default_output(options)
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source} does not exist: install Debian's openclipart-png (apt-get install -y openclipart-png) "
            "or pass --source DIR"
        )
    sources, unmapped = find_sources(source)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            outcomes = list(pool.map(process, [source] * len(sources), sources, [options] * len(sources),
                                     chunksize=16))  # fmt: skip
    else:
        outcomes = [process(source, s, options) for s in sources]

    seen: dict[str, str] = {}
    for outcome in outcomes:  # sources are sorted by path: the first path of identical files wins
        if outcome.skipped is None and outcome.sha256 in seen:
            outcome.skipped, outcome.detail, outcome.png = DUPLICATE, f"same bytes as {seen[outcome.sha256]}", b""
        elif outcome.sha256:
            seen.setdefault(outcome.sha256, outcome.path)

    n_val = round(options.per_class * options.val_fraction)
    quota = {"train": options.per_class - n_val, "val": n_val}
    chosen: list[tuple[str, Outcome]] = []
    for label in CLASSES:
        usable = sorted((o for o in outcomes if o.label == label and o.skipped is None), key=lambda o: o.sha256)
        for split in ("train", "val"):
            members = [o for o in usable if in_validation(o.sha256, options.val_fraction) == (split == "val")]
            chosen += [(split, o) for o in members[: quota[split]]]

    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent if output.parent.exists() else None))
    try:
        rows = []
        for split, o in chosen:
            name = file_name(o)
            target = staging / split / o.label / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(o.png)
            rows.append(
                [split, o.label, f"{split}/{o.label}/{name}", o.path, o.sha256, f"{o.width}x{o.height}", o.mode]
            )
        with (staging / "manifest.csv").open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["split", "class", "file", "source", "sha256", "source_size", "source_mode"])
            writer.writerows(rows)
        report = BuildReport(
            output=output,
            counts={
                s: {label: sum(1 for sp, o in chosen if sp == s and o.label == label) for label in CLASSES}
                for s in ("train", "val")
            },
            skipped={
                r: sum(1 for o in outcomes if o.skipped == r)
                for r in (BOMB, UNREADABLE, TRUNCATED, TOO_SMALL, BLANK, DUPLICATE)
            },
            modes=dict(sorted(Counter(o.mode for o in outcomes if o.skipped is None).items())),
            cropped=sum(1 for o in outcomes if o.skipped is None and o.cropped),
            unmapped=unmapped,
        )
        skipped_files = [
            {"path": o.path, "reason": o.skipped, "detail": o.detail}
            for o in outcomes
            if o.skipped not in (None, TOO_SMALL)
        ]
        info = {
            "builder_version": BUILDER_VERSION,
            "package": f"openclipart-png {package_version()}",
            "source": str(source),
            "options": asdict(options),
            "classes": {k: list(v) for k, v in CLASSES.items()},
            "counts": report.counts,
            "skipped": report.skipped,
            "source_modes": report.modes,
            "cropped": report.cropped,
            "unmapped": report.unmapped,
            "skipped_files": skipped_files,  # every skip but "too small", with its reason
        }
        (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BuildOptions()
    parser.add_argument("--output", type=Path, help="output folder (default: in the taskresize cache)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the package's png/ folder")
    parser.add_argument("--size", type=int, default=defaults.size, help="canvas side in px")
    parser.add_argument("--min-side", type=int, default=defaults.min_side, help="skip smaller drawings")
    parser.add_argument("--per-class", type=int, default=defaults.per_class, help="sources per class, at most")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--object-scale", type=float, nargs=2, default=defaults.object_scale, metavar=("MIN", "MAX"),
                        help="longest side of the drawing as a fraction of the canvas side")  # fmt: skip
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="refuse larger headers")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--force", action="store_true", help="rebuild even if the output folder is finished")
    args = parser.parse_args(argv)
    if not 0 < args.object_scale[0] <= args.object_scale[1] <= 1:
        parser.error(f"--object-scale {args.object_scale}: need 0 < MIN <= MAX <= 1")
    if not 0 < args.val_fraction < 1:
        parser.error(f"--val-fraction {args.val_fraction}: must be between 0 and 1")
    options = BuildOptions(args.size, args.min_side, args.per_class, args.val_fraction, tuple(args.object_scale),
                           args.max_pixels)  # fmt: skip
    output = args.output or default_output(options)
    if (output / "build.json").is_file() and not args.force:
        print(f"{output} is already built (pass --force to rebuild)")
        return 0
    try:
        report = build(output, args.source, options, jobs=args.jobs)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
