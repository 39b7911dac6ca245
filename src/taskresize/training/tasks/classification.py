"""Image classification with a jointly trained resizer (Talebi & Milanfar §3.2.1, Table 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from taskresize.data.builtin.classification import builtin_dataset
from taskresize.data.builtin.small_objects import small_objects_root
from taskresize.data.collate import collate_classes
from taskresize.data.device_decode import DeferredPreResize
from taskresize.data.formats.folders import (
    ImageFolderDataset,
    Sample,
    scan_class_folders,
    screen_splits,
    train_val_folders,
)
from taskresize.data.split import SPLIT_SEED
from taskresize.data.transforms import Distortion, PreResize
from taskresize.training.config import TrainConfig
from taskresize.training.registry import TaskSpec, register_task
from taskresize.training.tasks.base import ResizerTask
from taskresize.training.tasks.data import TaskData

TOP_K = 5  # top-k error is reported only with more classes than k


class ClassificationTask(ResizerTask):
    """Cross-entropy with label smoothing; top-1 and top-5 error on the validation set (top-5 only with more than
    five classes: with five or fewer it is 0 by construction)."""

    def __init__(self, config: dict[str, Any], num_outputs: int, class_names: list[str] | None = None) -> None:
        super().__init__(config, num_outputs)
        self.class_names = class_names or [str(i) for i in range(num_outputs)]
        self.save_hyperparameters({"class_names": self.class_names})
        # validate_args / nan_strategy off: their per-batch checks read values back from the device (a sync each)
        checks = {"validate_args": False}
        metrics = {"top1": MulticlassAccuracy(num_outputs, top_k=1, average="micro", **checks),
                   "loss": MeanMetric(nan_strategy="disable")}  # fmt: skip
        if num_outputs > TOP_K:
            metrics["top5"] = MulticlassAccuracy(num_outputs, top_k=TOP_K, average="micro", **checks)
        # no compute groups: no two of these metrics keep the same state (top-5 counts per class, top-1 in total), so
        # a group would save nothing, and torchmetrics forms groups from states that are equal after the first update
        # (not from equal updates), a guess not worth relying on
        self.val_metrics = MetricCollection(metrics, compute_groups=False)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss = self.training_loss(
            images, lambda z: F.cross_entropy(z, labels, label_smoothing=self.cfg.label_smoothing)
        )
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        # each metric takes the arguments its update() names: the accuracies preds and target, the mean loss value
        self.val_metrics.update(preds=logits, target=labels, value=F.cross_entropy(logits, labels, reduction="none"))

    def epoch_metrics(self) -> dict[str, Tensor]:
        """The logged validation metrics, from the collection's counts: top-1 (and top-5) error and the mean loss.

        torchmetrics reduces the counts across processes, so these are exact for the whole validation set."""
        computed = self.val_metrics.compute()
        metrics = {"val/top1_error": 1 - computed["top1"], "val/loss": computed["loss"]}
        if "top5" in computed:
            metrics["val/top5_error"] = 1 - computed["top5"]
        return metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self.epoch_metrics()
        self.val_metrics.reset()
        self.log_dict(metrics, prog_bar=True)


class FolderData(TaskData):
    """Class-per-folder data (or the built-in set), pre-resized to the resizer's input size in the loader (with
    ``decode_on`` device, JPEGs are decoded and pre-resized on the device: :mod:`taskresize.data.device_decode`).

    Samplers are built here, after the processes exist: training shuffles with ``(seed, epoch)`` and shards
    across processes; validation is split across processes without padding, so every image counts once.
    """

    collate = staticmethod(collate_classes)

    def __init__(self, cfg: TrainConfig, eval_root: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        small_objects = small_objects_root(cfg.data, "classification")
        self.root = str(builtin_dataset()) if cfg.data == "builtin" else str(small_objects or cfg.data)
        self.classes, self.train_samples, self.val_samples = train_val_folders(self.root, cfg.val_split, SPLIT_SEED)
        if eval_root is not None:  # evaluate on another folder with the same classes: its val/ if any, else all
            root = Path(eval_root) / "val" if (Path(eval_root) / "val").is_dir() else Path(eval_root)
            self.val_samples = scan_class_folders(root, classes=self.classes).samples
            self.root = str(eval_root)
        common = self.resize_settings() | {"distortion": Distortion(cfg.distortion, tuple(cfg.out_size))}
        # decode_on device: the workers read JPEGs and draw their augmentation; the batch is decoded on the device
        transform = DeferredPreResize if cfg.decode_on == "device" else PreResize
        self.train_transform = transform(**common, augment=cfg.augment, scale=tuple(cfg.crop_scale))
        self.eval_transform = transform(**common, augment=False)
        self.train_samples, self.val_samples = screen_splits(
            self.train_samples, self.val_samples, cfg.max_pixels, cfg.input_size, cfg.strict
        )

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_outputs": len(self.classes), "class_names": self.classes}

    def dataset(self, samples: list[Sample], train: bool) -> ImageFolderDataset:
        transform = self.train_transform if train else self.eval_transform
        return ImageFolderDataset(samples, transform, self.cfg.max_pixels, self.cfg.strict)


CLASSIFICATION = register_task(
    TaskSpec(
        name="classification",
        module=ClassificationTask,
        data=FolderData,
        metrics={"top1_error": "val/top1_error", "top5_error": "val/top5_error", "val_loss": "val/loss"},
        mode="min",
        percent=("top1_error", "top5_error"),
        example=lambda: {
            "data": str(builtin_dataset(per_class=6, size=48)),
            "backbone": "timm:resnet10t",
            "in_size": 40,
            "out_size": 32,
            "epochs": 1,
            "batch_size": 8,
        },
    )
)
