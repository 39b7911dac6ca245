"""The builtin-small-objects set: deterministic scenes, one small textured object, three task variants."""

import numpy as np
import pytest
from PIL import Image

from taskresize.data.builtin.small_objects import (
    CLASSES,
    SEG_CLASSES,
    render,
    scene_label,
    small_objects_dataset,
    small_objects_root,
)
from taskresize.data.formats.detection import scan_detection
from taskresize.data.formats.segmentation import scan_segmentation
from taskresize.errors import DataError


def test_render_is_deterministic_and_the_box_is_the_small_object():
    image, box = render(2, 7, 512)
    again, box_again = render(2, 7, 512)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert np.array_equal(image, again) and box == box_again
    x0, y0, x1, y1 = box
    assert 24 <= x1 - x0 + 1 <= 49 and 24 <= y1 - y0 + 1 <= 49
    assert not np.array_equal(render(2, 8, 512)[0], image)


def test_the_texture_is_lost_by_a_uniform_resize_to_64():
    # inside the object's frame, the texture's contrast at 512 px and after an antialiased resize to 64 px
    image, (x0, y0, x1, y1) = render(1, 3, 512)  # vertical stripes
    inner = image[y0 + 4 : y1 - 3, x0 + 4 : x1 - 3].astype(float)
    small = np.asarray(Image.fromarray(image).resize((64, 64), Image.BILINEAR)).astype(float)
    inner_small = small[(y0 + 4) // 8 + 1 : (y1 - 3) // 8, (x0 + 4) // 8 + 1 : (x1 - 3) // 8]
    assert inner.std() > 20
    assert inner_small.std() < inner.std() / 4


def test_scene_labels_are_balanced():
    labels = [scene_label(i) for i in range(400)]
    assert [labels.count(c) for c in range(len(CLASSES))] == [100] * 4


def test_the_three_variants_are_generated_and_read_by_the_real_readers(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path))
    classification = small_objects_dataset("classification", count=2, size=64)
    assert sorted(p.name for p in classification.iterdir() if p.is_dir()) == sorted(CLASSES)
    assert len(list((classification / "dots").glob("*.png"))) == 2

    seg = small_objects_dataset("segmentation", count=10, size=64)
    splits = scan_segmentation(seg, 0.2, 0)
    assert splits.classes == list(SEG_CLASSES) and len(splits.train) == 8 and len(splits.val) == 2
    mask = np.asarray(Image.open(seg / "SegmentationClass" / "00003.png"))
    assert set(np.unique(mask)) == {0, scene_label(3) + 1}

    det = small_objects_dataset("detection", count=10, size=64)
    splits = scan_detection(det, None, 0.2, 0)
    assert splits.classes == list(CLASSES) and len(splits.train) + len(splits.val) == 10

    assert small_objects_root("builtin-seg", "segmentation") is None
    with pytest.raises(DataError, match="from 64 to 2048"):
        small_objects_root("builtin-small-objects@12", "classification")
    with pytest.raises(DataError, match="no iqa variant"):
        small_objects_root("builtin-small-objects", "iqa")
