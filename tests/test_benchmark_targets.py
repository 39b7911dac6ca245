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
    assert "where the resizer's time goes" not in targets._format([plain])
    table = targets._format([plain, explained])
    assert table.splitlines()[0].endswith("where the resizer's time goes |")
    assert table.splitlines()[-1].endswith("| **no** | resizer 10 GFLOP/s |")
    assert "– GFLOP/s" in targets.where_time_goes(13.0, 300.0, math.nan, 1.0, "share 0.0%")
