"""Detection: exact box mapping, the detector sees the resizer's output, mAP by hand, readers, short runs, Ma §5.3."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from taskresize.data.builtin.shapes import DET_CLASSES, generate_detection, voc_annotation_xml
from taskresize.data.formats.detection import (
    PAD_COLOUR,
    VOC_DETECTION_CLASSES,
    DetSample,
    LetterboxResize,
    boxes_to_input,
    boxes_to_original,
    letterbox_size,
    scan_detection,
)
from taskresize.errors import BackboneError, DataError, TaskresizeError
from taskresize.resizers.warps import SeparableWarp
from taskresize.training.config import TrainConfig
from taskresize.training.run import evaluate, load_checkpoint
from taskresize.training.tasks.detection import DetectionTask, detect_unzoomed
from test_segmentation import easy_pairs

from helpers import cli


def task_for(
    backbone="torchvision:ssdlite320_mobilenet_v3_large", in_size=64, out_size=32, resizer="bilinear", classes=1
):
    cfg = TrainConfig.from_dict(
        {"task": "detection", "backbone": backbone, "in_size": in_size, "out_size": out_size, "resizer": resizer}
    )
    return DetectionTask(cfg.to_dict(), num_outputs=classes + 1)


def extent(mask):
    """Continuous box ``(x1, y1, x2, y2)`` of the True pixels of ``mask`` ``(H, W)``."""
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    return [cols[0].item(), rows[0].item(), cols[-1].item() + 1, rows[-1].item() + 1]


def test_boxes_map_exactly_through_letterbox_resizer_and_back():
    image = torch.zeros(3, 64, 128, dtype=torch.uint8)
    image[:, 8:40, 16:48] = 255  # box (16, 8, 48, 40)
    boxes = torch.tensor([[16.0, 8.0, 48.0, 40.0]], dtype=torch.float64)
    canvas, mapped, scale = LetterboxResize((64, 64), method="area").apply(image, boxes)
    assert canvas.shape == (3, 64, 64) and scale.tolist() == [0.5, 0.5]
    assert mapped.tolist() == [[8.0, 4.0, 24.0, 20.0]] == [extent((canvas == 255).all(0))]
    assert (canvas[:, 32:] == torch.tensor(PAD_COLOUR, dtype=torch.uint8).view(3, 1, 1)).all()  # padded below
    assert torch.equal(boxes_to_original(mapped, scale), boxes)

    task = task_for(resizer="area").eval()  # the resizer maps 64 -> 32: boxes scale by 0.5 again
    target = {"boxes": mapped.float(), "labels": torch.tensor([1]), "iscrowd": torch.tensor([0])}
    resized = task.resize(canvas[None])[0]
    white = (resized - (255 - task.mean[0]) / task.std[0]).abs().amax(0) < 1e-5
    assert task.detector_targets([target])[0]["boxes"].tolist() == [[4.0, 2.0, 12.0, 10.0]] == [extent(white)]

    flipped = set()
    for seed in range(6):  # flips move the box with the image
        torch.manual_seed(seed)
        canvas, mapped, _ = LetterboxResize((64, 64), method="area", augment=True).apply(image, boxes)
        assert mapped.tolist() == [extent((canvas == 255).all(0))]
        flipped.add(mapped[0, 0].item())
    assert flipped == {8.0, 40.0}


@pytest.mark.parametrize("height, width", [(50, 75), (75, 50), (33, 97), (640, 480), (1, 300)])
def test_letterbox_keeps_the_aspect_ratio_and_the_whole_image(height, width):
    size = (64, 80)
    new_h, new_w = letterbox_size(height, width, size)
    assert new_h <= 64 and new_w <= 80 and (new_h == 64 or new_w == 80)
    assert abs(new_h / new_w - height / width) <= max(1 / new_w, 1 / new_h) * height / width + 1 / new_w
    image = torch.full((3, height, width), 200, dtype=torch.uint8)
    whole = torch.tensor([[0.0, 0.0, width, height], [1.5, 0.25, width / 2, height / 3]], dtype=torch.float64)
    canvas, mapped, scale = LetterboxResize(size).apply(image, whole)
    assert mapped[0].tolist() == [0.0, 0.0, new_w, new_h] == extent((canvas == 200).all(0))  # image = its box
    assert torch.allclose(boxes_to_original(mapped, scale), whole, rtol=0, atol=1e-12)
    assert torch.allclose(boxes_to_input(whole, scale), mapped)


@pytest.mark.parametrize(
    "backbone, out_size, body_size",
    [("torchvision:fasterrcnn_mobilenet_v3_large_fpn", 48, 64), ("torchvision:ssdlite320_mobilenet_v3_large", 48, 48)],
)
def test_the_detector_body_sees_exactly_the_resizer_output(backbone, out_size, body_size):
    task = task_for(backbone, in_size=96, out_size=out_size, resizer="downsizenet")
    if "fasterrcnn" in backbone:  # anchors and proposal counts scaled from torchvision's ~800 px images
        assert task.backbone.rpn.anchor_generator.sizes[0] == tuple(s * out_size / 800 for s in (32, 64, 128, 256, 512))
        assert task.backbone.rpn._post_nms_top_n == {"training": 100, "testing": 50}
        assert task.backbone.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    seen = []
    task.backbone.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    images = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 40.0, 30.0]]), "labels": torch.tensor([1]), "iscrowd": torch.tensor([0])}
    ] * 2
    task.train()
    losses = task(images, task.detector_targets(targets))
    assert all(torch.isfinite(v) for v in losses.values())
    task.eval()
    with torch.no_grad():
        detections = task(images)
        expected = task.resize(images)
    assert len(detections) == 2 and {"boxes", "scores", "labels"} <= set(detections[0])
    for body_input in seen:
        assert body_input.shape == (2, 3, body_size, body_size)
        assert torch.equal(body_input[..., :out_size, :out_size], expected)  # no normalisation, no resize
        assert not body_input[..., out_size:, :].any() and not body_input[..., out_size:].any()  # zero padding


TWO_STAGE, ONE_STAGE = "torchvision:fasterrcnn_mobilenet_v3_large_fpn", "torchvision:ssdlite320_mobilenet_v3_large"


def a_batch(size=64):
    """Two uint8 images at ``size`` and their targets in that frame (two boxes, then one)."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    targets = [
        {"boxes": torch.tensor([[8.0, 4.0, 40.0, 30.0], [30.0, 36.0, 60.0, 62.0]]), "labels": torch.tensor([1, 1]),
         "iscrowd": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[2.0, 20.0, 22.0, 50.0]]), "labels": torch.tensor([1]), "iscrowd": torch.tensor([0])},
    ]  # fmt: skip
    return images, targets


def silent(task):
    task.log = lambda *args, **kwargs: None  # no trainer here
    return task


@pytest.mark.parametrize("backbone", [TWO_STAGE, ONE_STAGE])
def test_the_uniform_path_is_the_detector_on_the_resized_images_and_scaled_targets(backbone):
    task = silent(task_for(backbone, in_size=64, out_size=48)).train()
    images, targets = a_batch()
    torch.manual_seed(1)  # Faster R-CNN samples proposals at random
    loss = task.training_step((images, targets), 0)
    torch.manual_seed(1)
    scaled = [{"boxes": t["boxes"] * 0.75, "labels": t["labels"]} for t in targets]
    expected = task.backbone(list(task.resizer(task.normalize(images), (48, 48))), scaled)
    assert torch.equal(loss, sum(expected.values()))  # bit for bit


def uniform_warp_inputs(backbone, size=(48, 40)):
    task = task_for(backbone, in_size=64, out_size=size)
    torch.manual_seed(0)
    images = list(torch.randn(2, 3, *size))
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # fmt: skip
    return task.backbone, images, targets, SeparableWarp.uniform(2, size, like=images[0])


@pytest.mark.parametrize(
    "backbone",
    [TWO_STAGE, ONE_STAGE, "torchvision:retinanet_resnet50_fpn", "torchvision:fcos_resnet50_fpn"],
)
def test_the_detector_split_through_the_uniform_warp_is_the_detector(backbone):
    """Every supported family's steps, run explicitly around the unzoom: through the uniform warp (an identity
    unzoom, up to float rounding) they are the detector's own forward, losses and detections alike."""
    detector, images, targets, warp = uniform_warp_inputs(backbone)
    detector.train()
    torch.manual_seed(1)
    expected = detector(images, targets)
    torch.manual_seed(1)
    got = detect_unzoomed(detector, images, warp, targets)
    assert list(got) == list(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5)
    detector.eval()
    with torch.no_grad():
        expected, got = detector(images), detect_unzoomed(detector, images, warp)
    for mine, theirs in zip(got, expected, strict=True):
        assert set(mine) == set(theirs) and len(mine["boxes"]) > 0
        for key in theirs:
            torch.testing.assert_close(mine[key], theirs[key], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backbone", [TWO_STAGE, ONE_STAGE])
def test_through_the_separable_sampler_at_its_start_the_losses_are_its_base_resizes(backbone):
    """At the identity start the sampler is its base resize (antialiased bilinear), so the losses, computed on the
    unzoomed features, are the uniform path's losses with that resize."""
    warped = silent(task_for(backbone, in_size=64, out_size=48, resizer="saliency-separable")).train()
    plain = silent(task_for(backbone, in_size=64, out_size=48, resizer="bilinear")).train()
    plain.backbone.load_state_dict(warped.backbone.state_dict())
    images, targets = a_batch()
    for task in (warped, plain):
        torch.manual_seed(1)
        task.losses = task(images, task.detector_targets(targets))
    assert list(warped.losses) == list(plain.losses)
    for name in plain.losses:
        torch.testing.assert_close(warped.losses[name], plain.losses[name], atol=1e-4, rtol=1e-3)


def a_warping_task(backbone):
    """A detection task behind a separable saliency sampler whose warp is far from uniform."""
    task = silent(task_for(backbone, in_size=64, out_size=48, resizer="saliency-separable"))
    torch.manual_seed(1)  # whatever the detector drew before
    for layer in task.resizer.net:
        if isinstance(layer, nn.Conv2d):
            layer.reset_parameters()
    nn.init.normal_(task.resizer.net[-1].weight, std=5.0)
    images, targets = a_batch()
    _, warp = task.resizer.zoom(task.normalize(images), task.out_size)
    uniform = SeparableWarp.uniform(2, task.out_size, like=warp.x)
    assert (warp.x - uniform.x).abs().max() > 0.05 and (warp.y - uniform.y).abs().max() > 0.05
    return task, images, targets


@pytest.mark.parametrize("backbone", [TWO_STAGE, ONE_STAGE])
def test_through_a_warp_the_heads_get_unzoomed_features_and_the_uniformly_scaled_targets(backbone, monkeypatch):
    task, images, targets = a_warping_task(backbone)
    detector = task.backbone
    extracted, headed, given = [], [], []
    detector.backbone.register_forward_hook(lambda module, args, out: extracted.append(out))

    def spy(into, index):
        return lambda module, args: into.append(args[index])  # returns None: the call goes on unchanged

    if hasattr(detector, "roi_heads"):  # Faster R-CNN: the region proposals' and the boxes' heads
        detector.rpn.register_forward_pre_hook(spy(headed, 1))
        detector.rpn.register_forward_pre_hook(spy(given, 2))
        detector.roi_heads.register_forward_pre_hook(spy(given, 3))
    else:  # SSDlite: its head's features, and the targets its loss compares the head's outputs with
        detector.head.register_forward_pre_hook(spy(headed, 0))
        loss = detector.compute_loss
        monkeypatch.setattr(detector, "compute_loss", lambda t, *rest: (given.append(t), loss(t, *rest))[1])
    task.train()
    task.training_step((images, targets), 0)
    expected = task.detector_targets(targets)  # the boxes scaled by out / in, as on the uniform path
    assert given and all(
        torch.equal(g["boxes"], e["boxes"]) and torch.equal(g["labels"], e["labels"])
        for seen in given
        for g, e in zip(seen, expected, strict=True)
    )
    zoomed, unzoomed = (
        list(extracted[0].values()),
        list(headed[0].values() if isinstance(headed[0], dict) else headed[0]),
    )
    assert [z.shape for z in zoomed] == [u.shape for u in unzoomed]  # the uniform path's cells
    assert not torch.allclose(zoomed[0], unzoomed[0])  # not the warped image's features

    task.eval()
    with torch.no_grad():
        task.validation_step((images, targets), 0)
    predicted = task.val_results[0][0]["boxes"]
    assert len(predicted) and (predicted >= 0).all() and (predicted <= 64 + 1e-3).all()  # the image's frame


@pytest.mark.parametrize("backbone", [TWO_STAGE, ONE_STAGE])
def test_the_detection_loss_reaches_the_sampler_through_the_zoom_and_the_unzoom(backbone):
    task, images, targets = a_warping_task(backbone)
    task.train()
    task.training_step((images, targets), 0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.resizer.parameters() if p.ndim > 1)
    task.zero_grad()
    # the zoomed image cut from the graph: the gradient comes through the unzoom of the features alone
    resized, warp = task.resizer.zoom(task.normalize(images), task.out_size)
    torch.manual_seed(1)
    losses = detect_unzoomed(task.backbone, list(resized.detach()), warp, task.detector_targets(targets))
    sum(losses.values()).backward()
    assert task.resizer.net[0].weight.grad.abs().sum() > 0

    start = silent(task_for(backbone, in_size=64, out_size=48, resizer="saliency-separable")).train()
    start.training_step((images, targets), 0).backward()  # the identity start learns: its last layer moves
    assert start.resizer.net[-1].weight.grad.abs().sum() > 0


def test_a_detector_that_cannot_be_split_or_a_warp_without_inverse_is_refused():
    warp = SeparableWarp.uniform(1, (32, 32), like=torch.zeros(()))
    stand_in = FixedDetections([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}])
    with pytest.raises(BackboneError, match=r"cannot be split into a feature extractor and heads.*bilinear"):
        detect_unzoomed(stand_in, [torch.zeros(3, 32, 32)], warp)
    task = silent(task_for(resizer="saliency")).train()
    with pytest.raises(TaskresizeError, match=r"without an exact inverse.*use saliency-separable"):
        task.training_step(a_batch(), 0)
    warped, plain = task_for(resizer="saliency-separable"), task_for()
    assert warped.flops()["backbone"] > plain.flops()["backbone"]  # the unzoom of the features is counted


class FixedDetections(nn.Module):
    """A stand-in detector with known outputs (boxes in the detector's frame)."""

    def __init__(self, detections):
        super().__init__()
        self.detections = detections

    def forward(self, images, targets=None):
        return self.detections


def test_map_equals_the_hand_computed_value():
    task = task_for(in_size=64, out_size=32, classes=2).eval()
    truth = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], dtype=torch.float32)
    target = {"boxes": truth, "labels": torch.tensor([1, 1, 1]), "iscrowd": torch.tensor([0, 0, 1])}
    # in the input frame: a perfect hit (0.9), a miss (0.8), a hit on the crowd box (0.75: ignored), and a
    # box with IoU 0.62 with the second object (0.7)
    predicted = torch.tensor([[0, 0, 10, 10], [60, 0, 64, 4], [40, 40, 50, 50], [20, 20, 30, 26.2]])
    scores = torch.tensor([0.9, 0.8, 0.75, 0.7])
    task.backbone = FixedDetections([{"boxes": predicted / 2, "scores": scores, "labels": torch.ones(4, dtype=int)}])
    task.validation_step((torch.zeros(1, 3, 64, 64, dtype=torch.uint8), [target]), 0)
    result = task.epoch_metrics()
    # COCO's 101-point AP. IoU 0.5-0.6 (3 thresholds): precision 1 up to recall 0.5 (51 points), then 2/3 (50).
    # IoU 0.65-0.95 (7 thresholds): recall stops at 0.5, AP = 51/101.
    ap50 = (51 + 50 * 2 / 3) / 101
    assert result["val/map50"].item() == pytest.approx(ap50, abs=1e-6)
    assert result["val/map"].item() == pytest.approx((3 * ap50 + 7 * 51 / 101) / 10, abs=1e-6)
    # a second class with one object found exactly: mAP is the mean over classes, and each class has its own
    target2 = {"boxes": torch.tensor([[5.0, 40, 15, 50]]), "labels": torch.tensor([2]), "iscrowd": torch.tensor([0])}
    hit = {"boxes": target2["boxes"] / 2, "scores": torch.tensor([0.5]), "labels": torch.tensor([2])}
    task.backbone = FixedDetections([hit])
    task.validation_step((torch.zeros(1, 3, 64, 64, dtype=torch.uint8), [target2]), 1)
    metrics = {k: v.item() for k, v in task.epoch_metrics().items()}  # both images
    first = (3 * ap50 + 7 * 51 / 101) / 10
    names = task.class_names
    assert metrics[f"val/class/{names[0]}_map"] == pytest.approx(first, abs=1e-6)
    assert metrics[f"val/class/{names[1]}_map"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["val/map"] == pytest.approx((first + 1) / 2, abs=1e-6)


def write_voc(root, ids_objects, size=(40, 60), difficult=()):
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for stem, objects in ids_objects.items():
        Image.new("RGB", (size[1], size[0])).save(root / "JPEGImages" / f"{stem}.jpg")
        xml = voc_annotation_xml(f"{stem}.jpg", size, objects)
        for name in difficult:
            xml = xml.replace(f"<name>{name}</name><difficult>0", f"<name>{name}</name><difficult>1")
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
    stems = list(ids_objects)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(stems[1:]) + "\n")
    (root / "ImageSets/Main/val.txt").write_text(stems[0] + "\n")
    return root


def test_voc_reader_converts_one_based_boxes_and_finds_classes(tmp_path):
    objects = {"a": [("dog", (0, 0, 9, 19))], "b": [("cat", (5, 6, 7, 8)), ("dog", (1, 1, 2, 2))]}
    root = write_voc(tmp_path / "voc", objects, difficult=("cat",))
    splits = scan_detection(root, None, 0.2, seed=0)
    assert splits.classes == list(VOC_DETECTION_CLASSES)  # VOC names only: VOC's 20 classes, VOC's labels
    assert splits.val == [DetSample(str(root / "JPEGImages/a.jpg"), ((0.0, 0.0, 10.0, 20.0),), (12,), (False,))]
    assert splits.train[0].boxes == ((5.0, 6.0, 8.0, 9.0), (1.0, 1.0, 3.0, 3.0))
    assert splits.train[0].difficult == (True, False)
    other = write_voc(tmp_path / "other", {"a": [("owl", (0, 0, 1, 1))], "b": [("fox", (0, 0, 1, 1))]})
    assert scan_detection(other, None, 0.2, seed=0).classes == ["fox", "owl"]  # the names found, sorted
    generated = generate_detection(tmp_path / "det", count=5, size=64)
    assert scan_detection(generated, None, 0.2, 0).classes == list(DET_CLASSES)
    (other / "classes.txt").write_text("owl\n")
    with pytest.raises(DataError, match=r"annotations name classes \['fox'\]"):
        scan_detection(other, None, 0.2, 0)


def test_coco_reader(tmp_path):
    (tmp_path / "img").mkdir()
    coco = {
        "images": [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "y.png"}],
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 0, 5]},  # zero width: dropped
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    splits = scan_detection(path, tmp_path / "img", 0.5, seed=0)
    assert splits.classes == ["a", "b"]
    samples = {s.image: s for s in splits.train + splits.val}
    first = str(tmp_path / "img/x.png")
    assert samples[first] == DetSample(first, ((1.0, 2.0, 4.0, 6.0), (0.0, 0.0, 5.0, 5.0)), (2, 1), (False, True))
    assert samples[str(tmp_path / "img/y.png")].boxes == ()
    with pytest.raises(DataError, match="--images DIR"):
        scan_detection(path, None, 0.5, 0)
    with pytest.raises(DataError, match="does not exist"):
        scan_detection(tmp_path / "missing.json", None, 0.5, 0)


def easy_detection(root, count=60, size=64, seed=0):
    """An easy VOC set: one or two bright discs on noise, one class."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    objects, images = {}, {}
    for i in range(count):
        image = rng.normal(90, 20, (size, size, 3))
        found = []
        for _ in range(rng.integers(1, 3)):
            r, (cy, cx) = rng.uniform(6, 12), rng.uniform(13, size - 13, 2)
            disc = (y - cy) ** 2 + (x - cx) ** 2 < r * r
            image[disc] = (230, 200, 60)
            rows, cols = np.flatnonzero(disc.any(1)), np.flatnonzero(disc.any(0))
            found.append(("disc", (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))))
        objects[f"{i:03d}"], images[f"{i:03d}"] = found, image
    n_val = count // 5
    order = list(objects)[n_val:] + list(objects)[:n_val]  # write_voc puts the first id in val: rotate
    write_voc(root, {k: objects[k] for k in order[-1:] + order[:-1]}, size=(size, size))
    (root / "ImageSets/Main/val.txt").write_text("\n".join(list(objects)[:n_val]) + "\n")
    (root / "ImageSets/Main/train.txt").write_text("\n".join(list(objects)[n_val:]) + "\n")
    for stem, image in images.items():
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
    return root


def mean_box_map50(splits):
    """mAP@0.5 of the trivial predictor: the training set's mean box, score 1, once in every validation image."""
    mean = torch.tensor([b for s in splits.train for b in s.boxes]).mean(0)
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
    for sample in splits.val:
        metric.update(
            [{"boxes": mean[None], "scores": torch.ones(1), "labels": torch.ones(1, dtype=int)}],
            [{"boxes": torch.tensor(sample.boxes), "labels": torch.tensor(sample.labels)}],
        )
    return metric.compute()["map_50"].item()


def test_a_segmentation_resizer_loads_frozen_into_a_detection_run_that_learns(tmp_path):
    seg_run, det_run = tmp_path / "seg", tmp_path / "det"
    common = ["--in-size", 64, "--out-size", 32, "--batch-size", 8, "--workers", 0, "--precise-bn", 16]
    common += ["--resizer", "downsizenet"]
    seg_data = easy_pairs(tmp_path / "segdata", count=16, size=64)
    seg = ["--task", "segmentation", "--data", seg_data, "--epochs", 1, "--output", seg_run]
    assert cli("train", *seg, *common) == 0
    data = easy_detection(tmp_path / "detdata")
    det = ["--task", "detection", "--data", data, "--backbone", "ssdlite320_mobilenet_v3_large", "--epochs", 5]
    det += ["--lr", 0.02, "--init-resizer", seg_run, "--freeze-resizer", "--output", det_run]
    assert cli("train", *det, *common, "--out-size", 64) == 0
    metrics = json.loads((det_run / "metrics.json").read_text())
    trivial = mean_box_map50(scan_detection(data, None, 0.2, 0))
    assert metrics["map50"] > trivial + 0.05, (metrics, trivial)
    assert 0 <= metrics["map"] <= metrics["map50"] and metrics["flops_backbone"] > 0 and metrics["flops_resizer"] > 0

    # Ma §5.3: the segmentation-trained DownsizeNet, frozen, is unchanged after the detection run
    trained = load_file(seg_run / "resizer.safetensors")
    after = load_checkpoint(det_run / "last.ckpt")["state_dict"]
    assert trained and all(torch.equal(trained[k], after[f"resizer.{k}"]) for k in trained)
    shipped = load_file(det_run / "resizer.safetensors")
    assert all(torch.equal(trained[k], shipped[k]) for k in trained)
    assert cli("eval", "--run", det_run) == 0
    assert json.loads((det_run / "eval.json").read_text())["map50"] == pytest.approx(metrics["map50"], abs=1e-6)


def test_detection_user_errors_are_one_line(tmp_path, capsys):
    data = write_voc(tmp_path / "voc", {"a": [("dog", (0, 0, 9, 19))], "b": [("dog", (1, 1, 2, 2))]})
    base = ["train", "--task", "detection", "--data", data, "--in-size", 32, "--out-size", 32, "--workers", 0]
    assert cli(*base, "--backbone", "maskrcnn_resnet50_fpn", "--output", tmp_path / "r1") == 2
    assert cli(*base, "--backbone", "fasterrcnn_mobilenet", "--output", tmp_path / "r2") == 2
    assert cli("train", "--task", "detection", "--data", tmp_path / "x.json", "--output", tmp_path / "r3") == 2
    err = capsys.readouterr().err
    assert "needs masks or keypoints" in err and "Did you mean 'torchvision:fasterrcnn_mobilenet_v3_large" in err
    assert "x.json does not exist" in err and "Traceback" not in err


def test_eval_on_other_data_uses_its_validation_split_and_checks_the_classes(tmp_path):
    from taskresize.training.tasks.detection import DetectionData

    data = write_voc(tmp_path / "a", {"a": [("owl", (0, 0, 9, 19))], "b": [("owl", (1, 1, 2, 2))]})
    other = write_voc(tmp_path / "b", {"c": [("owl", (0, 0, 3, 3))], "d": [], "e": [("owl", (1, 1, 2, 2))]})
    cfg = TrainConfig.from_dict({"task": "detection", "data": str(data), "out_size": 32})
    module = DetectionData(cfg, eval_root=str(other))
    assert [s.image for s in module.val_samples] == [str(other / "JPEGImages/c.jpg")] and module.root == str(other)
    foreign = write_voc(tmp_path / "f", {"a": [("fox", (0, 0, 9, 19))], "b": [("fox", (1, 1, 2, 2))]})
    with pytest.raises(DataError, match=r"has classes \['fox'\]; the run was trained on \['owl'\]"):
        DetectionData(cfg, eval_root=str(foreign))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU")
def test_map_under_ddp_with_uneven_shards_equals_one_process(tmp_path):
    """Two processes holding 2 and 1 validation images: the run's mAP is computed over all 3, as one process
    evaluating the same checkpoint computes it (torchmetrics' list states used to break on uneven ranks)."""
    root = generate_detection(tmp_path / "voc", count=15, size=64)  # 3 validation images
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "taskresize", "train",
               "--task", "detection", "--data", str(root), "--out-size", "64", "--epochs", "1", "--batch-size", "2",
               "--workers", "0", "--precise-bn", "0", "--output", str(run)]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["val_images"] == 3
    again = evaluate(run)
    for key in ("map50", "map"):
        assert again[key] == pytest.approx(trained[key], abs=1e-6), key
