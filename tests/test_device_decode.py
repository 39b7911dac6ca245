"""``--decode-on device``: the workers read JPEGs and draw the augmentation, the device decodes and pre-resizes.

On this CPU the device is the CPU, and torchvision's decoder is libjpeg-turbo as Pillow's is: the decoded pixels are
Pillow's to the bit, and whole batches equal the workers' where the pre-resize is exact (``nearest``) or within one
grey level (bilinear, bicubic that does not overshoot). nvJPEG on a GPU is measured by ``make gpu-check``.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from taskresize.data.collate import collate_classes
from taskresize.data.decode import ImageDecodeError, load_image, probe_jpeg
from taskresize.data.device_decode import DeferredPreResize, EncodedBatch, EncodedImage, decode_batch, decode_jpegs
from taskresize.data.transforms import Distortion, PreResize
from taskresize.errors import DataError
from taskresize.experiments.sweep.plan import SweepError, configs, expand
from taskresize.training.config import ConfigError, TrainConfig
from taskresize.training.tasks.classification import FolderData
from taskresize.training.tasks.data import TaskData

from helpers import cli, colour_folders, train_args

CPU = torch.device("cpu")


def photo(height: int, width: int, seed: int = 0, low: int = 0, high: int = 255) -> np.ndarray:
    """A smooth pattern with noise, uint8 ``(height, width, 3)`` in ``[low, high]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (np.sin(xx / 7 + seed) + np.cos(yy / 11)) * 60 + 128
    pixels = base[..., None] + rng.normal(0, 30, (height, width, 3))
    return np.clip(pixels, low, high).astype(np.uint8)


def jpeg(path, pixels, mode="RGB", **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, "JPEG", **({"quality": 90} | options))
    return path


def encoded(path, **settings) -> EncodedImage:
    item = DeferredPreResize(**({"size": (1, 1)} | settings))(path)
    assert isinstance(item, EncodedImage)
    return item


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (16, 16), (17, 33), (101, 257), (333, 517)])
@pytest.mark.parametrize(
    "options", [{"subsampling": 0}, {"subsampling": 1}, {"subsampling": 2}, {"progressive": True}, {"mode": "L"}],
    ids=["444", "422", "420", "progressive", "greyscale"],
)  # fmt: skip
def test_the_jpegs_decode_as_pillow_decodes_them_to_the_bit(tmp_path, size, options):
    path = jpeg(tmp_path / "a.jpg", photo(*size, seed=size[0]), **options)
    (image,) = decode_jpegs([encoded(path)], CPU)
    assert image.dtype == torch.uint8 and image.shape == (3, *size)
    assert torch.equal(image, load_image(path))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = jpeg(tmp_path / "a.jpg", photo(23, 41), exif=exif.tobytes())
    expected = load_image(path)
    assert probe_jpeg(path)[:2] == tuple(expected.shape[-2:]) and probe_jpeg(path)[2] == orientation
    (image,) = decode_jpegs([encoded(path)], CPU)
    assert torch.equal(image, expected)
    size = tuple(expected.shape[-2:])  # the oriented size: nothing to resize, the whole batch path is exact too
    batch = decode_batch([encoded(path, size=size)], CPU)
    assert torch.equal(batch[0], expected)


def test_pngs_and_cmyk_jpegs_are_decoded_by_the_workers_as_before(tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(photo(30, 40)).save(png)
    cmyk = jpeg(tmp_path / "c.jpg", photo(30, 40), mode="CMYK")
    for path in (png, cmyk):
        assert probe_jpeg(path) is None
        got = DeferredPreResize((20, 24))(path)
        assert isinstance(got, torch.Tensor) and torch.equal(got, PreResize((20, 24))(path))


@pytest.mark.parametrize(
    ("method", "antialias", "low", "high", "tolerance"),
    [("nearest", True, 0, 255, 0), ("bilinear", True, 0, 255, 1), ("bilinear", False, 0, 255, 1),
     ("bicubic", True, 40, 215, 1), ("bicubic", False, 0, 255, 1)],
)  # fmt: skip
def test_training_batches_equal_the_workers_batches(tmp_path, method, antialias, low, high, tolerance):
    """The same crops and flips (same seed, same draws), the same decoded pixels; the pre-resize differs only by its
    rounding (float32, once, against uint8 between the passes): exact for nearest, within one grey level otherwise,
    where bicubic does not overshoot 0 or 255 (there the workers clip between the passes, as Pillow does)."""
    rng = np.random.default_rng(1)
    for i in range(10):  # under twice the least size Pillow decodes at (64 px): no reduced-scale decoding
        size = (int(rng.integers(50, 128)), int(rng.integers(50, 128)))
        suffix = "png" if i == 4 else "jpg"
        path = tmp_path / "data" / "ab"[i % 2] / f"{i}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(*size, seed=i, low=low, high=high)).save(path, quality=90)

    def batches(decode_on):
        cfg = TrainConfig(data=str(tmp_path / "data"), in_size=[64, 64], out_size=[32, 32], batch_size=4, workers=0,
                          pre_resize=method, pre_resize_antialias=antialias, decode_on=decode_on)  # fmt: skip
        data = FolderData(cfg)
        out = []
        for epoch in range(2):
            loader = data.train_dataloader()
            loader.sampler.set_epoch(epoch)
            out += [(images.to(CPU), labels) for images, labels in loader]
        out += [(images.to(CPU), labels) for images, labels in data.val_dataloader()]
        return out

    on_workers, on_device = batches("cpu"), batches("device")
    assert len(on_device) == len(on_workers) == 5
    for (expected, labels), (got, got_labels) in zip(on_workers, on_device, strict=True):
        assert got.dtype == torch.uint8 and got.shape == expected.shape
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(got_labels, labels)
        assert (got.int() - expected.int()).abs().max() <= tolerance
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(on_device[:2], on_device[2:4], strict=True))


def test_same_seed_same_batches_with_any_number_of_workers(tmp_path):
    colour_folders(tmp_path, per_class=6, size=48)

    def batches(seed, workers):
        cfg = TrainConfig(data=str(tmp_path), in_size=[40, 40], out_size=[32, 32], batch_size=4, workers=workers,
                          decode_on="device", seed=seed)  # fmt: skip
        loader = FolderData(cfg).train_dataloader()
        first = [next(iter(loader))]
        assert isinstance(first[0][0], EncodedBatch)  # JPEGs and PNGs mixed: a batch for the device to decode
        return [images.to(CPU) for images, _ in first + list(loader)]

    reference = batches(0, 0)
    assert all(torch.equal(a, b) for a, b in zip(reference, batches(0, 0), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(reference, batches(0, 2), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(reference, batches(1, 0), strict=True))


def test_a_truncated_jpeg_is_left_to_the_workers_and_a_corrupt_one_is_named(tmp_path):
    good = jpeg(tmp_path / "good.jpg", photo(40, 50))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"truncated\.jpg"):  # Pillow's error, in the worker: skipped there
        DeferredPreResize((20, 20))(truncated)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(data[:600] + bytes(200) + data[800:])
    items = [encoded(good, size=(20, 20)), encoded(corrupt, size=(20, 20))]
    with pytest.raises(ImageDecodeError, match=r"corrupt\.jpg"):
        EncodedBatch(items).to("cpu")
    assert decode_batch(items[:1], CPU).shape == (1, 3, 20, 20)


def test_collate_makes_an_encoded_batch_that_moving_to_a_device_decodes(tmp_path):
    path = jpeg(tmp_path / "a.jpg", photo(40, 50))
    png = tmp_path / "b.png"
    Image.fromarray(photo(40, 50, seed=3)).save(png)
    transform = DeferredPreResize((20, 24))
    images, labels = collate_classes([(transform(path), 0), (transform(png), 1)])
    assert isinstance(images, EncodedBatch) and len(images) == 2 and labels.tolist() == [0, 1]
    batch = images.pin_memory().to("cpu") if torch.cuda.is_available() else images.to("cpu")
    assert batch.shape == (2, 3, 20, 24) and batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch[1], PreResize((20, 24))(png))


def test_settings_the_device_path_cannot_honour_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="decode_on = 'gpu': must be one of cpu, device"):
        TrainConfig(decode_on="gpu")
    with pytest.raises(ConfigError, match="pre_resize = 'lanczos': with decode_on = 'device'"):
        TrainConfig(decode_on="device", pre_resize="lanczos")
    with pytest.raises(ConfigError, match="distortion = 'jpeg10': must be none with decode_on = 'device'"):
        TrainConfig(decode_on="device", distortion="jpeg10")
    with pytest.raises(DataError, match="decode_on = 'device': implemented for classification only"):
        TaskData.refuse_unsupported(TrainConfig(decode_on="device"), "segmentation")
    with pytest.raises(ValueError, match="no distortion"):
        DeferredPreResize((8, 8), distortion=Distortion("noise0.1", (8, 8)))


def test_sweeps_and_compare_take_it_as_a_config_key(tmp_path):
    base = {"data": "builtin", "backbone": "timm:resnet10t", "out_size": 32, "epochs": 1, "decode_on": "device"}
    sweep = expand({"name": "d", "base": base, "grid": {"resizer": ["bilinear", "area"]}})
    assert {c.decode_on for c in configs(sweep, tmp_path).values()} == {"device"}
    with pytest.raises(SweepError, match="pre_resize = 'lanczos': with decode_on = 'device'"):
        expand({"name": "d", "base": base | {"pre_resize": "lanczos"}, "grid": {"seed": [0]}})


def test_the_train_command_refuses_them_in_one_line(tmp_path, capsys):
    code = cli("train", *train_args(tmp_path, tmp_path / "run"), "--decode-on", "device", "--pre-resize", "area")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "pre_resize = 'area': with decode_on = 'device' must be one of bilinear, bicubic, nearest" in err
    assert not (tmp_path / "run").exists()
    assert cli("train", "--decode-on", "nvjpeg") == 2
    assert "--decode-on: invalid choice: 'nvjpeg' (choose from 'cpu', 'device')" in capsys.readouterr().err


def test_train_help_says_what_it_does(capsys):
    assert cli("train", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--decode-on {cpu,device}" in text
    for words in ("decode_jpeg", "CUDA GPU (nvJPEG)", "elsewhere the training process decodes on the CPU",
                  "Other files (PNG, CMYK JPEGs, ...) are decoded by the workers", "(default cpu)"):  # fmt: skip
        assert words in text, words


@pytest.mark.slow
def test_a_run_decoding_on_the_device_trains_on_this_cpu(tmp_path, capsys):
    colour_folders(tmp_path / "data", per_class=6, size=40)
    run = tmp_path / "run"
    assert cli("train", *train_args(tmp_path / "data", run, **{"--epochs": 1}), "--decode-on", "device") == 0
    assert "decode_on device without a CUDA GPU" in capsys.readouterr().err
    assert (run / "metrics.json").is_file()
    assert "decode_on: device" in (run / "config.yaml").read_text()


def test_encoded_image_bytes_are_the_file(tmp_path):
    path = jpeg(tmp_path / "a.jpg", photo(20, 30))
    item = encoded(path)
    assert item.data.dtype == torch.uint8 and bytes(item.data.numpy()) == path.read_bytes()
