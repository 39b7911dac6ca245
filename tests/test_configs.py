"""The shipped sweep files: every classification, segmentation and detection sweep that pits a learned resizer
against classic resizing has both baselines: plain bilinear (the papers' TensorFlow baseline),
antialiased bilinear (Pillow's) and antialiased area, and its report compares every row with each of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskresize.experiments.sweep.plan import effective, load_sweep
from taskresize.experiments.sweep.report import Condition, methods, reference_of, references
from taskresize.resizers import METHODS
from taskresize.sizes import to_size

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
BASELINES = ("bilinear (plain)", "bilinear (antialias)", "area (antialias)")
TASKS = ("classification", "segmentation", "detection")


def _compared(path: Path) -> bool:
    sweep = load_sweep(path)
    return sweep.task in TASKS and any(str(run.values.get("resizer", "bilinear")) not in METHODS for run in sweep.runs)


COMPARED = [p for p in CONFIGS if _compared(p)]


def test_the_sweeps_that_compare_learned_resizers_are_found():
    names = {p.stem for p in COMPARED}
    assert {
        "ma_table1_detection",
        "ma_table2_segmentation",
        "ma_table6_scale_classification",
        "table9_distortions",
    } <= names
    assert "openclipart_resolution_check" not in names and "table5_iqa" not in names  # no learned rows; IQA


def classic_baseline(config: dict) -> str | None:
    """The classic resize that down-sizes a run's images, as a :func:`methods` label (``"bilinear (plain)"``), or
    None for a learned resizer: the resizer's where it down-sizes (``in_size`` larger than ``out_size``), else the
    data loader's pre-resize (the resizer is then the identity, or it up-scales what the pre-resize made small)."""
    if str(config.get("resizer")) not in METHODS:
        return None
    ran = methods(config)
    out = to_size(config.get("out_size") or 224, what="out_size")
    src = to_size(config["in_size"], what="in_size") if config.get("in_size") is not None else out
    return ran["resizer"] if src[0] > out[0] or src[1] > out[1] else ran["pre-resize"]


@pytest.mark.parametrize("path", COMPARED, ids=lambda p: p.stem)
def test_every_comparison_has_both_bilinear_baselines_and_area(path):
    sweep = load_sweep(path)
    resolved = [effective(run.values, run.name) for run in sweep.runs]
    found = {classic_baseline(values) for values in resolved} - {None}
    missing = [b for b in BASELINES if b not in found]
    assert not missing, f"{path.name}: no run of {missing} (has {sorted(found)})"


@pytest.mark.parametrize("path", COMPARED, ids=lambda p: p.stem)
def test_the_report_compares_with_each_baseline(path):
    sweep = load_sweep(path)
    conditions: dict[tuple, Condition] = {}
    for run in sweep.runs:
        identity = {k: v for k, v in run.identity.items() if k != "seed"}
        key = tuple(map(str, identity.items()))
        conditions.setdefault(key, Condition(identity, effective(run.values, run.name)))
    rows = list(conditions.values())
    refs = references(sweep)  # the three baselines first; others (e.g. at equal FLOPs) may follow
    assert [label for label, _ in refs[: len(BASELINES)]] == list(BASELINES)
    for label, criteria in refs[: len(BASELINES)]:
        learned = [c for c in rows if str(c.resolved["resizer"]) not in METHODS]
        for condition in learned:
            ref = reference_of(condition, rows, criteria)
            assert ref is not None, f"{path.name}: {condition.identity} has no {label} reference"
            assert classic_baseline(ref.resolved) == label, (path.name, condition.identity, ref.identity)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_rows_that_say_plain_are_plain(path):
    """What a sweep file's names promise is what its runs resolve to: a run named ``antialiasFalse`` /
    ``no_pre_resize_antialias`` runs without antialias, and no other classic row does."""
    sweep = load_sweep(path)
    for run in sweep.runs:
        ran = methods(effective(run.values, run.name))
        plain_resizer = "antialiasFalse" in run.name
        assert ("(plain)" in ran["resizer"]) == plain_resizer, (path.name, run.name, ran)
        assert ("(plain)" in ran["pre-resize"]) == ("no_pre_resize_antialias" in run.name), (path.name, run.name)
