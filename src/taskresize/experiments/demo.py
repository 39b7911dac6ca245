"""The demo: ``taskresize compare`` on the built-in dataset with the small settings of ``demo.yaml`` beside this
module (its report is the demo's table; see :mod:`taskresize.experiments.compare` for the grid)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskresize.experiments.compare import CompareSettings, Outcome, run_compare, settings_from
from taskresize.training.config import read_yaml

DEMO_FILE = Path(__file__).with_name("demo.yaml")


def demo_settings(**changes: Any) -> CompareSettings:
    """The demo's comparison, with ``changes`` (e.g. ``seeds=3``, ``train={"workers": 0}``: merged into the
    file's train settings) applied."""
    values = read_yaml(DEMO_FILE)
    train = {**values.get("train", {}), **changes.pop("train", {})}
    return settings_from({**values, **changes, "train": train}, str(DEMO_FILE))


def run_demo(
    output: str | Path = "runs/demo",
    settings: CompareSettings | None = None,
    log: Callable[[str], None] = print,
    **execution: Any,
) -> Outcome:
    """Run the demo's comparison in ``output`` (finished runs are kept, unfinished ones resumed); ``execution``:
    ``workers``, ``ray``, ``ray_options`` as for :func:`~taskresize.experiments.sweep.run.run_sweep`.

    Raises:
        RuntimeError: a run failed (the sweep's ``failures.yaml`` and the run's ``error.txt`` say why).
    """
    outcome = run_compare(settings or demo_settings(), output, log=log, **execution)
    failed = {name: state for name, state in outcome.states.items() if state.startswith(("failed", "blocked"))}
    if failed:
        raise RuntimeError(f"demo runs did not finish: {failed}")
    return outcome
