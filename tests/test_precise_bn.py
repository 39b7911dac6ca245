"""Precise BatchNorm draws a number of augmented training images in whole training batches (at least one), passing
over a smaller training set again with new augmentations, the same images for the same seed and epoch."""

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


def test_a_smaller_training_set_is_passed_over_again_with_other_augmentations(data):
    n = data.train_size
    asked = 2 * n + 8 - (2 * n) % 8  # more than two passes, in whole batches
    loader = data.precise_bn_loader(asked, epoch=0)
    assert sum(sizes(loader)) == asked
    passes = loader.dataset.datasets
    assert [len(p) for p in passes] == [n, n, asked - 2 * n]
    assert len({p.dataset.stream for p in passes}) == 3  # each pass drawn from its own stream: new augmentations
    assert sorted(k for _, k in passes[0].indices) == list(range(n))  # every image once per full pass


def test_the_same_draw_for_the_same_epoch_and_another_for_the_next(data):
    first = [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=0)]
    assert first == [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=0)]
    assert first != [labels.tolist() for _, labels in data.precise_bn_loader(32, epoch=1)]
