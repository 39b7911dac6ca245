"""Image quality assessment with a jointly trained resizer (Talebi & Milanfar §3.2.2, Table 5).

The backbone's head gives 10 logits; their softmax is the predicted distribution of ratings over the scores 1..10.
Training minimises the Earth Mover's Distance to the rating histogram (NIMA, Talebi & Milanfar 2018) with r = 2;
validation reports the Pearson (PLCC) and Spearman (SRCC) correlations between the predicted mean score
``sum_k k p_k`` and the true one over the whole validation set, and the mean EMD.

Augmentation (``augment``, on by default) is a horizontal flip only: cropping changes composition and the visible
damage, i.e. the label, and the paper does not crop AVA. ``crop_scale`` and ``label_smoothing`` do not apply.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from taskresize.data.builtin.iqa import NAMES as BUILTIN_NAMES
from taskresize.data.builtin.iqa import builtin_iqa_table
from taskresize.data.collate import collate_histograms
from taskresize.data.formats.iqa import (
    SCORES,
    ScoreDataset,
    ScoreTable,
    read_score_table,
    split_table,
)
from taskresize.data.split import SPLIT_SEED
from taskresize.data.transforms import PreResize
from taskresize.training.config import TrainConfig
from taskresize.training.registry import TaskSpec, register_task
from taskresize.training.tasks.base import ResizerTask
from taskresize.training.tasks.data import TaskData


def emd(p: Tensor, q: Tensor, r: float = 2.0) -> Tensor:
    """Earth Mover's Distance between distributions over ordered bins, one value per sample.

    ``( mean_k |CDF_p(k) - CDF_q(k)|^r )^(1/r)``, the NIMA / Talebi-Milanfar loss (they use r = 2).
    Where ``p`` and ``q`` are equal the value is 0 and its gradient is taken as 0 (not the root's infinite one).

    Args:
        p: ``(B, K)`` predicted distributions (rows sum to 1).
        q: ``(B, K)`` target distributions.
        r: the norm's exponent.

    Returns:
        ``(B,)``.
    """
    powered = (p.cumsum(-1) - q.cumsum(-1)).abs().pow(r).mean(-1)
    positive = powered > 0
    safe = torch.where(positive, powered, torch.ones_like(powered))
    return torch.where(positive, safe.pow(1 / r), torch.zeros_like(powered))


def mean_score(p: Tensor) -> Tensor:
    """Mean score ``sum_k k p_k`` over the scores 1..K of distributions ``(B, K)``; returns ``(B,)``.

    Computed in float32 (float64 for a float64 ``p``), also under autocast: a product and a sum, which autocast
    leaves alone, not ``p @ scores``, which it runs in bf16 (400 predictions then took ~48 distinct values, and the
    SRCC and PLCC over them were wrong). A float16 / bfloat16 ``p`` is cast to float32 first.
    """
    if p.dtype != torch.float64:
        p = p.float()
    return (p * torch.arange(1, p.shape[-1] + 1, dtype=p.dtype, device=p.device)).sum(-1)


CORRELATIONS = ("val/srcc", "val/plcc")


class IQATask(ResizerTask):
    """EMD loss (r = 2) on 10 softmax outputs; PLCC, SRCC and EMD on the validation set."""

    def __init__(self, config: dict[str, Any], num_outputs: int = SCORES) -> None:
        super().__init__(config, num_outputs)
        with warnings.catch_warnings():  # it keeps every prediction: a float per image, small even for AVA
            warnings.filterwarnings("ignore", message="Metric `SpearmanCorrcoef` will save all targets")
            srcc = SpearmanCorrCoef()
        # logged as computed (prefix "val/"), but for the correlations' undefined case; no compute groups: the three
        # share no state, so there is nothing to save
        self.val_metrics = MetricCollection(
            {"srcc": srcc, "plcc": PearsonCorrCoef(), "emd": MeanMetric()}, prefix="val/", compute_groups=False
        )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, histograms = batch
        loss = self.training_loss(images, lambda logits: emd(logits.float().softmax(-1), histograms).mean())
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(histograms))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, histograms = batch
        p = self(images).float().softmax(-1)
        predicted, true = mean_score(p), mean_score(histograms)
        # each metric takes the arguments its update() names: the correlations preds and target, the mean EMD value
        self.val_metrics.update(preds=predicted, target=true, value=emd(p, histograms))

    def epoch_metrics(self) -> dict[str, Tensor]:
        """The logged validation metrics: SRCC, PLCC and the mean EMD. A correlation is 0 where it is undefined
        (predictions or targets all equal): a constant predictor ranks nothing.

        torchmetrics gathers the states of all processes, so these are exact for the whole validation set."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The variance of predictions or target is close to zero")
            computed = self.val_metrics.compute()
        undefined_as_zero = {key: torch.nan_to_num(computed[key], nan=0.0) for key in CORRELATIONS}
        return undefined_as_zero | {"val/emd": computed["val/emd"]}

    def on_validation_epoch_end(self) -> None:
        metrics = self.epoch_metrics()
        self.val_metrics.reset()
        self.log_dict(metrics, prog_bar=True)


def table_path(data: str) -> str:
    """``--data``: a table file, or ``builtin-iqa`` (also ``builtin``) for the generated set."""
    return str(builtin_iqa_table()) if data in BUILTIN_NAMES else data


class ScoreTableData(TaskData):
    """A score table (AVA.txt or CSV, see :mod:`taskresize.data.formats.iqa`), pre-resized to the resizer's input size
    in
    the loader with the configured classic method (bicubic by default for IQA, as in the paper).

    Split by the table's ``split`` column, else ``val_split`` with a fixed seed. Training shuffles with
    ``(seed, epoch)`` and shards across processes; validation is split across processes without padding.
    With ``eval_root`` (``eval --data TABLE``) the validation set is that table's ``val`` rows, or all its rows.
    """

    collate = staticmethod(collate_histograms)

    def __init__(self, cfg: TrainConfig, eval_root: str | None = None) -> None:
        super().__init__()
        self.refuse_unsupported(cfg, "iqa")
        self.cfg = cfg
        self.root = table_path(cfg.data)
        self.train_samples, self.val_samples = split_table(
            read_score_table(self.root, cfg.images), cfg.val_split, SPLIT_SEED
        )
        if eval_root is not None:
            self.root = table_path(eval_root)
            other = read_score_table(self.root, cfg.images)
            val = [i for i, split in enumerate(other.splits or []) if split == "val"]
            self.val_samples = other.subset(val) if val else other
        self.transform = PreResize(**self.resize_settings())

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_outputs": SCORES}

    def dataset(self, samples: ScoreTable, train: bool) -> ScoreDataset:
        return ScoreDataset(samples, self.transform, flip=train and self.cfg.augment)


IQA = register_task(
    TaskSpec(
        name="iqa",
        module=IQATask,
        data=ScoreTableData,
        metrics={"srcc": "val/srcc", "plcc": "val/plcc", "emd": "val/emd"},
        mode="max",
        defaults={"data": "builtin-iqa", "pre_resize": "bicubic", "resizer": "bicubic"},
        example=lambda: {
            "data": str(builtin_iqa_table(count=24, size=32)),
            "backbone": "timm:resnet10t",
            "out_size": 32,
            "epochs": 1,
            "batch_size": 8,
        },
    )
)
