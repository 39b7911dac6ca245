"""Data folders are judged once, at scan time: one class, truncated and corrupt files,
and images over --max-pixels, which is the only pixel limit (Pillow's own is lifted)."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from taskresize.data.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, load_image, probe_image
from taskresize.data.formats.folders import Sample, scan_class_folders, screen_samples
from taskresize.errors import DataError
from taskresize.inference.files import plan_jobs, resize_files
from taskresize.inference.image import load_image_resizer

from helpers import cli, colour_folders, train_args
from imaging import synthetic_image


def encoded(fmt: str, size=(40, 48), seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(*size, seed=seed)).save(buffer, fmt)
    return buffer.getvalue()


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (1-bit grey) with a tiny, checksummed data chunk: what a
    decompression bomb looks like before it is decoded, without the memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip


def damaged_files(folder):
    """Complete and damaged PNGs and JPEGs; returns the names that must be refused."""
    folder.mkdir(parents=True, exist_ok=True)
    png, jpeg = encoded("PNG"), encoded("JPEG")
    (folder / "good.png").write_bytes(png)
    (folder / "good.jpg").write_bytes(jpeg)
    (folder / "trailer.jpg").write_bytes(jpeg + b"\0" * 100)  # bytes after the end marker: still a whole image
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF  # one byte of the pixel data changed: the chunk's checksum no longer matches
    (folder / "flipped.png").write_bytes(bytes(flipped))
    return {"cut.png", "cut.jpg", "flipped.png"}


def test_a_folder_with_one_class_is_refused_when_scanned(tmp_path, capsys):
    # before: a traceback from deep inside training ("num_classes ... larger than 1, but got 1")
    data = colour_folders(tmp_path / "data", per_class=6)
    for name in ("green", "blue"):
        for file in (data / name).iterdir():
            file.unlink()
        (data / name).rmdir()
    with pytest.raises(DataError, match=r"has one class folder \(red\): a classifier needs at least two"):
        scan_class_folders(data)
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(data) in err and "at least two" in err and "Traceback" not in err
    assert not run.exists()


def test_truncated_and_corrupt_files_are_found_when_scanned(tmp_path):
    folder = tmp_path / "files"
    refused = damaged_files(folder)
    samples = [Sample(str(p), 0) for p in sorted(folder.iterdir())]
    kept, report = screen_samples(samples)
    assert {s.path.rsplit("/", 1)[-1] for s in kept} == {"good.png", "good.jpg", "trailer.jpg"}
    assert sorted(p.rsplit("/", 1)[-1] for p in report.skipped["corrupt"]) == sorted(refused)
    with pytest.raises(DataError, match=r"--strict: skipped 3 file\(s\) \(corrupt\)"):
        screen_samples(samples, strict=True)
    for name in refused:  # probe_image without verify reads only the header, as before
        probe_image(folder / name)
        with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
            probe_image(folder / name, verify=True)


def test_training_counts_only_whole_images_and_strict_stops_before_training(tmp_path, capsys):
    # before: a truncated PNG was counted (train_images 40), warned about twice during training, and --strict
    # stopped only once training had started
    data = colour_folders(tmp_path / "data", per_class=8)
    (data / "red" / "cut.png").write_bytes(encoded("PNG")[:300])
    strict = tmp_path / "strict"
    assert cli("train", *train_args(data, strict), "--strict") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(corrupt)" in err and "cut.png" in err and not strict.exists()
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--epochs": 1, "--precise-bn": 0})) == 0
    err = capsys.readouterr().err
    assert err.count("cut.png") == 1 and "skipped 1 file(s) (corrupt)" in err and "warning: skipping" not in err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_images"] + metrics["val_images"] == 24  # 3 classes x 8: the cut file is not counted


def test_max_pixels_is_the_only_pixel_limit(tmp_path, monkeypatch):
    # before: Pillow's own limit (178,956,970 pixels) refused what --max-pixels accepted
    bomb = tmp_path / "big.png"
    png_header_only(bomb, 25_000, 10_000)  # 250 Mpx, above Pillow's limit
    assert probe_image(bomb, max_pixels=10**9, verify=True) == (10_000, 25_000)
    with pytest.raises(ImageDecodeError, match=r"exceeds the limit of 100,000,000.*raise --max-pixels"):
        probe_image(bomb, max_pixels=DEFAULT_MAX_PIXELS)
    kept, _ = screen_samples([Sample(str(bomb), 0)], max_pixels=10**9)
    assert len(kept) == 1

    # decoding too, in this process and in data-loader workers: with Pillow's limit set as low as 1,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small = tmp_path / "in" / "small.png"
    small.parent.mkdir()
    Image.fromarray(synthetic_image(60, 80)).save(small)  # 4,800 px: over twice Pillow's limit
    assert load_image(small, max_pixels=10_000).shape == (3, 60, 80)
    with pytest.raises(ImageDecodeError, match=r"exceeds the limit of 4,000.*raise --max-pixels"):
        load_image(small, max_pixels=4_000)
    assert Image.MAX_IMAGE_PIXELS == 1000  # lifted only while a file is opened
    jobs, _ = plan_jobs([small.parent], tmp_path / "out", "png")
    summary = resize_files(jobs, load_image_resizer("bilinear"), (8, 8), workers=1, max_pixels=10_000)
    assert summary.written == 1 and not summary.skipped
    assert np.asarray(Image.open(tmp_path / "out" / "small.png")).shape == (8, 8, 3)
