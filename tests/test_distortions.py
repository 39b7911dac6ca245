"""Talebi Table 9 distortions in the data loader: what each does, repeatable in validation, random in training."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from taskresize.data.decode import load_image
from taskresize.data.transforms import DISTORTIONS, Distortion, PreResize
from taskresize.resizers.classic import resize
from taskresize.training.config import ConfigError, TrainConfig
from taskresize.training.tasks.classification import FolderData

from helpers import colour_folders
from imaging import synthetic_image


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "cls" / "image.png"
    path.parent.mkdir()
    Image.fromarray(synthetic_image(96, 128, seed=3)).save(path)
    return path


def test_working_sizes():
    assert Distortion("none", (64, 48)).working_size is None
    assert Distortion("downscale4", (64, 48)).working_size == (16, 12)
    assert Distortion("noise0.1", (64, 48)).working_size == (64, 48)
    assert Distortion("jpeg10", (64, 48)).working_size == (64, 48)
    with pytest.raises(ValueError, match="downscale4"):
        Distortion("blur", (64, 64))


def test_downscale4_delivers_a_quarter_of_the_resolution(image_file):
    image = load_image(image_file)  # as the loader decodes it: resize's uint8 paths differ by layout, within 1
    assert torch.equal(image, torch.from_numpy(synthetic_image(96, 128, seed=3)).permute(2, 0, 1))
    low = PreResize((16, 16), distortion=Distortion("downscale4", (64, 64)))(image_file)
    assert torch.equal(low, resize(image, (16, 16), "bilinear", True))  # the paper's setting: in = out / 4
    # at in = out the loader up-scales the quarter-size image again: no more detail than the 16 px one holds
    up = PreResize((64, 64), distortion=Distortion("downscale4", (64, 64)))(image_file)
    assert torch.equal(up, resize(low, (64, 64), "bilinear", True))
    assert not torch.equal(up, resize(image, (64, 64), "bilinear", True))


def test_noise_has_sigma_0_1_of_the_range_and_repeats_per_file_in_validation(image_file, tmp_path):
    grey = tmp_path / "cls" / "grey.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(grey)
    transform = PreResize((64, 64), distortion=Distortion("noise0.1", (64, 64)))
    first, second = transform(grey), transform(grey)
    assert torch.equal(first, second)
    assert (first.float() - 128).std().item() == pytest.approx(25.5, rel=0.05)
    assert abs((first.float() - 128).mean().item()) < 1.0
    other = tmp_path / "other" / "grey.png"  # same pixels, another file: other noise
    other.parent.mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(other)
    assert not torch.equal(transform(other), first)


def test_noise_is_random_in_training(image_file):
    transform = PreResize((64, 64), augment=True, scale=(1.0, 1.0), ratio=(1.0, 1.0),
                          distortion=Distortion("noise0.1", (64, 64)))  # fmt: skip
    torch.manual_seed(0)
    a = transform(image_file)
    b = transform(image_file)
    assert not torch.equal(a, b) and not torch.equal(a, b.flip(-1))


def test_jpeg10_is_pillows_quality_10_at_the_working_size(image_file):
    image = torch.from_numpy(synthetic_image(96, 128, seed=3)).permute(2, 0, 1).contiguous()
    out = PreResize((48, 48), distortion=Distortion("jpeg10", (48, 48)))(image_file)
    small = resize(image, (48, 48), "bilinear", True)
    buffer = io.BytesIO()
    Image.fromarray(small.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=10)
    expected = torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(out, expected)
    assert (out.float() - small.float()).abs().mean() > 3  # quality 10 is visibly lossy


def test_none_changes_nothing(image_file):
    plain = PreResize((40, 40))(image_file)
    assert torch.equal(PreResize((40, 40), distortion=Distortion("none", (40, 40)))(image_file), plain)


def test_config_validates_and_the_folder_data_applies_it(tmp_path):
    with pytest.raises(ConfigError, match=r"distortion = 'blur'.*downscale4"):
        TrainConfig(distortion="blur")
    assert set(DISTORTIONS) == {"none", "downscale4", "noise0.1", "jpeg10"}
    data = colour_folders(tmp_path / "data", per_class=3)
    clean = FolderData(TrainConfig(data=str(data), out_size=32, in_size=32))
    noisy = FolderData(TrainConfig(data=str(data), out_size=32, in_size=32, distortion="noise0.1"))
    low = FolderData(TrainConfig(data=str(data), out_size=32, in_size=8, distortion="downscale4"))
    path = clean.val_samples[0].path
    assert not torch.equal(clean.eval_transform(path), noisy.eval_transform(path))
    assert torch.equal(noisy.eval_transform(path), noisy.eval_transform(path))
    assert low.eval_transform(path).shape == (3, 8, 8)
