"""benchmarks/targets.py's explanation of a learned row: the profile split that says where a resizer's time goes."""

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def targets():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("targets")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize(
    "work, in_products",
    [
        (lambda a: a @ a, True),
        (lambda a: torch.nn.functional.conv2d(a[None, None], torch.ones(4, 1, 3, 3)), True),
        (lambda a: a.exp().sum(), False),
        (lambda a: torch.nn.functional.leaky_relu(a, 0.2) * 3, False),
    ],
)
def test_split_puts_convolutions_and_matrix_products_on_one_side_and_the_rest_on_the_other(targets, work, in_products):
    a = torch.rand(512, 512)
    products, other = targets.split(lambda: work(a), calls=2)
    assert products + other > 0
    share = products / (products + other)
    # the operators around a product (argument checks, views) take little of its time, even on a busy machine
    assert share > 0.5 if in_products else share == 0.0


@pytest.mark.parametrize(("operator", "product"), [
    ("aten::mm", True), ("aten::addmm", True), ("aten::bmm", True), ("aten::baddbmm", True), ("aten::matmul", True),
    ("aten::linear", True),
    ("aten::mkldnn_convolution", True), ("aten::convolution_backward", True), ("aten::convolution", True),
    ("mkldnn::_convolution_pointwise", True), ("aten::copy_", False), ("aten::leaky_relu_backward", False),
    ("aten::native_batch_norm", False), ("aten::upsample_bilinear2d", False), ("aten::addcmul", False),
    ("aten::index_select", False), ("aten::mul", False),
])  # fmt: skip
def test_operators_are_told_apart_by_name(targets, operator, product):
    assert targets.is_product(operator) is product


def test_timed_ratios_returns_the_ratio_statistics_and_the_medians_of_each_side(targets, monkeypatch):
    times = {"a": [4.0, 1.0, 3.0], "b": [2.0, 2.0, 1.0]}  # interleaved rounds, in seconds
    monkeypatch.setattr(targets, "interleaved", lambda fns, repeats: times if repeats == 3 else None)
    (median, low, high), t_a, t_b = targets.timed_ratios(lambda: None, lambda: None, 3, lambda a, b: a / b)
    assert (median, low, high) == (2.0, 0.5, 3.0)  # ratios 2, 0.5, 3: per round, not of the medians
    assert (t_a, t_b) == (3.0, 2.0)
    assert targets.ratios(lambda: None, lambda: None, 3, lambda a, b: a / b) == (2.0, 0.5, 3.0)


def test_only_tables_with_an_explained_row_get_the_column(targets):
    plain = targets.row("classic", (2.0, 1.5, 2.5), "≥ 1×", True)
    explained = targets.row("learned", (3.0, 2.0, 4.0), "≤ 2×", False, where="resizer 10 GFLOP/s")
    assert "where the resizer's time goes" not in targets._format([plain], {})
    table = targets._format([plain, explained], {})
    assert table.splitlines()[0].endswith("where the resizer's time goes |")
    assert table.splitlines()[-1].endswith("| **no** | new row | resizer 10 GFLOP/s |")
    assert "– GFLOP/s" in targets.where_time_goes(13.0, 300.0, math.nan, 1.0, "share 0.0%")


RESULTS = """### Performance targets, 2026-12-08

| what | measured: median (range) | target | met | last recorded: change |
|---|---:|---|---|---|
| share row | 20.00% (19.00-21.00) | ≤ 15% | **no** | 24.33% on 2026-12-06: -4.33 points |

### Alternatives, 2026-12-08

| share row | 99.00% (1-2) | x | x |

### Performance targets (older), 2026-12-06

| share row | 24.33% (24.17-25.68) | ≤ 15% | **no** |
| ratio row | 2.50× (2.40-2.60) | ≤ 2× | **no** |
"""


def test_each_row_is_read_against_its_newest_recorded_figure(targets):
    before = targets.recorded(RESULTS)
    assert before == {"share row": (20.0, "%", "2026-12-08"), "ratio row": (2.5, "×", "2026-12-06")}
    share = targets.row("share row", (0.18, 0.17, 0.19), "≤ 15%", False, unit="%")
    ratio = targets.row("ratio row", (2.0, 1.9, 2.1), "≤ 2×", True)
    assert targets.change(share, before["share row"]) == "20.00% on 2026-12-08: -2.00 points"
    assert targets.change(ratio, before["ratio row"]) == "2.50× on 2026-12-06: ×0.80"
    table = targets._format([share, ratio, targets.row("new", (1.0, 1.0, 1.0), "x", True)], before)
    assert [line.split(" | ")[4].removesuffix(" |") for line in table.splitlines()[2:]] == [
        "20.00% on 2026-12-08: -2.00 points",
        "2.50× on 2026-12-06: ×0.80",
        "new row",
    ]
