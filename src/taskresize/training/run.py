"""Training and evaluation runs: initialisation from earlier runs, resuming, Lightning's Trainer. What a run
folder holds is :class:`taskresize.runs.RunFolder`'s to know."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import logging
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from taskresize.backbones import pretrained_normalization, zero_new_classifiers
from taskresize.data.normalization import IMAGENET, Normalization
from taskresize.errors import DataError, TaskresizeError
from taskresize.fileio import DamagedFileError, UnsafeFileError, atomic_open, atomic_write_json, torch_load_weights_only
from taskresize.flops import count_parameters
from taskresize.hardware import (
    default_workers,
    refuse_slow_precision,
    resolve_accelerator,
    resolve_device,
    resolve_precision,
    retain_freed_memory,
)
from taskresize.io import Provenance, load_resizer, read_resizer_header, save_resizer
from taskresize.runs import RunFolder
from taskresize.sizes import format_size
from taskresize.training.callbacks import EpochLog, EpochSeed, NonFiniteLoss, PreciseBatchNorm, RunProgressBar
from taskresize.training.config import PATH_KEYS, RECORD_KEYS, RESUMABLE, TrainConfig, read_yaml, write_yaml
from taskresize.training.registry import TaskSpec, get_task, metrics_from
from taskresize.training.tasks.base import ResizerTask

LAST, BEST = RunFolder.LAST, RunFolder.BEST


@contextlib.contextmanager
def quiet_lightning():
    """Silence Lightning's hints that do not apply here (CPU-only banners, the run folder existing, worker counts
    the user chose); real warnings still show."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        try:
            yield
        finally:
            logger.setLevel(level)


class RunError(TaskresizeError):
    """A run folder that cannot be used as asked; the message says what to do instead."""


class TrainingDiverged(RunError):
    """The training loss became NaN or infinite."""


def default_output(cfg: TrainConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{cfg.resizer}-{format_size(cfg.input_size)}to{format_size(tuple(cfg.out_size))}"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint, read with ``weights_only=True`` (a crafted file cannot run code)."""
    try:
        checkpoint = torch_load_weights_only(path)
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except DamagedFileError as error:
        raise RunError(str(error)) from None
    except UnsafeFileError as error:
        raise RunError(f"not a checkpoint this program can load safely: {error}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise RunError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def input_normalization(cfg: TrainConfig, seen: tuple[str, ...] = ()) -> Normalization:
    """What the backbone's inputs are normalised with: as its pretrained weights were trained (timm's
    ``pretrained_cfg``, torchvision's weights, packaged weights); for a run initialised from another (``init``),
    as that run's were, so a second phase sees what the first saw; else ImageNet's."""
    norm = pretrained_normalization(cfg.backbone, cfg.pretrained)
    if norm is not None:
        return norm
    if cfg.init and RunFolder(cfg.init).is_run and cfg.init not in seen:
        earlier, _ = load_run_config(cfg.init)
        return input_normalization(earlier, (*seen, cfg.init))
    return IMAGENET


def build(
    cfg: TrainConfig, eval_root: str | None = None, normalization: Normalization | None = None
) -> tuple[TaskSpec, Any, ResizerTask]:
    """The task's spec, its data module and a freshly initialised module for ``cfg`` (its inputs normalised with
    ``normalization``, default :func:`input_normalization`)."""
    spec = get_task(cfg.task)
    data = spec.data(cfg, eval_root=eval_root)
    values = cfg.to_dict() | {"input_normalization": (normalization or input_normalization(cfg)).to_dict()}
    return spec, data, spec.module(values, **data.module_kwargs())


def _initialise(task: ResizerTask, cfg: TrainConfig) -> list[str]:
    """Apply ``pretrained``, ``init`` and ``init_resizer``; returns what was loaded, for the log."""
    loaded = []
    if cfg.pretrained:
        skipped = task.load_pretrained(cfg.pretrained)
        zeroed = zero_new_classifiers(task.backbone, skipped)
        loaded.append(f"backbone <- {cfg.pretrained}" + (f" (new {', '.join(skipped)})" if skipped else "")
                      + (f"; new {', '.join(zeroed)} zeroed" if zeroed else ""))  # fmt: skip
    if cfg.init:
        run = RunFolder(cfg.init)
        if not run.is_run:
            raise RunError(f"--init {run}: not a run folder (no {RunFolder.CONFIG})")
        earlier = TrainConfig.from_dict(read_yaml(run.config_file), source=str(run.config_file))
        if earlier.task != cfg.task:
            raise RunError(f"--init {run} is a {earlier.task} run; this run is {cfg.task}: use --init-resizer {run}")
        if earlier.backbone != cfg.backbone:
            raise RunError(
                f"--init {run} trained backbone {earlier.backbone}, this run uses {cfg.backbone}; to carry over only "
                f"the resizer, use --init-resizer {run}"
            )
        state = load_checkpoint(run / LAST)["state_dict"]
        backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        skipped = _load_partial(task.backbone, backbone, f"{run / LAST} (backbone)")
        loaded.append(f"backbone <- {run}" + (f" (new {', '.join(skipped)})" if skipped else ""))
        if run.resizer_file.is_file() and earlier.resizer == cfg.resizer and cfg.init_resizer is None:
            _load_resizer_weights(task, run.path)
            loaded.append(f"resizer <- {run}")
    if cfg.init_resizer:
        _load_resizer_weights(task, cfg.init_resizer)
        loaded.append(f"resizer <- {cfg.init_resizer}")
    return loaded


def _load_partial(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> list[str]:
    own = module.state_dict()
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    if missing or unexpected or len(mismatched) > 2:
        raise RunError(
            f"{what} does not fit this model (missing {sorted(missing)[:4]}, unknown {sorted(unexpected)[:4]})"
        )
    module.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    return mismatched


def _load_resizer_weights(task: ResizerTask, source: str | os.PathLike) -> None:
    header = read_resizer_header(source)
    if header["name"] != task.resizer.resizer_name:
        raise RunError(f"{source} holds a {header['name']!r} resizer; this run trains {task.resizer.resizer_name!r}")
    donor = load_resizer(source)
    ours = {k: v for k, v in task.resizer.config().items() if k != "output_size"}
    theirs = {k: v for k, v in donor.config().items() if k != "output_size"}
    if ours != theirs:
        raise RunError(f"{source}: resizer config {theirs} differs from this run's {ours}")
    task.resizer.load_state_dict(donor.state_dict())


def _trainer(
    cfg: TrainConfig, out: Path, callbacks: list[L.Callback], one_device: int | None = None, **kwargs: Any
) -> L.Trainer:
    """Lightning's Trainer for ``cfg``; ``one_device``: a single process on that device index (``eval``)."""
    devices, num_nodes = cfg.devices, cfg.num_nodes
    if "LOCAL_WORLD_SIZE" in os.environ and one_device is None:  # launched by torchrun: one process per device
        devices = int(os.environ["LOCAL_WORLD_SIZE"])
        num_nodes = int(os.environ.get("WORLD_SIZE", devices)) // devices
    distributed = devices * num_nodes > 1 and one_device is None
    accelerator = resolve_accelerator(cfg.accelerator)
    if one_device is not None:
        devices, num_nodes = ([one_device] if accelerator == "gpu" else 1), 1
    precision = resolve_precision(cfg.precision, accelerator)
    # batches stack at one input size: let cuDNN pick its fastest convolution algorithms once (a process-wide
    # setting that the training command, an application, makes; Lightning applies it)
    kwargs.setdefault("benchmark", True if accelerator == "gpu" else None)
    return L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp" if distributed else "auto",
        precision=precision, sync_batchnorm=cfg.sync_batchnorm and distributed, max_epochs=cfg.epochs,
        default_root_dir=str(out), callbacks=callbacks,
        num_sanity_val_steps=0, use_distributed_sampler=False, enable_model_summary=False,
        log_every_n_steps=10, **kwargs,
    )  # fmt: skip


def load_run_config(run_dir: str | os.PathLike) -> tuple[TrainConfig, dict[str, Any]]:
    """A run folder's ``config.yaml`` as a config with absolute paths, and its record keys (history, paths as
    given). Relative paths (run folders of earlier versions) are taken from the folder the run was started in:
    the run folder's path less its saved ``output``, if the saved one is relative, else the working folder."""
    run = Path(run_dir)
    values = read_yaml(RunFolder(run).config_file)
    cfg = TrainConfig.from_dict(values, source=str(RunFolder(run).config_file))
    records = {k: values[k] for k in RECORD_KEYS if k in values}
    origin = Path.cwd()
    saved_output = Path(values.get("output") or run.name)
    if not saved_output.is_absolute():
        here = run.absolute().parts
        if here[len(here) - len(saved_output.parts) :] == saved_output.parts:
            origin = Path(*here[: len(here) - len(saved_output.parts)])
    for key in PATH_KEYS:
        value = getattr(cfg, key)
        if value is not None and key != "output":
            cfg.resolve_paths(next((b for b in (origin, Path.cwd()) if (b / value).exists()), origin), keys=(key,))
    cfg.output = str(run.absolute())
    return cfg, records


def _checkpoint_to_resume(out: Path) -> tuple[Path | None, int]:
    """The checkpoint a resumed run continues from and its epoch (0-based): ``last.ckpt``, else (damaged) a whole
    ``best.ckpt``, saying so; ``(None, -1)`` when no epoch had finished."""
    problems = []
    for name in (LAST, BEST):
        path = out / name
        if not path.exists():
            continue
        try:
            epoch = int(load_checkpoint(path).get("epoch", -1))
        except RunError as error:
            problems.append(str(error))
            continue
        if problems and rank_zero_only.rank == 0:
            print(f"warning: {problems[0]}; resuming from {path} (epoch {epoch + 1}) instead", file=sys.stderr)
        return path, epoch
    if problems:
        raise RunError(
            f"cannot resume: {'; '.join(problems)}; no other checkpoint is whole: delete {out} to start the run "
            "again, or choose another --output"
        )
    return None, -1


def _resumed_config(
    saved: TrainConfig,
    cfg: TrainConfig,
    given: Collection[str] | None,
    finished: int,
    shown: Path,
    lr_default: bool = False,
) -> tuple[TrainConfig, dict[str, list]]:
    """The saved config with the settings given again that differ from it; refuses changes that are not safe.
    A run that finished no epoch starts again with any change, its default learning rate scaled to a new batch
    size (``lr_default``: the saved rate was the default); a resumed one keeps its optimiser's rate."""
    if given is None:  # the library's plain resume (sweeps): the saved config as it is
        return saved, {}
    old, new = saved.to_dict(), cfg.to_dict()
    changed = {k: [old[k], new[k]] for k in new if k in given and k != "output" and old.get(k) != new[k]}
    if finished >= 0:
        refused = [k for k in changed if k not in RESUMABLE]
        if refused:
            listing = "; ".join(f"{k} {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused)
            raise RunError(
                f"{shown} was trained with other settings ({listing}); --resume can change only "
                f"{', '.join(RESUMABLE)}: leave the others out, or start a new run with another --output"
            )
        if "epochs" in changed and changed["epochs"][1] < finished + 1:
            raise RunError(
                f"epochs = {changed['epochs'][1]}: {shown} has already finished {finished + 1} epochs; "
                f"give --epochs {finished + 1} or more"
            )
    values = {**old, **{k: v[1] for k, v in changed.items()}}
    if finished < 0 and lr_default and "lr" not in given:
        values["lr"] = None
    merged = TrainConfig.from_dict(values)
    if merged.learning_rate != old["lr"]:
        changed["lr"] = [old["lr"], merged.learning_rate]
    return merged, changed


def _clear_unstarted(out: Path) -> None:
    """Remove what a run that finished no epoch left besides its config (a new start writes them afresh)."""
    RunFolder(out).epochs_file.unlink(missing_ok=True)
    if (out / RunFolder.TENSORBOARD).is_dir():
        shutil.rmtree(out / RunFolder.TENSORBOARD)


def _check_output(cfg: TrainConfig, shown: Path, resume: bool) -> None:
    """Refuse an output that cannot hold this run, before anything is written: a file, a folder inside the data (it
    would be read as data: a class folder of the next run), or, for a ``resume`` asked by the user, a folder that
    holds no run."""
    out = Path(cfg.output or shown)
    if out.exists() and not out.is_dir():
        raise RunError(f"--output {shown} is a file: give a folder for the run (it is created if needed)")
    data = Path(cfg.data)
    if data.is_dir() and Path(os.path.realpath(out)).is_relative_to(os.path.realpath(data)):
        raise RunError(
            f"--output {shown} is inside --data {cfg.data}: the run's files would be read as data (a class folder "
            "of the next run on it); choose an --output outside the data"
        )
    if resume and not RunFolder(out).is_run:
        what = "does not exist" if not out.exists() else f"holds no run (no {RunFolder.CONFIG})"
        raise RunError(f"--resume: {shown} {what}; give the folder of the run to continue, or leave --resume out")


def _check_device_and_memory(cfg: TrainConfig, accelerator: str) -> None:
    """Refuse an accelerator this machine does not have, and sizes whose batch alone would not fit in its memory."""
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise RunError("--accelerator gpu: no CUDA GPU is visible to this process; use --accelerator cpu or auto")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise RunError("--accelerator mps: MPS is not available on this machine; use --accelerator cpu or auto")
    (ih, iw), (oh, ow) = cfg.input_size, cfg.out_size
    needed = cfg.batch_size * 3 * (ih * iw + oh * ow) * 4  # one float32 batch at the input and output sizes
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if needed > total:
        raise RunError(
            f"in_size {format_size(cfg.input_size)}, out_size {format_size(tuple(cfg.out_size))} at batch size "
            f"{cfg.batch_size}: one batch of images alone needs {needed / 1e9:,.1f} GB, and this machine has "
            f"{total / 1e9:,.1f} GB of memory; give smaller sizes or a smaller --batch-size"
        )


@contextlib.contextmanager
def lightning_refusals():
    """Lightning's refusals of settings (an accelerator or strategy this machine lacks) as :class:`RunError`."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except MisconfigurationException as error:
        raise RunError(f"{error}".strip().splitlines()[0]) from None


def remove_stale_temporary_files(out: Path) -> None:
    """Remove the temporary files of writes that a kill interrupted (``.last.1a2b3c4d.tmp.ckpt``): only this
    process writes in the folder now, so none of them is in use."""
    for path in out.glob(".*.tmp*"):
        if path.is_file() and ".tmp" in path.name:
            with contextlib.suppress(OSError):
                path.unlink()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary file and a rename: a kill while saving leaves the
    previous checkpoint whole instead of a truncated one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None) -> None:
        with atomic_open(path) as f:
            torch.save(checkpoint, f)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    callbacks: list[L.Callback] | None = None,
    given: Collection[str] | None = None,
) -> Path:
    """Train a resizer and a backbone jointly; returns the run folder.

    With ``resume``, an unfinished run in ``cfg.output`` continues from its last finished epoch, and a finished
    one is left as it is. ``given`` names the settings the user gave (flags, a config file): on resume, those that
    differ from the run's saved ones are taken if in :data:`RESUMABLE` and recorded in ``config.yaml``, and any
    other difference is refused; without ``given`` the saved config is used as it is. A folder whose run finished
    no epoch (it failed at start) does not block a new start. ``callbacks`` are added to Lightning's.
    """
    cfg = dataclasses.replace(cfg)
    shown = Path(cfg.output) if cfg.output else default_output(cfg)
    cfg.output = str(shown)
    as_given = cfg.resolve_paths(Path.cwd())
    out = Path(cfg.output)
    ckpt_path, records, changed, finished, restart, extend = None, {}, {}, -1, False, False
    folder = RunFolder(out)
    _check_output(cfg, shown, resume=resume and given is not None)
    if folder.is_run:
        if resume and folder.is_finished:
            saved_epochs = folder.config().get("epochs")
            more = isinstance(saved_epochs, int) and cfg.epochs > saved_epochs
            if given is None or "epochs" not in given or not more:
                print(f"{shown} is finished ({RunFolder.METRICS} exists); nothing to do"
                      + (f" (give --epochs more than {saved_epochs} to train it further)"
                         if isinstance(saved_epochs, int) and given is not None else ""))  # fmt: skip
                return shown
            extend = True  # a finished run trained further: resumed from its last checkpoint
        if extend and not folder.checkpoints:
            raise RunError(f"{shown} is finished but holds no checkpoint to train further from: start a new run")
        if (
            folder.checkpoints or folder.is_finished
        ) and not resume:  # a finished run whose checkpoints were deleted too
            raise RunError(f"{shown} already holds a run: pass --resume to continue it, or choose another --output")
        if resume:
            saved, records = load_run_config(out)
            ckpt, finished = _checkpoint_to_resume(out)
            ckpt_path = str(ckpt) if ckpt else None
            cfg, changed = _resumed_config(saved, cfg, given, finished, shown, records.get("lr_default", False))
            as_given = records.get("paths_as_given", {}) | as_given
        restart = ckpt_path is None and rank_zero_only.rank == 0  # other processes may see rank 0's new file

    accelerator = resolve_accelerator(cfg.accelerator)  # the settings as resolved on this machine
    _check_device_and_memory(cfg, accelerator)  # before the data is scanned
    on_cuda = accelerator == "gpu" and torch.cuda.is_available()
    if cfg.decode_on == "device" and not on_cuda and rank_zero_only.rank == 0:
        print("decode_on device without a CUDA GPU: the training process decodes the JPEGs on the CPU, slower than "
              "the loader's workers do (decode_on cpu)", file=sys.stderr)  # fmt: skip
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    spec, data, task = build(cfg)
    loaded = _initialise(task, cfg) if ckpt_path is None else []

    interactive = sys.stderr.isatty()
    epoch_log = EpochLog(folder.epochs_file, spec.metrics, echo=True, above_bar=interactive)
    # Two callbacks: Lightning 2.6 writes save_last's file only in epochs that improve the monitored metric.
    # Both save when validation ends, after EpochLog has made the epoch's row (it is kept in them) and before
    # epochs.csv is written: a row in the file means its epoch is saved.
    common = {"dirpath": str(out), "enable_version_counter": False, "save_on_train_epoch_end": False}
    best = ModelCheckpoint(filename="best", monitor=spec.monitor, mode=spec.mode, **common)
    last = ModelCheckpoint(filename="last", **common)
    diverged = NonFiniteLoss(TrainingDiverged, out)
    callbacks = [epoch_log, EpochSeed(cfg.seed), diverged, PreciseBatchNorm(cfg.precise_bn), best, last,
                 *(callbacks or [])]  # fmt: skip
    if interactive:
        callbacks.append(RunProgressBar(refresh_rate=5))
    logger = TensorBoardLogger(save_dir=str(out), name="tb", version="", default_hp_metric=False)
    with quiet_lightning(), lightning_refusals():
        trainer = _trainer(cfg, out, callbacks, logger=logger, enable_progress_bar=interactive,
                           plugins=[AtomicCheckpointIO()])  # fmt: skip
    refuse_slow_precision(trainer.precision, accelerator)  # before anything is written
    try:
        data.train_batch_size(trainer.world_size)  # at least two images per process, before anything is written
    except DataError as error:
        raise RunError(str(error)) from None

    retained = accelerator == "cpu" and retain_freed_memory()  # each process: see hardware.retain_freed_memory
    if trainer.is_global_zero:
        if restart:
            print(f"{shown} holds a run that finished no epoch; starting it again", file=sys.stderr)
            _clear_unstarted(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporary_files(out)
        if ckpt_path:
            entry = {"date": dt.datetime.now().isoformat(timespec="seconds"), "from_epoch": finished + 1}
            records["resumed"] = [*records.get("resumed", []), entry | ({"changed": changed} if changed else {})]
        if as_given:
            records["paths_as_given"] = as_given
        if ckpt_path is None:
            records["lr_default"] = cfg.lr is None
        workers = cfg.workers if cfg.workers is not None else default_workers(trainer.num_devices)
        records["ran_on"] = {"accelerator": accelerator, "precision": trainer.precision, "devices": trainer.num_devices,
                             "num_nodes": trainer.num_nodes, "workers": workers,
                             "retained_freed_memory": retained}  # fmt: skip
        write_yaml(folder.config_file, cfg.to_dict() | records)
        if extend:  # unfinished again until the new epochs are trained (a kill now leaves a run to resume)
            folder.metrics_file.unlink(missing_ok=True)
        for key, (before, after) in changed.items():
            print(f"{'resuming' if ckpt_path else 'starting'} with {key} = {after!r} (was {before!r})")
        for line in loaded:
            print(f"initialised {line}")
    started = time.perf_counter()
    try:
        with quiet_lightning():
            trainer.fit(task, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning exits after a graceful shutdown on Ctrl-C
        if not trainer.interrupted:
            raise
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        last = folder.checkpoint(LAST)
        kept = f"the last good checkpoint, {last}, is kept" if last.exists() else "no epoch had finished"
        raise RunError(
            f"no space left on the device while writing in {shown} ({error.filename or 'a checkpoint'}); {kept}. "
            f"Free some space, then: taskresize train --output {shown} --resume"
        ) from None
    except ValueError as error:
        if "Expected more than 1 value per channel when training" not in str(error):
            raise
        raise RunError(
            f"a training batch of one image cannot train this model's BatchNorm layers at out_size "
            f"{format_size(tuple(cfg.out_size))}: use a batch size of 2 or more (now {cfg.batch_size})"
        ) from None
    if trainer.interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C
        raise KeyboardInterrupt(
            f"stopped; the last finished epoch is saved: taskresize train --output {shown} --resume"
        )
    if spec.monitor not in trainer.callback_metrics:  # resumed after its last epoch was saved: nothing ran
        with quiet_lightning():
            trainer.validate(task, datamodule=data, verbose=False)
    if trainer.is_global_zero:
        metrics = run_metrics(spec, task, trainer.callback_metrics, data)
        metrics["epochs"] = trainer.current_epoch
        metrics["seed"] = cfg.seed
        metrics["train_images_per_s"] = round(epoch_log.images_per_second, 2)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
        if task.has_learned_resizer:
            provenance = Provenance(
                task=cfg.task, backbone=cfg.backbone, data=data.root, in_size=list(cfg.input_size),
                out_size=list(cfg.out_size), pre_resize=cfg.pre_resize, pre_resize_antialias=cfg.pre_resize_antialias,
                normalization=task.normalization(), run=str(out), date=dt.datetime.now().isoformat(timespec="seconds"),
                metrics={k: metrics[k] for k in (*spec.metrics, "flops_resizer", "flops_total") if k in metrics},
            )  # fmt: skip
            save_resizer(task.resizer, folder.resizer_file, provenance=provenance)
        atomic_write_json(folder.metrics_file, metrics)
    return shown


def run_metrics(spec: TaskSpec, task: ResizerTask, logged: dict, data: Any) -> dict[str, Any]:
    """The metrics.json of a run: the final validation metrics, FLOPs per image, parameters, data sizes."""
    flops = task.flops()
    return {
        **metrics_from(spec, logged),
        "flops_total": flops["resizer"] + flops["backbone"],
        "flops_resizer": flops["resizer"],
        "flops_backbone": flops["backbone"],
        "params_resizer": count_parameters(task.resizer),
        "params_backbone": count_parameters(task.backbone),
        "val_images": data.val_size,
        "train_images": data.train_size,
    }


def evaluate(
    run_dir: str | os.PathLike, data: str | None = None, checkpoint: str = LAST, device: str = "auto"
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on its validation split, or on ``data`` (for classification, a folder with the
    same classes: its ``val/`` sub-folder if it has one, else every image in it), in one process on ``device``
    (:func:`taskresize.hardware.resolve_device`), whatever devices the run trained on."""
    run = Path(run_dir)
    if not RunFolder(run).is_run:
        raise RunError(f"{run} is not a run folder (no {RunFolder.CONFIG})")
    cfg, _ = load_run_config(run)
    chosen = resolve_device(device)
    cfg.accelerator = {"cuda": "gpu"}.get(chosen.type, chosen.type)
    cfg.devices, cfg.num_nodes = 1, 1
    ckpt = load_checkpoint(run / checkpoint)
    saved = ckpt.get("hyper_parameters", {}).get("config", {})
    if saved.get("task") != cfg.task or saved.get("backbone") != cfg.backbone:
        raise RunError(
            f"{run / checkpoint} was written by a {saved.get('task')} run with backbone {saved.get('backbone')}, "
            f"not by this {cfg.task} run with {cfg.backbone}"
        )
    trained_with = saved.get("input_normalization")  # what the checkpoint's run normalised with
    spec, datamodule, task = build(cfg, data, Normalization.from_dict(trained_with) if trained_with else None)
    task.load_state_dict(ckpt["state_dict"])
    with quiet_lightning():
        trainer = _trainer(cfg, run, [], one_device=chosen.index or 0, logger=False, enable_progress_bar=False)
        trainer.validate(task, datamodule=datamodule, verbose=False)
    return {
        **metrics_from(spec, trainer.callback_metrics),
        "checkpoint": str(run / checkpoint),
        "data": str(datamodule.root),
        "val_images": datamodule.val_size,
    }
