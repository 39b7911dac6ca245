"""What every task's data module shares: DDP sharding, the loaders and the BatchNorm re-estimation batches."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..data.folder import DataError
from ..training.config import TrainConfig


class TaskData(L.LightningDataModule):
    """Base of the tasks' data modules.

    Subclasses set ``self.cfg``, ``self.train_samples``, ``self.val_samples`` (or override ``train_size`` and
    ``val_size``) and the class attribute ``collate``, and implement :meth:`train_dataset` and :meth:`eval_dataset`
    (this rank's shard of the validation set).
    """

    cfg: TrainConfig
    collate: Any = None

    @staticmethod
    def refuse_unsupported(cfg: TrainConfig, task: str) -> None:
        """Settings of the classification path that a task does not implement stop the run, not pass silently."""
        if getattr(cfg, "distortion", "none") != "none":
            raise DataError(f"distortion = {cfg.distortion!r}: implemented for classification only, not for {task}")

    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def eval_dataset(self) -> Dataset:
        raise NotImplementedError

    @property
    def train_size(self) -> int:
        return len(self.train_samples)

    @property
    def val_size(self) -> int:
        return len(self.val_samples)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        workers = self.cfg.workers
        return DataLoader(
            dataset, batch_size=self.cfg.batch_size, collate_fn=type(self).collate, num_workers=workers,
            persistent_workers=workers > 0, **kwargs,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        dataset = self.train_dataset()
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.cfg.seed)
        drop_last = len(sampler) > self.cfg.batch_size  # a last batch of one image breaks BatchNorm
        return self._loader(dataset, sampler=sampler, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset())

    def precise_bn_loader(self, batches: int, epoch: int) -> DataLoader:
        """A few random training batches (augmented, as in training) for recomputing BatchNorm statistics."""
        rank, _ = self._rank_world()
        dataset = self.train_dataset()
        generator = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch * 1_009 + rank)
        count = min(len(dataset), batches * self.cfg.batch_size)
        indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()
        return DataLoader(Subset(dataset, indices), batch_size=self.cfg.batch_size, collate_fn=type(self).collate)
