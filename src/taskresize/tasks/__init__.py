"""Tasks: a resizer in front of a backbone, one LightningModule and one data module per task.

A task registers a :class:`TaskSpec`; the training runs, ``eval`` and ``sweep`` know tasks only through it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    """How the generic run machinery drives a task.

    Attributes:
        name: the value of ``--task``.
        module: a :class:`~taskresize.tasks.base.ResizerTask` subclass, built as
            ``module(config_dict, **data.module_kwargs())``.
        data: a LightningDataModule class built as ``data(cfg)`` (or ``data(cfg, eval_root=DIR)`` for ``eval
            --data DIR``); it provides ``module_kwargs()``, ``root``, ``train_size``, ``val_size`` and
            ``precise_bn_loader(batches, epoch)``.
        metrics: ``metrics.json`` key -> logged validation metric, the first one is monitored for ``best.ckpt``.
        mode: ``"min"`` if smaller is better for the monitored metric, else ``"max"``.
        defaults: config values of this task that differ from :class:`TrainConfig`'s defaults (e.g. the paper's
            bicubic baseline for IQA); a value given in a config file or flag still wins.
    """

    name: str
    module: type
    data: type
    metrics: dict[str, str]
    mode: str = "min"
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def monitor(self) -> str:
        return next(iter(self.metrics.values()))


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"a task named {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def _load_builtin_tasks() -> None:
    from . import (  # noqa: F401 - register themselves
        classification,
        detection,
        iqa,
        segmentation,
    )


def task_names() -> list[str]:
    _load_builtin_tasks()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    _load_builtin_tasks()
    try:
        return _TASKS[name]
    except (KeyError, TypeError):  # TypeError: a YAML value that is no name (a list, a mapping)
        close = difflib.get_close_matches(str(name), _TASKS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(_TASKS))}") from None


PER_CLASS = "class/"  # a task logs per-class metrics as "val/class/<class>_<metric>"; metrics.json keeps the key


def metrics_from(spec: TaskSpec, logged: dict[str, Any]) -> dict[str, float]:
    """The ``metrics.json`` values of ``spec`` from Lightning's logged metrics, then any per-class ones."""
    names = {**{name: key for key, name in spec.metrics.items()},
             **{name: name.removeprefix("val/") for name in logged if name.startswith("val/" + PER_CLASS)}}  # fmt: skip
    return {key: round(float(logged[name]), 6) for name, key in names.items() if name in logged}
