"""The openclipart benchmark builder on a small fake package tree with the kinds of bad files the real one has."""

import csv
import importlib.util
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("openclipart", ROOT / "benchmarks" / "data" / "openclipart.py")
openclipart = importlib.util.module_from_spec(spec)
sys.modules["openclipart"] = openclipart  # dataclasses and worker processes look the module up by name
spec.loader.exec_module(openclipart)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header announces ``width x height`` pixels, with almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def drawing(size: tuple[int, int], seed: int) -> np.ndarray:
    """An RGBA drawing: a coloured noisy blob on a transparent canvas."""
    rng = np.random.default_rng(seed)
    h, w = size
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 200, (h, w, 3))
    y, x = np.mgrid[0:h, 0:w]
    rgba[..., 3] = np.where((y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 3) ** 2, 255, 0)
    return rgba


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "png"
    for folder in ("animals", "food", "people", "shapes/arrows", "transportation/vehicles", "special"):
        (root / folder).mkdir(parents=True)
    for i in range(6):
        Image.fromarray(drawing((180 + 10 * i, 200), i)).save(root / "animals" / f"good{i}.png")
    png_header_only(root / "animals" / "bomb.png", 20_000, 20_000)
    palette = Image.fromarray(drawing((200, 180), 7)).convert("RGB").quantize(16)
    palette.info["transparency"] = 0
    palette.save(root / "food" / "palette.png", transparency=0)
    Image.fromarray(drawing((170, 210), 8)[..., [0, 3]], mode="LA").save(root / "people" / "grey_alpha.png")
    noisy = root / "people" / "noisy.png"
    Image.fromarray(np.random.default_rng(9).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(noisy)
    data = noisy.read_bytes()
    (root / "people" / "truncated.png").write_bytes(data[: len(data) // 2])
    noisy.unlink()
    (root / "shapes" / "arrows" / "not_an_image.png").write_bytes(b"this is text, not a PNG")
    Image.fromarray(drawing((50, 60), 10)).save(root / "shapes" / "arrows" / "small.png")
    Image.new("RGBA", (200, 200), (255, 0, 0, 0)).save(root / "shapes" / "arrows" / "blank.png")
    (root / "transportation" / "vehicles" / "copy.png").write_bytes((root / "animals" / "good0.png").read_bytes())
    Image.fromarray(drawing((200, 200), 11)).save(root / "special" / "unmapped.png")
    return root


def test_bad_files_are_skipped_and_counted_by_reason(tree, tmp_path):
    options = openclipart.BuildOptions(size=64, min_side=160, per_class=10, val_fraction=0.3)
    report = openclipart.build(tmp_path / "out", tree, options)
    assert report.skipped == {
        openclipart.BOMB: 1, openclipart.UNREADABLE: 1, openclipart.TRUNCATED: 1, openclipart.TOO_SMALL: 1,
        openclipart.BLANK: 1, openclipart.DUPLICATE: 1,
    }  # fmt: skip
    assert report.modes == {"LA": 1, "P": 1, "RGBA": 6}  # converted and used, not skipped
    assert report.unmapped == 1
    counts = {label: report.counts["train"][label] + report.counts["val"][label] for label in openclipart.CLASSES}
    assert counts["animals"] == 6 and counts["food"] == 1 and counts["people"] == 1 and counts["vehicles"] == 0
    info = json.loads((tmp_path / "out" / "build.json").read_text())
    reasons = {Path(f["path"]).name: f["reason"] for f in info["skipped_files"]}
    assert reasons == {"bomb.png": openclipart.BOMB, "truncated.png": openclipart.TRUNCATED,
                       "not_an_image.png": openclipart.UNREADABLE, "blank.png": openclipart.BLANK,
                       "copy.png": openclipart.DUPLICATE}  # fmt: skip
    summary = report.summary()
    assert "decompression bomb (too many pixels): 1" in summary and "LA 1" in summary


def test_images_are_rgb_squares_on_white_split_by_content_hash(tree, tmp_path):
    options = openclipart.BuildOptions(size=64, min_side=160, per_class=10, val_fraction=0.3)
    openclipart.build(tmp_path / "out", tree, options)
    rows = list(csv.DictReader((tmp_path / "out" / "manifest.csv").read_text().splitlines()))
    assert len(rows) == 8
    for row in rows:
        with Image.open(tmp_path / "out" / row["file"]) as image:
            assert image.mode == "RGB" and image.size == (64, 64)
            pixels = np.asarray(image)
        assert (pixels.min(axis=2) >= 248).mean() > 0.5  # mostly white: a small drawing on a white canvas
        assert pixels.min() < 200  # and the drawing is there
        assert row["split"] == ("val" if openclipart.in_validation(row["sha256"], 0.3) else "train")
        assert row["file"].startswith(f"{row['split']}/{row['class']}/")
    la = next(r for r in rows if r["source"] == "people/grey_alpha.png")
    assert la["source_mode"] == "LA" and la["source_size"] == "210x170"


def test_the_build_is_deterministic_and_quotas_are_per_split(tree, tmp_path):
    options = openclipart.BuildOptions(size=48, min_side=160, per_class=4, val_fraction=0.5)
    a = openclipart.build(tmp_path / "a", tree, options)
    b = openclipart.build(tmp_path / "b", tree, options, jobs=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert a.counts == b.counts
    assert a.counts["train"]["animals"] <= 2 and a.counts["val"]["animals"] <= 2


def test_placement_depends_only_on_the_hash():
    options = openclipart.BuildOptions(size=256, object_scale=(0.3, 0.5))
    first = openclipart.placement("ab" * 32, options, 400, 200)
    assert first == openclipart.placement("ab" * 32, options, 400, 200)
    w, h, left, top = first
    assert 0.3 * 256 - 1 <= w <= 0.5 * 256 + 1 and abs(h - w / 2) <= 1
    assert 0 <= left <= 256 - w and 0 <= top <= 256 - h
    full = openclipart.placement("ab" * 32, openclipart.BuildOptions(size=256, object_scale=(1, 1)), 400, 200)
    assert full == (256, 128, 0, full[3])


def test_a_missing_package_says_how_to_install_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y openclipart-png"):
        openclipart.build(tmp_path / "out", tmp_path / "nowhere")
