"""Object detection with a learned resizer in front of a torchvision detector (Ma et al. §5.1, §5.3, Tables 1, 6).

``uint8 letterboxed image (in_size) -> normalise -> resizer -> out_size -> detector``. torchvision's detectors
carry a ``GeneralizedRCNNTransform`` that normalises and resizes every image; here it is replaced by
:class:`PassThroughTransform`, which does neither, so the detector's body sees exactly the resizer's output
(padded at the bottom and right to the detector's ``size_divisible``, 32 for the FPN models, when ``out_size``
is not a multiple of it). Boxes go into the detector scaled by ``out / in`` and its predictions come back scaled
by ``in / out``, so mAP is computed in the resizer-input frame; IoU is invariant to scaling each axis, so this is
the mAP in the original images' coordinates. Difficult (VOC) and crowd (COCO) objects are not trained on and are
ignored by the metric (COCO's ``iscrowd`` rule).

Through a separable saliency sampler (a resizer that warps space, with an exact inverse) the detector is split as
in LZU (Thavamani et al., CVPR 2023, "Learning to Zoom and Unzoom"): its feature extractor (body and FPN) sees the
warped image, each feature map is *unzoomed*, resampled by the warp's inverse onto the cells it would have for the
image uniformly resized to ``out_size`` (:meth:`~taskresize.resizers.warps.SeparableWarp.unzoom`), and the heads,
their anchors, their losses and their detections work on those features, with the targets scaled by ``out / in``
exactly as on the uniform path. So the losses and the metrics are both computed in the image's frame, never in the
warped one (scores in the warped space flatter: Jin et al., ICLR 2022), and the sampler learns through the zoom and
the unzoom alike (:func:`detect_unzoomed`). The 2-D sampler has no exact inverse and is refused.

Anchors: torchvision's anchor sizes (32-512 px) are made for images of about 800 px (320 px for the ``_320``
model); for Faster R-CNN they are scaled by ``min(out_size) / 800`` (or ``/ 320``) so that they cover the same
fraction of the image. The detectors' score threshold is lowered to 0.001 so that mAP sees the whole ranking.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.retinanet import RetinaNet
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from taskresize.backbones import torchvision_model_name
from taskresize.data.builtin.shapes import DET_NAME, builtin_detection, builtin_root
from taskresize.data.builtin.small_objects import small_objects_root
from taskresize.data.collate import collate_targets
from taskresize.data.formats.detection import DetectionDataset, LetterboxResize, scan_detection
from taskresize.data.split import SPLIT_SEED
from taskresize.errors import BackboneError, DataError
from taskresize.flops import count_flops
from taskresize.resizers.warps import SeparableWarp, resize_with_warp, zooms
from taskresize.training.config import TrainConfig
from taskresize.training.registry import PER_CLASS, TaskSpec, register_task
from taskresize.training.tasks.base import ResizerTask
from taskresize.training.tasks.data import TaskData

DETECTOR_FAMILIES = ("fasterrcnn_", "fcos_", "retinanet_", "ssd")
EVAL_SCORE_THRESHOLD = 0.001


class PassThroughTransform(GeneralizedRCNNTransform):
    """torchvision's detector transform without its normalisation and resizing: it only batches (and pads)."""

    def normalize(self, image: Tensor) -> Tensor:
        return image

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, Any]:
        return image, target


def detection_model(name: str, num_classes: int, out_size: tuple[int, int]) -> nn.Module:
    """A randomly initialised torchvision detector for ``num_classes`` (background included) that takes images of
    ``out_size`` as they are (see the module docstring)."""
    model_name = torchvision_model_name(name, torchvision.models.detection, "detection")
    if not model_name.startswith(DETECTOR_FAMILIES):
        raise BackboneError(
            f"backbone {name!r} needs masks or keypoints to train; use a box detector "
            "(fasterrcnn_*, fcos_*, retinanet_*, ssd*), e.g. torchvision:fasterrcnn_mobilenet_v3_large_fpn"
        )
    kwargs: dict[str, Any] = {}
    if model_name.startswith("fasterrcnn_"):
        reference = 320 if "_320_" in model_name else 800
        area = out_size[0] * out_size[1] / reference**2

        def scaled(count: int, least: int) -> int:
            return max(least, min(count, round(count * area)))

        kwargs = {
            "rpn_post_nms_top_n_train": scaled(2000, 100),
            "rpn_post_nms_top_n_test": scaled(1000, 50),
            "box_batch_size_per_image": scaled(512, 64),
        }
    model = torchvision.models.get_model(
        model_name, weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
    )
    if model_name.startswith("fasterrcnn_"):
        factor = min(out_size) / reference
        anchors = model.rpn.anchor_generator
        sizes = tuple(tuple(size * factor for size in level) for level in anchors.sizes)
        model.rpn.anchor_generator = AnchorGenerator(sizes, anchors.aspect_ratios)
    old = model.transform
    model.transform = PassThroughTransform(
        min(out_size), max(out_size), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], size_divisible=old.size_divisible
    )
    if hasattr(model, "roi_heads"):
        model.roi_heads.score_thresh = EVAL_SCORE_THRESHOLD
    else:
        model.score_thresh = EVAL_SCORE_THRESHOLD
    return model


def detect_unzoomed(
    detector: nn.Module,
    images: list[Tensor],
    warp: SeparableWarp,
    targets: list[dict[str, Tensor]] | None = None,
) -> Any:
    """A torchvision detector's forward on warped ``images``, with its features unzoomed before its heads (LZU).

    The detector's own ``forward``, its feature extractor's output (body and FPN, on the warped images) passed
    through ``warp.unzoom`` (onto the cells of the image uniformly resized to ``warp.output_size`` and padded alike)
    by a forward hook that lives for this call only; so the heads, anchors, losses and post-processing run on the
    unzoomed features, ``targets`` are boxes of the image's frame at the output size (the uniform path's), and so
    are the detections; gradients reach the warp through the unzoom.

    Args:
        detector: a torchvision Faster R-CNN, RetinaNet, FCOS or SSD (SSDlite) model.
        images: the warped images, each ``(3, h, w)`` with ``(h, w) = warp.output_size``.
        warp: the warp that made ``images``.
        targets: boxes and labels per image (training mode only).

    Returns:
        The losses (training mode) or the detections (eval mode), as the detector's own ``forward`` returns them.

    Raises:
        BackboneError: a detector of another family (its heads cannot be told apart from its feature extractor).
    """
    if not isinstance(detector, GeneralizedRCNN | RetinaNet | FCOS | SSD):
        raise BackboneError(
            f"a {type(detector).__name__} cannot be split into a feature extractor and heads, so its losses could "
            "not be computed in the image's frame behind a warping resizer; use a torchvision Faster R-CNN, "
            "RetinaNet, FCOS or SSD detector, or a resizer that does not warp (e.g. bilinear)"
        )

    def unzoom(_: nn.Module, args: tuple[Tensor], features: Tensor | dict[str, Tensor]) -> Any:
        canvas = args[0].shape[-2:]  # the batch as the detector padded it
        if isinstance(features, Tensor):
            return warp.unzoom(features, canvas)
        return OrderedDict((name, warp.unzoom(level, canvas)) for name, level in features.items())

    hook = detector.backbone.register_forward_hook(unzoom)
    try:
        return detector(images, targets)
    finally:
        hook.remove()


class _ListInput(nn.Module):
    """Calls a detector with a batch as the list of images it expects (for FLOP counting); with ``unzoom``, as a
    warping resizer's detector runs (:func:`detect_unzoomed`, through the uniform warp: the same cost)."""

    def __init__(self, detector: nn.Module, unzoom: bool = False) -> None:
        super().__init__()
        self.detector, self.unzoom = detector, unzoom

    def forward(self, images: Tensor) -> Any:
        if self.unzoom:
            warp = SeparableWarp.uniform(images.shape[0], images.shape[-2:], like=images)
            return detect_unzoomed(self.detector, list(images), warp)
        return self.detector(list(images))


class DetectionTask(ResizerTask):
    """The detector's own losses; mAP@0.5 and mAP@[.5:.95] (COCO's definition, pycocotools) on validation."""

    def __init__(self, config: dict[str, Any], num_outputs: int, class_names: list[str] | None = None) -> None:
        super().__init__(config, num_outputs)
        self.class_names = class_names or [str(i) for i in range(1, num_outputs)]
        self.save_hyperparameters({"class_names": self.class_names})
        # one metric, so not a MetricCollection: a collection of one would only flatten its result dict, whose
        # `classes` (the labels `map_per_class` belongs to) is not a score; summary() makes the logged keys of it.
        # Not synced by torchmetrics: its list states break when processes hold different numbers of images
        # (a storage-size overflow in the gather); the images' results are gathered in on_validation_epoch_end.
        self.map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools", class_metrics=True,
                                        sync_on_compute=False)  # fmt: skip
        self.val_results: list[tuple[dict[str, Tensor], dict[str, Tensor]]] = []
        # COCO's protocol scores the 100 best detections per image; the metric keeps those and need not warn about more
        self.map.warn_on_many_detections = False
        in_h, in_w = self.cfg.input_size
        out_h, out_w = self.out_size
        self.register_buffer("to_out", torch.tensor([out_w / in_w, out_h / in_h] * 2), persistent=False)

    def build_backbone(self, num_outputs: int) -> nn.Module:
        return detection_model(self.cfg.backbone, num_outputs, self.out_size)

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None) -> Any:
        """uint8 images ``(B, 3, H, W)`` at the resizer's input size; ``targets`` with boxes at ``out_size``
        (:meth:`detector_targets`).

        Returns the detector's losses (training, with targets) or its detections at ``out_size`` (eval), in the
        image's frame scaled by ``out / in`` on every path: behind a resizer that warps, the detector's features are
        unzoomed before its heads (:func:`detect_unzoomed`).
        """
        resized, warp = resize_with_warp(self.resizer, self.normalize(images), self.out_size)
        if warp is None:
            return self.backbone(list(resized), targets)
        return detect_unzoomed(self.backbone, list(resized), warp, targets)

    def detector_targets(self, targets: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Targets in the detector's frame: boxes scaled from the input to the output size (whatever the resizer:
        a warping one's features are unzoomed to this frame); difficult, crowd and degenerate boxes left out."""
        result = []
        for target in targets:
            boxes = target["boxes"] * self.to_out
            keep = (target["iscrowd"] == 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            result.append({"boxes": boxes[keep], "labels": target["labels"][keep]})
        return result

    def training_step(self, batch: tuple[Tensor, list[dict[str, Tensor]]], batch_idx: int) -> Tensor:
        images, targets = batch
        losses = self(images, self.detector_targets(targets))
        loss = sum(losses.values())
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[Tensor, list[dict[str, Tensor]]], batch_idx: int) -> None:
        images, targets = batch
        detections = self(images)
        # scored in the images' frame: detections are in it at the output's scale on every path (behind a warp the
        # heads saw unzoomed features), so their boxes scale back by in / out
        predictions = [
            {"boxes": d["boxes"] / self.to_out, "scores": d["scores"], "labels": d["labels"]} for d in detections
        ]
        truth = [{"boxes": t["boxes"], "labels": t["labels"], "iscrowd": t["iscrowd"]} for t in targets]
        cpu = [({k: v.detach().cpu() for k, v in p.items()}, {k: v.cpu() for k, v in g.items()})
               for p, g in zip(predictions, truth, strict=True)]  # fmt: skip
        self.val_results.extend(cpu)

    def epoch_metrics(self) -> dict[str, Tensor]:
        """The validation metrics of the images seen since the epoch began, over every process's images."""
        results = self.val_results
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, results)  # every process scores every image
            # back in the validation set's order (process r holds images r, r + world, ...): COCO's matching
            # sorts detections by score, so equal scores are taken in image order, as in one process
            longest = max(len(part) for part in gathered)
            results = [part[i] for i in range(longest) for part in gathered if i < len(part)]
        if results:
            self.map.update([p for p, _ in results], [g for _, g in results])
        metrics = self.summary(self.map.compute())
        self.map.reset()
        return {k: v.to(self.device) for k, v in metrics.items()}

    def on_validation_epoch_end(self) -> None:
        metrics = self.epoch_metrics()
        self.val_results = []
        self.log_dict(metrics, prog_bar=True)

    def summary(self, result: dict[str, Tensor]) -> dict[str, Tensor]:
        """The logged metrics of a :class:`MeanAveragePrecision` result: mAP@0.5, mAP and each class's mAP."""
        # COCO reports -1 when there is nothing to evaluate (no ground truth); count that as 0
        metrics = {"val/map50": result["map_50"].clamp(min=0), "val/map": result["map"].clamp(min=0)}
        for label, value in zip(result["classes"].reshape(-1), result["map_per_class"].reshape(-1), strict=True):
            metrics[f"val/{PER_CLASS}{self.class_names[int(label) - 1]}_map"] = value.clamp(min=0)
        return metrics

    def train(self, mode: bool = True) -> DetectionTask:
        """A frozen detector still runs in training mode (it computes its losses only then, and the resizer learns
        from them), with its BatchNorm statistics fixed."""
        super().train(mode)
        if mode and self.cfg.freeze_backbone:
            self.backbone.train()
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def flops(self) -> dict[str, int]:
        """FLOPs per image of the resizer and of the detector (eval mode, a blank image at ``out_size``; a two-stage
        detector's second stage depends on how many proposals survive, so this is indicative). Behind a resizer
        that warps, the detector's count includes the unzoom of its features."""
        h, w = self.cfg.input_size
        unzoom = zooms(self.resizer)
        return {
            "resizer": count_flops(self.resizer, (1, 3, h, w), size=self.out_size),
            "backbone": count_flops(_ListInput(self.backbone, unzoom), (1, 3, *self.out_size)),
        }


class DetectionData(TaskData):
    """A VOC-layout folder, a COCO instances JSON (with ``--images``), or ``builtin-det[@SIZE]``; every image is
    letterboxed to the resizer's input size in the loader. Augmentation: horizontal flip."""

    collate = staticmethod(collate_targets)

    def __init__(self, cfg: TrainConfig, eval_root: str | None = None) -> None:
        super().__init__()
        self.refuse_unsupported(cfg, "detection")
        self.cfg = cfg
        data = small_objects_root(cfg.data, "detection") or builtin_root(cfg.data, DET_NAME) or Path(cfg.data)
        splits = scan_detection(data, cfg.images, cfg.val_split, SPLIT_SEED)
        self.root, self.classes = str(splits.root), splits.classes
        self.train_samples, self.val_samples = splits.train, splits.val
        if eval_root is not None:  # another data set with the same classes: its VOC val split, or a whole JSON
            other = Path(eval_root)
            found = scan_detection(other, cfg.images, 0.5, SPLIT_SEED)
            self.val_samples = found.val if other.is_dir() else found.train + found.val
            if found.classes != self.classes:
                raise DataError(f"{other} has classes {found.classes}; the run was trained on {self.classes}")
            self.root = str(other)
        common = self.resize_settings()
        self.train_transform = LetterboxResize(**common, augment=cfg.augment)
        self.eval_transform = LetterboxResize(**common, augment=False)

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_outputs": len(self.classes) + 1, "class_names": self.classes}

    def dataset(self, samples: list, train: bool) -> DetectionDataset:
        return DetectionDataset(samples, self.train_transform if train else self.eval_transform)


DETECTION = register_task(
    TaskSpec(
        name="detection",
        module=DetectionTask,
        data=DetectionData,
        metrics={"map50": "val/map50", "map": "val/map"},
        mode="max",
        percent=("map50", "map"),
        example=lambda: {
            "data": str(builtin_detection(count=12, size=64)),
            "out_size": 64,
            "epochs": 1,
            "batch_size": 4,
        },
        defaults={"data": DET_NAME, "backbone": "torchvision:ssdlite320_mobilenet_v3_large"},
    )
)
