"""Semantic segmentation with a learned resizer in front of a torchvision model (Ma et al. §5.2, Tables 2 and 6).

``uint8 image (in_size) -> normalise -> resizer -> out_size -> segmentation model -> logits (out_size)``; the
logits are up-sampled (bilinear) to the label resolution, which is the resizer's *input* size: the data loader
brings every label map to ``in_size`` with nearest-neighbour, together with its image. The loss (cross-entropy,
255 ignored) and the metric (mIoU over the classes present in the labels or the predictions, from the confusion
matrix of the whole validation set, as VOC's) are computed there, so a resizer is judged by how well the model
recovers full-resolution labels from its small image, as in the paper, which evaluates at the label resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix
from torchvision.models.segmentation.lraspp import LRASPP

from taskresize.backbones import load_pretrained_encoder, resolve_backbone_name, torchvision_model_name
from taskresize.data.builtin.shapes import SEG_NAME, builtin_root, builtin_segmentation
from taskresize.data.builtin.small_objects import small_objects_root
from taskresize.data.collate import collate_label_maps
from taskresize.data.formats.segmentation import (
    IGNORE_INDEX,
    PairResize,
    SegmentationDataset,
    is_voc_segmentation,
    scan_segmentation,
    scan_voc_segmentation,
)
from taskresize.data.split import SPLIT_SEED
from taskresize.errors import DataError
from taskresize.resizers.warps import resize_with_warp
from taskresize.training.config import TrainConfig
from taskresize.training.registry import PER_CLASS, TaskSpec, register_task
from taskresize.training.tasks.base import ResizerTask
from taskresize.training.tasks.data import TaskData


class EncoderFeatures(nn.Module):
    """A timm network's last stride-8 features and its deepest ones, as ``{"low", "high"}`` for an LR-ASPP head
    (the shallowest features stand in for stride 8 where none is that fine)."""

    def __init__(self, model_name: str) -> None:
        super().__init__()
        import timm

        with torch.device("meta"):
            reductions = timm.create_model(model_name, features_only=True).feature_info.reduction()
        low = max((i for i, r in enumerate(reductions) if r <= 8), default=0)
        self.body = timm.create_model(model_name, features_only=True, out_indices=(low, len(reductions) - 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        low, high = self.body(x)
        return {"low": low, "high": high}


def segmentation_model(name: str, num_classes: int) -> nn.Module:
    """A randomly initialised segmentation model with ``num_classes`` outputs: ``torchvision:NAME``, one of
    torchvision's (no auxiliary head), or ``timm:NAME``, torchvision's LR-ASPP head (Howard et al. 2019) on the timm
    network's features, whose encoder takes that network's classification weights (:func:`load_pretrained_encoder`).
    """
    if name.startswith("timm:"):
        _, model_name = resolve_backbone_name(name)
        encoder = EncoderFeatures(model_name)
        low, high = encoder.body.feature_info.channels()
        return LRASPP(encoder, low, high, num_classes)
    model = torchvision_model_name(name, torchvision.models.segmentation, "segmentation")
    return torchvision.models.get_model(model, weights=None, weights_backbone=None, num_classes=num_classes)


class SegmentationTask(ResizerTask):
    """Pixel-wise cross-entropy (255 ignored); mIoU, pixel accuracy and loss at the label resolution."""

    def __init__(self, config: dict[str, Any], num_outputs: int, class_names: list[str] | None = None) -> None:
        super().__init__(config, num_outputs)
        self.class_names = class_names or [str(i) for i in range(num_outputs)]
        self.save_hyperparameters({"class_names": self.class_names})
        # the confusion matrix of all pixels (mIoU, pixel accuracy and the class IoUs come from it) and the mean loss;
        # no compute groups: the two share no state, so there is nothing to save
        self.val_metrics = MetricCollection(
            # validate_args / nan_strategy off: their per-batch checks read values back from the device (a sync each)
            {
                "confusion": MulticlassConfusionMatrix(num_outputs, ignore_index=IGNORE_INDEX, validate_args=False),
                "loss": MeanMetric(nan_strategy="disable"),
            },
            compute_groups=False,
        )

    def build_backbone(self, num_outputs: int) -> nn.Module:
        return segmentation_model(self.cfg.backbone, num_outputs)

    def load_pretrained(self, pretrained: str) -> list[str]:
        """A timm encoder takes the network's classification weights (its head stays new); a torchvision model
        takes weights for the whole model."""
        if isinstance(getattr(self.backbone, "backbone", None), EncoderFeatures):
            load_pretrained_encoder(self.backbone.backbone.body, self.cfg.backbone, pretrained)
            return []
        return super().load_pretrained(pretrained)

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images ``(B, 3, H, W)`` at the resizer's input size -> logits ``(B, classes, H, W)``.

        A resizer that warps the image (``saliency-separable``) has its logits mapped back through the warp's exact
        inverse, so the loss and the metrics are computed in the image's frame, never in the warped one."""
        resized, warp = resize_with_warp(self.resizer, self.normalize(images), self.out_size)
        logits = self.backbone(resized)["out"]
        if warp is not None:
            return warp.unwarp(logits, images.shape[-2:])
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss = F.cross_entropy(
            self(images), labels, ignore_index=IGNORE_INDEX, label_smoothing=self.cfg.label_smoothing
        )
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")[labels != IGNORE_INDEX]
        # each metric takes the arguments its update() names: the confusion matrix preds and target, the mean loss
        # value (an empty one, a batch of ignored pixels only, adds nothing)
        self.val_metrics.update(preds=logits.argmax(dim=1), target=labels, value=loss)

    def scores(self) -> dict[str, Tensor]:
        """mIoU (VOC's: classes absent from labels and predictions skipped), pixel accuracy and each class's IoU
        (0 when absent), from the validation set's one confusion matrix, and the mean loss.

        torchmetrics sums the matrix and the loss across processes, so these are exact for the whole validation set.
        """
        computed = self.val_metrics.compute()
        confusion = computed["confusion"].double()
        hits = confusion.diagonal()
        union = confusion.sum(0) + confusion.sum(1) - hits
        iou = hits / union.clamp(min=1)
        return {
            "miou": (iou.sum() / (union > 0).sum().clamp(min=1)).float(),
            "pixel_accuracy": (hits.sum() / confusion.sum().clamp(min=1)).float(),
            "class_iou": iou.float(),
            "loss": computed["loss"],
        }

    def epoch_metrics(self) -> dict[str, Tensor]:
        """The logged validation metrics: mIoU, pixel accuracy, the mean loss and each class's IoU."""
        scores = self.scores()
        metrics = {
            "val/miou": scores["miou"],
            "val/pixel_accuracy": scores["pixel_accuracy"],
            "val/loss": scores["loss"],
        }
        per_class = zip(self.class_names, scores["class_iou"], strict=True)
        return metrics | {f"val/{PER_CLASS}{name}_iou": value for name, value in per_class}

    def on_validation_epoch_end(self) -> None:
        metrics = self.epoch_metrics()
        self.val_metrics.reset()
        self.log_dict(metrics, prog_bar=True)


class SegmentationData(TaskData):
    """A VOC-layout folder, an ``images/`` + ``masks/`` folder, or ``builtin-seg[@SIZE]``; images and label maps go to
    the resizer's input size in the loader (image: classic resize; labels: nearest)."""

    collate = staticmethod(collate_label_maps)

    def __init__(self, cfg: TrainConfig, eval_root: str | None = None) -> None:
        super().__init__()
        self.refuse_unsupported(cfg, "segmentation")
        self.cfg = cfg
        root = small_objects_root(cfg.data, "segmentation") or builtin_root(cfg.data, SEG_NAME) or Path(cfg.data)
        splits = scan_segmentation(root, cfg.val_split, SPLIT_SEED)
        self.root, self.classes = str(splits.root), splits.classes
        self.train_samples, self.val_samples = splits.train, splits.val
        if eval_root is not None:  # another data set with the same classes: its VOC val split, else every pair
            other = Path(eval_root)
            if is_voc_segmentation(other):
                found = scan_voc_segmentation(other)
                self.val_samples = found.val
            else:
                found = scan_segmentation(other, 0.5, SPLIT_SEED)
                self.val_samples = sorted(found.train + found.val, key=lambda s: s.image)
            if len(found.classes) != len(self.classes):
                raise DataError(f"{other} has {len(found.classes)} classes; the run was trained on {len(self.classes)}")
            self.root = str(other)
        common = self.resize_settings()
        self.train_transform = PairResize(**common, augment=cfg.augment, scale=tuple(cfg.crop_scale))
        self.eval_transform = PairResize(**common, augment=False)

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_outputs": len(self.classes), "class_names": self.classes}

    def dataset(self, samples: list, train: bool) -> SegmentationDataset:
        transform = self.train_transform if train else self.eval_transform
        return SegmentationDataset(samples, transform, len(self.classes))


SEGMENTATION = register_task(
    TaskSpec(
        name="segmentation",
        module=SegmentationTask,
        data=SegmentationData,
        metrics={"miou": "val/miou", "pixel_accuracy": "val/pixel_accuracy", "val_loss": "val/loss"},
        mode="max",
        percent=("miou", "pixel_accuracy", "iou"),
        example=lambda: {
            "data": str(builtin_segmentation(count=16, size=48)),
            "out_size": 32,
            "epochs": 1,
            "batch_size": 4,
        },
        defaults={"data": SEG_NAME, "backbone": "torchvision:lraspp_mobilenet_v3_large", "label_smoothing": 0.0},
    )
)
