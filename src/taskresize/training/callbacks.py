"""Training callbacks: precise BatchNorm statistics, the per-epoch CSV and throughput, per-epoch seeds, progress."""

from __future__ import annotations

import csv
import random
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.trainer.states import TrainerFn

from taskresize.fileio import atomic_write_text
from taskresize.runs import RunFolder
from taskresize.seeds import item_seed


class PreciseBatchNorm(L.Callback):
    """Recompute BatchNorm statistics for the current weights before each validation.

    Running averages trail the weights they were gathered with; when the weights move fast (a learned resizer at
    lr 0.05, few epochs, small data) the eval-mode statistics no longer match the training-mode behaviour and
    validation accuracy drops or jumps from epoch to epoch — the failure reported for other ports of the
    Talebi–Milanfar resizer. Here the statistics of every trainable BatchNorm layer are re-estimated
    (equal-weight average over batches) from ``images`` training images with the weights frozen, then averaged
    across processes ("precise BN", Wu & Johnson 2021). Frozen parts keep their statistics. Thousands of images,
    not a few batches: the draw of a few batches moved a validation metric by points.
    """

    def __init__(self, images: int) -> None:
        self.images = images

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.images <= 0 or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        loader = trainer.datamodule.precise_bn_loader(self.images, trainer.current_epoch)
        with trainer.strategy.precision_plugin.train_step_context():  # the training step's precision (autocast)
            recompute_batchnorm(pl_module, loader, pl_module.trainable_batchnorms())


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, loader, layers: list[torch.nn.modules.batchnorm._BatchNorm]) -> None:
    """Set ``layers``' running statistics to their average over ``loader``'s batches under the current weights."""
    if not layers:
        return
    saved = [(layer.momentum, layer.training) for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
        layer.train()
    device = next(model.parameters()).device
    try:
        for images, _ in loader:
            model(images.to(device, non_blocking=True))
    finally:
        for layer, (momentum, training) in zip(layers, saved, strict=True):
            layer.momentum = momentum
            layer.train(training)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world = dist.get_world_size()
        for layer in layers:
            for stat in (layer.running_mean, layer.running_var):
                dist.all_reduce(stat)
                stat /= world


class EpochLog(L.Callback):
    """Writes ``epochs.csv`` (one row per epoch) and measures training throughput (validation excluded).

    An epoch's row is made when its validation ends, before the checkpoints of that moment are written, and it is
    kept in them (this callback's state): a resumed run takes its rows from the checkpoint it resumes, so the rows
    always describe the weights they continue from, and re-entering the finished epoch (Lightning does so after
    a checkpoint written at validation end) changes none. The file is written when the epoch ends.
    Columns of metrics a run never logs (e.g. top-5 error with five classes or fewer) are left out.
    """

    def __init__(self, path: str | Path, metrics: dict[str, str], echo: bool = False, above_bar: bool = False) -> None:
        self.path = Path(path)
        self.metrics = metrics  # column -> logged validation metric
        self.echo = echo  # print a line per epoch
        self.above_bar = above_bar  # ... above a terminal progress bar (tqdm.write), which then stays below it
        self.images = 0
        self.train_seconds = 0.0
        self.epoch_durations: list[float] = []
        self.rows: list[dict[str, object]] = []
        self._restored = False
        self._reset()

    def _reset(self) -> None:
        self._epoch_start = time.perf_counter()
        self._train_end: float | None = None
        self._images = self._batches = 0
        self._loss_sum, self._loss_count = 0.0, 0
        self._lr = None

    @property
    def fields(self) -> list[str]:
        logged = [c for c in self.metrics if any(r.get(c, "") != "" for r in self.rows)] or list(self.metrics)
        return ["epoch", "lr", "train_loss", *logged, "train_seconds", "train_images_per_s", "epoch_seconds"]

    def state_dict(self) -> dict[str, object]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]  # type: ignore[union-attr]
        self._restored = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed from a checkpoint written at the end of an epoch's validation re-enters that epoch after
        # its start, so the epoch's bookkeeping must exist before on_train_epoch_start.
        self.on_train_epoch_start(trainer, pl_module)
        if trainer.ckpt_path and not self._restored and self.path.exists():
            # a checkpoint of an earlier version, without rows: keep the file's rows of the epochs it finished
            with self.path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= trainer.current_epoch]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1]) * trainer.world_size
        self._batches += 1
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum = self._loss_sum + loss.detach() * len(batch[1])  # on the device: no sync per step
            self._loss_count += len(batch[1])

    def _fitting(self, trainer: L.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fitting(trainer) and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._fitting(trainer) or not self._batches:
            return
        now = time.perf_counter()
        train_seconds = (self._train_end or now) - self._epoch_start
        metrics = trainer.callback_metrics
        # the mean training loss over every process's images: one reduction per epoch, none per step
        device = pl_module.device
        total = torch.stack([torch.as_tensor(self._loss_sum, dtype=torch.float64, device=device).reshape(()),
                             torch.tensor(float(self._loss_count), dtype=torch.float64, device=device)])  # fmt: skip
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
        loss_sum, loss_count = float(total[0]), float(total[1])

        def value(key: str) -> float | str:
            return round(float(metrics[key]), 6) if key in metrics else ""

        row = {
            "epoch": trainer.current_epoch,
            "lr": self._lr,
            "train_loss": round(loss_sum / loss_count, 6) if loss_count else "",
            **{column: value(name) for column, name in self.metrics.items()},
            "train_seconds": round(train_seconds, 3),
            "train_images_per_s": round(self._images / max(train_seconds, 1e-9), 2),
            "epoch_seconds": round(now - self._epoch_start, 3),
        }
        self.rows = [r for r in self.rows if int(r["epoch"]) < trainer.current_epoch] + [row]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batches:  # not the finished epoch a resumed run re-enters
            now = time.perf_counter()
            train_seconds = (self._train_end or now) - self._epoch_start
            self.images += self._images
            self.train_seconds += train_seconds
            self.epoch_durations.append(now - self._epoch_start)
            row = self.rows[-1] if self.rows and int(self.rows[-1]["epoch"]) == trainer.current_epoch else None
            if row is not None and self.echo and trainer.is_global_zero:
                left = trainer.max_epochs - trainer.current_epoch - 1
                line = (  # four significant digits: the line fits a terminal's width more often
                    f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: train loss {_short(row['train_loss'])}, "
                    + ", ".join(f"{k} {_short(row[k])}" for k in self.metrics if row.get(k, "") != "")
                    + f" ({row['epoch_seconds']:.0f} s, {row['train_images_per_s']:.0f} images/s, "
                    f"{format_duration(left * self.mean_epoch_seconds)} left)"
                )
                if self.above_bar:
                    from tqdm import tqdm

                    tqdm.write(line, file=sys.stdout)  # the bar's stream: it is redrawn below the line
                else:
                    print(line, flush=True)
        if trainer.is_global_zero:
            fields = self.fields
            lines = [",".join(fields)] + [",".join(str(r.get(k, "")) for k in fields) for r in self.rows]
            atomic_write_text(self.path, "\n".join(lines) + "\n")

    @property
    def mean_epoch_seconds(self) -> float:
        """Mean duration of the epochs this process has trained (validation included)."""
        return sum(self.epoch_durations) / len(self.epoch_durations) if self.epoch_durations else 0.0

    @property
    def images_per_second(self) -> float:
        """Training images per second over the epochs of this process's run (validation excluded)."""
        return self.images / self.train_seconds if self.train_seconds else 0.0


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_duration(seconds: float) -> str:
    """``about 40 s`` / ``about 12.5 min`` / ``about 3.2 h``."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.1f} min"
    return f"about {seconds / 3600:.1f} h"


class EpochSeed(L.Callback):
    """Seed the global random states (torch, Python, NumPy: dropout and other draws of the training step) from
    ``(seed, epoch, rank)`` when each training epoch starts, so an epoch's random numbers do not depend on what
    ran before it in this process: a resumed run draws what the uninterrupted one drew."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed = item_seed(self.seed, 2, trainer.current_epoch, trainer.global_rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)


class RunProgressBar(TQDMProgressBar):
    """Lightning's terminal progress bar, counting epochs from 1 (``epoch 3/10``) and showing the whole run's
    estimated time left, from this process's pace so far; short enough for 80 columns (the epoch's results are
    printed above it by :class:`EpochLog`, not crammed into it)."""

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._started: float | None = None  # when this process's first training batch started
        self._first = 0.0  # ... and at which point of the run, in epochs

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self._started is None:  # not at train start: a resumed run first re-enters its finished epoch
            self._started, self._first = time.perf_counter(), trainer.current_epoch + self._within()

    def _within(self) -> float:
        total = self.total_train_batches
        if not isinstance(total, int | float) or not total or total == float("inf"):
            return 0.0
        return min(self.train_progress_bar.n / total, 1.0)

    def on_train_epoch_start(self, trainer: L.Trainer, *args) -> None:
        # Lightning's own, but for the description (it would show "Epoch 0" for a moment first)
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset()
        self.train_progress_bar.total = convert_inf(self.total_train_batches)
        self.train_progress_bar.initial = 0
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        items = {}
        started = getattr(self, "_started", None)
        if started is not None:
            at = trainer.current_epoch + self._within()
            if at > self._first:
                left = (time.perf_counter() - started) / (at - self._first) * (trainer.max_epochs - at)
                items["run"] = format_duration(left).removeprefix("about ") + " left"
        return items


class NonFiniteLoss(L.Callback):
    """Stop when the training loss has become NaN or infinite; the checkpoints of finished epochs stay as they were.

    The check costs no sync per step: the flag stays on the device and is read every ``every`` steps and when the
    epoch's training ends (before anything of that epoch is saved), reduced across processes, so that all of
    them stop together (one process raising alone would leave the others waiting for it in a collective).
    """

    def __init__(self, error: type[Exception], run_dir: str | Path, every: int = 50) -> None:
        self.error = error
        self.run_dir = Path(run_dir)
        self.every = every
        self._bad: torch.Tensor | None = None  # whether a loss since the last check was not finite
        self._value: torch.Tensor | None = None  # the first such loss

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        bad = ~torch.isfinite(loss).all()
        if self._bad is None:
            self._bad, self._value = bad, loss.clone()
        else:
            self._value = torch.where(self._bad, self._value, loss)
            self._bad = self._bad | bad
        if (batch_idx + 1) % self.every == 0:
            self._check(trainer)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._check(trainer)  # before the epoch is validated and saved

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    def _check(self, trainer) -> None:
        if self._bad is None:
            return
        flag = self._bad.to(torch.float32).reshape(1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        value = self._value
        self._bad = self._value = None
        if float(flag) > 0:
            last = RunFolder(self.run_dir).checkpoint(RunFolder.LAST)
            kept = f"the last good checkpoint is {last}" if last.exists() else "no epoch had finished"
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            shown = float(value) if value is not None and not torch.isfinite(value).all() else "not finite"
            raise self.error(
                f"training diverged: the loss is {shown} at epoch {trainer.current_epoch}, by step "
                f"{trainer.global_step}{' (in another process)' if shown == 'not finite' else ''}; {kept}. "
                f"Try a lower --lr (now {lr:g})"
            )
