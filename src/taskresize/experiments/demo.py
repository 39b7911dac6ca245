"""The demo: ``demo.yaml`` beside this module, a sweep file run by the sweep machinery (its report is the demo's
table), plus a figure of what the learned resizers make of validation images.

1. ``baseline``: the backbone trained from scratch on bilinear-resized images at the output size;
2. from that checkpoint, the same number of further epochs for each of: bilinear again (the control: what the
   extra epochs alone buy), the learnable resizer and DownsizeNet, both fed the larger input size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from taskresize.data.builtin.classification import builtin_dataset
from taskresize.data.decode import load_image
from taskresize.data.formats.folders import train_val_folders
from taskresize.data.split import SPLIT_SEED
from taskresize.experiments.figures import comparison_figure
from taskresize.experiments.sweep.plan import Sweep, expand
from taskresize.experiments.sweep.run import run_sweep
from taskresize.inference.image import load_image_resizer
from taskresize.resizers.classic import resize
from taskresize.runs import RunFolder
from taskresize.training.config import read_yaml

DEMO_SWEEP = Path(__file__).with_name("demo.yaml")
LEARNED = ("learnable", "downsizenet")  # the runs whose resizers the figure shows


def demo_sweep(base: Mapping[str, Any] | None = None, epochs: Mapping[str, int] | None = None) -> Sweep:
    """The demo's sweep, with ``base`` settings changed for every run (e.g. ``{"workers": 2}``) and the epochs of
    a stage (``{"baseline": 10, "joint": 5}``) changed for its runs."""
    spec = read_yaml(DEMO_SWEEP)
    spec["base"] = {**spec["base"], **(base or {})}
    spec["overrides"] = [{"match": {"stage": stage}, "set": {"epochs": n}} for stage, n in (epochs or {}).items()]
    return expand(spec, source=str(DEMO_SWEEP))


def run_demo(
    output: str | Path = "runs", sweep: Sweep | None = None, log: Callable[[str], None] = print
) -> tuple[Path, Path]:
    """Run the demo's sweep in ``output/demo/`` (finished runs are kept, unfinished ones resumed), then draw the
    figure. Returns the report (``report.md``) and the figure.

    Raises:
        RuntimeError: a run failed (the sweep's ``failures.yaml`` and the run's ``error.txt`` say why).
    """
    sweep = sweep or demo_sweep()
    outcome = run_sweep(sweep, output, log=log)
    failed = {name: state for name, state in outcome.items() if state.startswith(("failed", "blocked"))}
    if failed:
        raise RuntimeError(f"demo runs did not finish: {failed}")
    folder = Path(output) / sweep.name
    return folder / "report.md", demo_figure(folder)


def demo_figure(folder: Path, count: int = 4) -> Path:
    """Validation images of different classes at the resizers' input size, and what bilinear and each learned
    resizer make of them at the output size."""
    config = RunFolder(folder / LEARNED[0]).config()
    root = builtin_dataset() if config["data"] == "builtin" else Path(config["data"])
    classes, _, val = train_val_folders(root, config["val_split"], SPLIT_SEED)
    picked = [next(s for s in val if s.label == c) for c in range(0, len(classes), max(1, len(classes) // count))]
    picked = picked[:count]
    resizers = {name: load_image_resizer(folder / name) for name in LEARNED}
    in_size, out = resizers[LEARNED[0]].in_size, tuple(config["out_size"])
    pre_resize = resizers[LEARNED[0]].pre_resize
    images = torch.stack([resize(load_image(s.path), in_size, *pre_resize) for s in picked])
    columns = {"bilinear": lambda x: resize(x, out, "bilinear")}
    for name, resizer in resizers.items():
        columns[name] = lambda x, resizer=resizer: resizer.finish(x, out)
    rows = ", ".join(classes[s.label] for s in picked)
    title = f"Built-in dataset, {in_size[0]} -> {out[0]} px (rows: {rows})"
    return comparison_figure(images, columns, folder / "resized.png", reference="bilinear", title=title)
