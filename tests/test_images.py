"""Decoding: every mode to RGB, EXIF orientation, JPEG draft, bad files with clear errors."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from taskresize.data.decode import ImageDecodeError, load_image, open_image


def save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :3, 3] = 255  # left half opaque red, right half transparent
    out = load_image(save(tmp_path / "a.png", Image.fromarray(rgba)))
    assert out.shape == (3, 4, 6) and out.dtype == torch.uint8
    assert out[:, 0, 0].tolist() == [200, 0, 0] and out[:, 0, 5].tolist() == [255, 255, 255]
    la = Image.fromarray(np.stack([np.full((4, 6), 10, np.uint8), np.zeros((4, 6), np.uint8)], -1), mode="LA")
    assert load_image(save(tmp_path / "la.png", la)).unique().tolist() == [255]


def test_palette_with_transparency(tmp_path):
    p = Image.new("P", (5, 5), 0)
    p.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.info["transparency"] = 0
    out = load_image(save(tmp_path / "p.png", p, transparency=0))
    assert out[:, 0, 0].tolist() == [40, 50, 60] and out[:, 4, 4].tolist() == [255, 255, 255]


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    data = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = save(tmp_path / "g16.png", Image.fromarray(data))
    assert open_image(path).mode == "RGB"
    assert load_image(path)[0].tolist() == [[0, 100, 255]]


def test_cmyk_jpeg_and_greyscale(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    out = load_image(save(tmp_path / "c.jpg", cmyk))
    assert out[0].float().mean() > 200 and out[1].float().mean() < 60
    assert load_image(save(tmp_path / "l.png", Image.new("L", (3, 2), 77))).unique().tolist() == [77]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (6, 4), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = save(tmp_path / "r.jpg", image, exif=exif, quality=100)
    out = load_image(path)
    assert out.shape == (3, 6, 4)  # width and height swapped
    assert out[:, 0, 3].float().mean() > 200  # the white corner moved to the top right


def test_jpeg_draft_decodes_large_files_at_reduced_scale(tmp_path):
    path = save(tmp_path / "big.jpg", Image.new("RGB", (1600, 1200), (90, 90, 90)))
    assert load_image(path, draft_size=(150, 200)).shape[1:] == (150, 200)  # 1/8 scale
    assert load_image(path, draft_size=(400, 400)).shape[1:] == (600, 800)  # never below what is asked
    assert load_image(path).shape[1:] == (1200, 1600)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"this is text, not a JPEG", "not an image"), (None, "no such file")],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=message) as info:
        load_image(path)
    assert "bad.jpg" in str(info.value)


def test_truncated_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_image(path)


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    path = save(tmp_path / "wide.png", Image.new("L", (3000, 3000)))
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        load_image(path, max_pixels=1_000_000)
    assert load_image(path, max_pixels=10_000_000).shape == (3, 3000, 3000)
