"""A run folder: the one place that knows which files a training run writes and what they say about its state.

A run folder holds ``config.yaml`` (the resolved settings, written when the run starts), ``epochs.csv`` (one row
per epoch), ``tb/`` (TensorBoard), ``last.ckpt`` and ``best.ckpt`` (Lightning checkpoints), ``metrics.json``
(written when it finishes), ``resizer.safetensors`` (a learned resizer, with its provenance), and where they
happened ``eval.json`` (``taskresize eval``) and ``error.txt`` (a sweep's record of a run that failed); and while a
sweep trains it, ``sweep.lock`` (:mod:`taskresize.experiments.sweep.claims`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Status = Literal["finished", "started", "pending"]


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder, and its status."""

    path: Path  # a str or os.PathLike is accepted and made a Path

    CONFIG = "config.yaml"
    METRICS = "metrics.json"
    EPOCHS = "epochs.csv"
    LAST = "last.ckpt"
    BEST = "best.ckpt"
    RESIZER = "resizer.safetensors"
    EVAL = "eval.json"
    ERROR = "error.txt"
    LOCK = "sweep.lock"
    TENSORBOARD = "tb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    @property
    def epochs_file(self) -> Path:
        return self.path / self.EPOCHS

    @property
    def resizer_file(self) -> Path:
        return self.path / self.RESIZER

    @property
    def error_file(self) -> Path:
        return self.path / self.ERROR

    @property
    def lock_file(self) -> Path:
        return self.path / self.LOCK

    def checkpoint(self, name: str = LAST) -> Path:
        """A checkpoint in the folder: ``last.ckpt`` (default), ``best.ckpt`` or another name."""
        return self.path / name

    @property
    def checkpoints(self) -> list[Path]:
        """The run's checkpoints that exist, ``last.ckpt`` first."""
        return [p for p in (self.checkpoint(self.LAST), self.checkpoint(self.BEST)) if p.is_file()]

    @property
    def is_run(self) -> bool:
        """Whether a run started here (its ``config.yaml`` exists)."""
        return self.config_file.is_file()

    @property
    def is_finished(self) -> bool:
        return self.metrics_file.is_file()

    @property
    def status(self) -> Status:
        """``finished`` (``metrics.json``), ``started`` (``config.yaml``) or ``pending``."""
        if self.is_finished:
            return "finished"
        return "started" if self.is_run else "pending"

    def config(self) -> dict[str, Any]:
        """The saved settings as plain values (``{}`` when there is no readable ``config.yaml``)."""
        try:
            values = yaml.safe_load(self.config_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return {}
        return values if isinstance(values, dict) else {}

    def metrics(self) -> dict[str, Any] | None:
        """The final metrics, or ``None`` while the run is unfinished (or the file unreadable)."""
        try:
            values = json.loads(self.metrics_file.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return values if isinstance(values, dict) else None

    @classmethod
    def of_resizer_file(cls, path: str | os.PathLike) -> RunFolder | None:
        """The run folder a ``resizer.safetensors`` was written into, or ``None`` for a file outside any run."""
        path = Path(path)
        folder = cls(path.parent)
        return folder if path.name == cls.RESIZER and folder.is_run else None
