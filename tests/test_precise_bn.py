"""Precise BatchNorm draws a number of training images (the whole training set where it has fewer), in whole
training batches, at least one, the same images for the same seed and epoch."""

import pytest

from taskresize.training.config import TrainConfig
from taskresize.training.registry import get_task


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path / "cache"))
    spec = get_task("classification")
    cfg = TrainConfig.from_dict({**spec.example(), "workers": 0, "batch_size": 8, "output": str(tmp_path / "run")})
    module = spec.data(cfg)
    module.setup("fit")
    return module


def sizes(loader):
    return [len(labels) for _, labels in loader]


@pytest.mark.parametrize(("images", "batches"), [(1, [8]), (8, [8]), (20, [8, 8]), (24, [8, 8, 8])])
def test_the_images_asked_for_in_whole_training_batches_at_least_one(data, images, batches):
    assert sizes(data.precise_bn_loader(images, epoch=0)) == batches


def test_the_whole_training_set_where_it_has_fewer_images(data):
    total = data.train_size - data.train_size % 8
    assert sum(sizes(data.precise_bn_loader(10**9, epoch=0))) == total


def test_the_same_draw_for_the_same_epoch_and_another_for_the_next(data):
    first = [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=0)]
    assert first == [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=0)]
    assert first != [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=1)]
