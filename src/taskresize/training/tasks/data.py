"""What every task's data module shares: DDP sharding, the loaders and the BatchNorm re-estimation batches."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset

from taskresize.errors import DataError
from taskresize.hardware import default_workers
from taskresize.seeds import item_seed
from taskresize.training.config import TrainConfig


class TaskData(L.LightningDataModule):
    """Base of the tasks' data modules.

    Subclasses set ``self.cfg``, ``self.root``, ``self.train_samples`` and ``self.val_samples`` (anything that
    has a length and can be sliced) and the class attribute ``collate``, and implement :meth:`dataset`.
    """

    cfg: TrainConfig
    collate: Any = None

    @staticmethod
    def refuse_unsupported(cfg: TrainConfig, task: str) -> None:
        """Settings of the classification path that a task does not implement stop the run, not pass silently."""
        if getattr(cfg, "distortion", "none") != "none":
            raise DataError(f"distortion = {cfg.distortion!r}: implemented for classification only, not for {task}")
        if getattr(cfg, "decode_on", "cpu") != "cpu":
            raise DataError(f"decode_on = {cfg.decode_on!r}: implemented for classification only, not for {task} "
                            "(decode_on cpu)")  # fmt: skip

    def resize_settings(self) -> dict[str, Any]:
        """The loader's classic resize to the resizer's input size, as the config sets it."""
        cfg = self.cfg
        return {"size": cfg.input_size, "method": cfg.pre_resize, "antialias": cfg.pre_resize_antialias,
                "max_pixels": cfg.max_pixels}  # fmt: skip

    def dataset(self, samples: Any, train: bool) -> Dataset:
        """The dataset of ``samples``, augmented when ``train``."""
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        return self.dataset(self.train_samples, train=True)

    def eval_dataset(self) -> Dataset:
        """This process's shard of the validation set (every image counts once across processes: no padding)."""
        rank, world = self._rank_world()
        return self.dataset(self.val_samples[rank::world], train=False)

    @property
    def train_size(self) -> int:
        return len(self.train_samples)

    @property
    def val_size(self) -> int:
        return len(self.val_samples)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: Dataset, persistent: bool = True, **kwargs) -> DataLoader:
        trainer = self.trainer
        workers = (
            self.cfg.workers if self.cfg.workers is not None else default_workers(trainer.num_devices if trainer else 1)
        )
        # pinned host memory lets the copies to a GPU run asynchronously (Lightning copies with non_blocking)
        pin = trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)
        # Its own generator, so creating an iterator draws nothing from the global random state (dropout's)
        generator = torch.Generator().manual_seed(self.cfg.seed)
        kwargs = {"batch_size": self.cfg.batch_size, **kwargs}
        return DataLoader(
            dataset, collate_fn=type(self).collate, num_workers=workers, persistent_workers=persistent and workers > 0,
            pin_memory=pin, generator=generator, **kwargs,
        )  # fmt: skip

    def train_batch_size(self, world: int = 1) -> int:
        """The training batch size for ``world`` processes: ``batch_size``, or this process's whole shard when it is
        smaller. Raises DataError when a shard has fewer than two images (BatchNorm cannot train on one)."""
        shard = -(-self.train_size // world)
        if shard < 2:
            per = f" per process ({world} processes)" if world > 1 else ""
            raise DataError(
                f"{self.root}: {self.train_size} training image{'s' if self.train_size != 1 else ''} after the "
                f"split; training needs at least 2{per} (add images, or lower --val-split)"
            )
        return min(self.cfg.batch_size, shard)

    def train_dataloader(self) -> DataLoader:
        """Shuffled by ``(seed, epoch)`` and sharded across processes; every batch is full (the last partial one
        is dropped, as ImageNet recipes do: a batch of one image breaks BatchNorm), and each image's augmentation
        depends only on ``(seed, epoch, index)``, so neither the worker count nor a resume changes the data."""
        rank, world = self._rank_world()
        dataset = SeededItems(self.train_dataset(), self.cfg.seed, stream=0)
        sampler = EpochShuffle(len(dataset), seed=self.cfg.seed, rank=rank, world=world)
        return self._loader(dataset, sampler=sampler, batch_size=self.train_batch_size(world), drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset())

    def precise_bn_loader(self, images: int, epoch: int) -> DataLoader:
        """``images`` random training images, augmented as in training, in whole training batches (at least one),
        for recomputing BatchNorm statistics. A training set with fewer images is passed over several times, each
        pass with its own augmentation, so that the statistics rest on as many images as asked whatever the size
        of the set. Which images and their augmentation depend only on ``(seed, epoch, rank)``."""
        rank, world = self._rank_world()
        train = self.train_dataset()
        generator = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch * 1_009 + rank)
        size = self.train_batch_size(world)
        left = max(size, images - images % size)
        passes = []
        while left > 0:
            dataset = SeededItems(train, self.cfg.seed, stream=1 + len(passes))  # a stream per pass: another draw
            order = torch.randperm(len(train), generator=generator)[:left].tolist()
            passes.append(Subset(dataset, [(epoch, i) for i in order]))
            left -= len(order)
        # decoded in the loader's workers, as training batches are (not kept alive between epochs)
        return self._loader(ConcatDataset(passes), batch_size=size, drop_last=True, persistent=False)


class SeededItems(Dataset):
    """``dataset`` indexed by ``(epoch, index)``: each item is made with the global torch random state seeded by
    ``(seed, stream, epoch, index)`` (the augmentation draws from it), and the caller's random state is left as it
    was. So an item is the same in any worker process, with any number of workers, and after a resume."""

    def __init__(self, dataset: Dataset, seed: int, stream: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.stream = stream

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.stream, epoch, index))
            return self.dataset[index]


class EpochShuffle(Sampler):
    """This process's share of a shuffle of ``range(size)`` seeded by ``(seed, epoch)``, as ``(epoch, index)`` keys
    for :class:`SeededItems`. Shards are padded by repeating the start of the order, so every process gets
    ``ceil(size / world)`` keys (as :class:`~torch.utils.data.DistributedSampler`). Lightning calls
    :meth:`set_epoch` before every epoch, also when a run resumes."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.world)

    def __iter__(self):
        generator = torch.Generator().manual_seed(item_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        total = len(self) * self.world
        while len(order) < total:
            order += order[: total - len(order)]
        return iter([(self.epoch, i) for i in order[self.rank : total : self.world]])
