"""Class folders, splits, the pre-resize path and the built-in dataset."""

import pytest
import torch
from PIL import Image

from taskresize.data.builtin import classification as builtin
from taskresize.data.collate import collate_classes, collate_histograms, collate_label_maps, collate_targets
from taskresize.data.formats.folders import scan_class_folders, split_samples, train_val_folders
from taskresize.data.transforms import PreResize
from taskresize.errors import DataError

from helpers import colour_folders


def test_scan_and_split_are_deterministic_and_stratified(tmp_path):
    root = colour_folders(tmp_path / "d", per_class=10)
    folders = scan_class_folders(root)
    assert folders.classes == ["blue", "green", "red"] and len(folders.samples) == 30
    train, val = split_samples(folders.samples, 0.2, seed=0)
    assert [sum(s.label == c for s in val) for c in range(3)] == [2, 2, 2]
    assert split_samples(folders.samples, 0.2, seed=0) == (train, val)
    assert split_samples(folders.samples, 0.2, seed=1)[1] != val
    assert not {s.path for s in train} & {s.path for s in val}


def test_train_and_val_subfolders_are_used_as_given(tmp_path):
    colour_folders(tmp_path / "train", per_class=4)
    colour_folders(tmp_path / "val", per_class=2, seed=1)
    classes, train, val = train_val_folders(tmp_path, 0.5, seed=0)
    assert classes == ["blue", "green", "red"] and len(train) == 12 and len(val) == 6


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        scan_class_folders(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        scan_class_folders(tmp_path / "empty")
    (tmp_path / "empty" / "cats").mkdir()
    (tmp_path / "empty" / "cats" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="cats has no images"):
        scan_class_folders(tmp_path / "empty")
    colour_folders(tmp_path / "train", per_class=2)
    (tmp_path / "val" / "cats").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "val" / "cats" / "x.png")
    with pytest.raises(DataError, match="expected the training classes"):
        train_val_folders(tmp_path, 0.5, seed=0)


def test_pre_resize_without_augmentation_is_the_classic_resize(tmp_path):
    root = colour_folders(tmp_path / "d", per_class=1)
    path = scan_class_folders(root).samples[0].path
    image = PreResize((16, 20))(path)
    assert image.shape == (3, 16, 20) and image.dtype == torch.uint8
    from taskresize import resize
    from taskresize.data.decode import load_image

    # the JPEG decodes at half scale (Pillow's draft), still at least the size asked for
    assert torch.equal(image, resize(load_image(path, draft_size=(16, 20)), (16, 20), "bilinear", antialias=True))


def test_augmentation_varies_with_the_random_state(tmp_path):
    root = colour_folders(tmp_path / "d", per_class=1, size=64)
    path = scan_class_folders(root).samples[0].path
    transform = PreResize((16, 16), augment=True)
    torch.manual_seed(0)
    a = transform(path)
    torch.manual_seed(0)
    assert torch.equal(a, transform(path))
    assert not torch.equal(a, transform(path))


@pytest.mark.parametrize(
    "collate, targets, check",
    [
        (collate_classes, [1, 0], lambda t: t.dtype == torch.int64 and t.tolist() == [1, 0]),
        (collate_histograms, [torch.full((10,), 0.1)] * 2, lambda t: t.shape == (2, 10) and t.dtype == torch.float32),
        (collate_label_maps, [torch.zeros(4, 5, dtype=torch.uint8)] * 2,
         lambda t: t.shape == (2, 4, 5) and t.dtype == torch.int64),
        (collate_targets, [{"boxes": torch.zeros(0, 4)}, {"boxes": torch.ones(2, 4)}],
         lambda t: isinstance(t, list) and len(t[1]["boxes"]) == 2),
    ],
)  # fmt: skip
def test_every_collate_gives_a_channels_last_uint8_batch(collate, targets, check):
    images = [torch.full((3, 4, 5), i, dtype=torch.uint8) for i in range(2)]
    batch, collated = collate(list(zip(images, targets, strict=True)))
    assert batch.shape == (2, 3, 4, 5) and batch.dtype == torch.uint8
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
    assert torch.equal(batch[1], images[1]) and check(collated)


def test_builtin_dataset_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path))
    root = builtin.builtin_dataset(per_class=2, size=64)
    folders = scan_class_folders(root)
    assert folders.classes == sorted(builtin.CLASSES) and len(folders.samples) == 16
    first = (root / "disc-dots" / "00000.png").read_bytes()
    assert builtin.builtin_dataset(per_class=2, size=64) == root  # cached: not regenerated
    assert (root / "disc-dots" / "00000.png").read_bytes() == first
    assert (builtin.render(3, 7, 64) == builtin.render(3, 7, 64)).all()
    assert not (builtin.render(3, 7, 64) == builtin.render(3, 8, 64)).all()
