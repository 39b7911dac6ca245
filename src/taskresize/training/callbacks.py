"""Training callbacks: precise BatchNorm statistics, the per-epoch CSV and throughput."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.trainer.states import TrainerFn


class PreciseBatchNorm(L.Callback):
    """Recompute BatchNorm statistics for the current weights before each validation.

    Running averages trail the weights they were gathered with; when the weights move fast (a learned resizer at
    lr 0.05, few epochs, small data) the eval-mode statistics no longer match the training-mode behaviour and
    validation accuracy drops or jumps from epoch to epoch — the failure reported for other ports of the
    Talebi–Milanfar resizer. Here the statistics of every trainable BatchNorm layer are re-estimated
    (equal-weight average) over a few training batches with the weights frozen, then averaged across processes
    ("precise BN", Wu & Johnson 2021). Frozen parts keep their statistics.
    """

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batches <= 0 or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        loader = trainer.datamodule.precise_bn_loader(self.batches, trainer.current_epoch)
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
            model(images.to(device))
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

    Place it before :class:`PreciseBatchNorm` so that the training time stops before BatchNorm recomputation.
    """

    def __init__(self, path: str | Path, metrics: dict[str, str], echo: bool = False) -> None:
        self.path = Path(path)
        self.metrics = metrics  # column -> logged validation metric
        self.fields = ["epoch", "lr", "train_loss", *metrics, "train_seconds", "train_images_per_s", "epoch_seconds"]
        self.echo = echo  # print a line per epoch (for logs, where a progress bar would print every refresh)
        self.images = 0
        self.train_seconds = 0.0
        self.rows: list[dict[str, object]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed from a checkpoint written at the end of an epoch's validation re-enters that epoch after
        # its start, so the epoch's bookkeeping must exist before on_train_epoch_start.
        self.on_train_epoch_start(trainer, pl_module)
        if self.path.exists():  # resuming (the checkpoint is restored by now): keep the epochs it has finished
            with self.path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < trainer.current_epoch]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_end = None
        self._images = 0
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1]) * trainer.world_size

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        train_seconds = (self._train_end or now) - self._epoch_start
        self.images += self._images
        self.train_seconds += train_seconds
        metrics = trainer.callback_metrics

        def value(key: str) -> float | str:
            return round(float(metrics[key]), 6) if key in metrics else ""

        row = {
            "epoch": trainer.current_epoch,
            "lr": self._lr,
            "train_loss": value("train/loss_epoch"),
            **{column: value(name) for column, name in self.metrics.items()},
            "train_seconds": round(train_seconds, 3),
            "train_images_per_s": round(self._images / max(train_seconds, 1e-9), 2),
            "epoch_seconds": round(now - self._epoch_start, 3),
        }
        self.rows.append(row)
        if self.echo and trainer.is_global_zero:
            remaining = (trainer.max_epochs - trainer.current_epoch - 1) * (now - self._epoch_start)
            print(
                f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: train loss {row['train_loss']}, "
                + ", ".join(f"{k} {row[k]}" for k in self.metrics if row[k] != "")
                + f" ({row['epoch_seconds']:.0f} s, {row['train_images_per_s']:.0f} images/s, "
                f"about {remaining / 60:.1f} min left)",
                flush=True,
            )
        if trainer.is_global_zero:
            from ..fileio import atomic_write_text

            lines = [",".join(self.fields)] + [",".join(str(r.get(k, "")) for k in self.fields) for r in self.rows]
            atomic_write_text(self.path, "\n".join(lines) + "\n")

    @property
    def images_per_second(self) -> float:
        """Training images per second over the epochs of this process's run (validation excluded)."""
        return self.images / self.train_seconds if self.train_seconds else 0.0


class NonFiniteLoss(L.Callback):
    """Stop at the first NaN or infinite training loss; the checkpoints of finished epochs stay as they were."""

    def __init__(self, error: type[Exception], run_dir: str | Path) -> None:
        self.error = error
        self.run_dir = Path(run_dir)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            last = self.run_dir / "last.ckpt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no epoch had finished"
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            raise self.error(
                f"training diverged: the loss is {float(loss)} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}; {kept}. Try a lower --lr (now {lr:g})"
            )
