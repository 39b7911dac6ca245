"""Batches: every task's images travel as one channels-last uint8 tensor (the layout the models' weights use),
and become float only in the model's step. JPEGs left for the device to decode travel as an
:class:`~taskresize.data.device_decode.EncodedBatch`, which becomes that tensor when it is moved to the device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from taskresize.data.device_decode import EncodedBatch, EncodedImage


def image_batch(images: Sequence[Tensor | EncodedImage]) -> Tensor | EncodedBatch:
    """uint8 ``(3, h, w)`` images of one size -> a channels-last uint8 ``(B, 3, h, w)`` batch; with JPEGs left for
    the device to decode among them, an :class:`EncodedBatch` (``.to(device)`` makes that batch there)."""
    if any(isinstance(image, EncodedImage) for image in images):
        return EncodedBatch(images)
    return torch.stack(list(images)).contiguous(memory_format=torch.channels_last)  # type: ignore[arg-type]


def collate_pairs(batch: Sequence[tuple[Tensor, Any]], targets: Callable[[list[Any]], Any] = torch.stack) -> tuple:
    """``(image, target)`` pairs -> ``(channels-last uint8 image batch, targets(list of targets))``."""
    return image_batch([image for image, _ in batch]), targets([target for _, target in batch])


def class_labels(labels: list[int]) -> Tensor:
    return torch.tensor(labels, dtype=torch.int64)


def label_maps(maps: list[Tensor]) -> Tensor:
    return torch.stack(maps).long()


def as_list(targets: list[Any]) -> list[Any]:
    return targets


# The tasks' collate functions (partials of module-level functions: picklable for data-loader workers)
collate_classes = partial(collate_pairs, targets=class_labels)  # (B, 3, h, w) uint8, (B,) int64
collate_histograms = partial(collate_pairs, targets=torch.stack)  # ..., (B, 10) float32 score histograms
collate_label_maps = partial(collate_pairs, targets=label_maps)  # ..., (B, h, w) int64 class per pixel
collate_targets = partial(collate_pairs, targets=as_list)  # ..., one target dict per image (any number of boxes)
