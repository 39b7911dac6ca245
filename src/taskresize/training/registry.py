"""The task registry: what a task is to the run machinery, and the one place tasks are found.

A task is one module in :mod:`taskresize.training.tasks` (its LightningModule, its data module, its metrics)
that calls :func:`register_task` with a :class:`TaskSpec`. The training runs, ``eval``, sweeps and reports know tasks
only through the spec. The registry finds the package's task modules itself (every module of
``taskresize.training.tasks`` is imported on first use), so a new task is one file; a task living in another
package registers when that package is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskresize.errors import did_you_mean


@dataclass(frozen=True)
class TaskSpec:
    """How the generic run machinery drives a task.

    Attributes:
        name: the value of ``--task``.
        module: a :class:`~taskresize.training.tasks.base.ResizerTask` subclass, built as
            ``module(config_dict, **data.module_kwargs())``.
        data: a LightningDataModule class built as ``data(cfg)`` (or ``data(cfg, eval_root=DIR)`` for ``eval
            --data DIR``); it provides ``module_kwargs()``, ``root``, ``train_size``, ``val_size`` and
            ``precise_bn_loader(batches, epoch)``.
        metrics: ``metrics.json`` key -> logged validation metric, the first one is monitored for ``best.ckpt``.
        mode: ``"min"`` if smaller is better for the monitored metric, else ``"max"``.
        percent: the ``metrics.json`` keys that are fractions (reports show them in percent); a per-class metric
            ``class/<class>_<name>`` is one when ``<name>`` is listed (e.g. ``iou``, ``top1_error``).
        defaults: config values of this task that differ from :class:`TrainConfig`'s defaults (e.g. the paper's
            bicubic baseline for IQA); a value given in a config file or flag still wins.
        example: the config values of a run of a few seconds on a small generated data set (data, backbone,
            sizes, epochs): what the registry-wide tests train and evaluate for every task.
    """

    name: str
    module: type
    data: type
    metrics: dict[str, str]
    mode: str = "min"
    percent: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    example: Callable[[], dict[str, Any]] | None = None

    @property
    def monitor(self) -> str:
        return next(iter(self.metrics.values()))

    def is_percent(self, key: str) -> bool:
        """Whether the ``metrics.json`` value ``key`` is a fraction, shown in percent."""
        if key.startswith(PER_CLASS):  # class/<class>_<metric>
            return any(key.endswith(f"_{metric}") for metric in self.percent)
        return key in self.percent


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"a task named {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


_FOUND = False


TASK_PACKAGE = "taskresize.training.tasks"


def _load_builtin_tasks() -> None:
    """Import every module of :data:`TASK_PACKAGE` once: each task module registers itself (discovery by name,
    as for plugins: the registry knows no task; the package's shared modules register nothing)."""
    global _FOUND
    if _FOUND:
        return
    _FOUND = True
    for module in pkgutil.iter_modules(importlib.import_module(TASK_PACKAGE).__path__):
        importlib.import_module(f"{TASK_PACKAGE}.{module.name}")


def task_names() -> list[str]:
    _load_builtin_tasks()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    _load_builtin_tasks()
    try:
        return _TASKS[name]
    except (KeyError, TypeError):  # TypeError: a YAML value that is no name (a list, a mapping)
        hint = did_you_mean(name, _TASKS)
        raise ValueError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(_TASKS))}") from None


PER_CLASS = "class/"  # a task logs per-class metrics as "val/class/<class>_<metric>"; metrics.json keeps the key


def metrics_from(spec: TaskSpec, logged: dict[str, Any]) -> dict[str, float]:
    """The ``metrics.json`` values of ``spec`` from Lightning's logged metrics, then any per-class ones."""
    names = {**{name: key for key, name in spec.metrics.items()},
             **{name: name.removeprefix("val/") for name in logged if name.startswith("val/" + PER_CLASS)}}  # fmt: skip
    return {key: round(float(logged[name]), 6) for name, key in names.items() if name in logged}
