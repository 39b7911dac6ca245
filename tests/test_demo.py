"""The demo: `taskresize compare` on the built-in set with demo.yaml's settings, end to end at a toy scale (the
real `make demo` takes minutes; docs/getting-started.md gives its time)."""

import pytest

from taskresize.experiments.compare import CompareSettings
from taskresize.experiments.demo import DEMO_FILE, demo_settings, run_demo
from taskresize.runs import RunFolder
from taskresize.training.config import read_yaml

from helpers import colour_folders


def test_the_demo_is_compare_on_the_builtin_set():
    settings = demo_settings()
    assert isinstance(settings, CompareSettings)
    assert settings.data == "builtin" and list(settings.resizers) == ["learnable", "downsizenet"]
    assert settings.seeds >= 2  # verdicts need two seeds
    changed = demo_settings(seeds=3, train={"workers": 0})
    assert changed.seeds == 3
    assert changed.train == {**read_yaml(DEMO_FILE)["train"], "workers": 0}  # merged, not replaced


@pytest.mark.slow
def test_demo_runs_compare_and_writes_a_verdict_report_and_figure(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=4, size=40)
    settings = demo_settings(data=str(data), resizers=["learnable"], epochs=1, tune_epochs=1,
                             train={"batch_size": 4, "workers": 0, "precise_bn": 1})  # fmt: skip
    outcome = run_demo(tmp_path / "demo", settings, log=lambda line: None, workers=2)
    report = outcome.report.read_text()
    row = next(line for line in report.splitlines() if line.startswith("| learnable | 96 → 32"))
    assert all(any(word in cell for word in ("better", "tie", "worse")) for cell in row.split(" | ")[4:]), row
    assert outcome.figure.stat().st_size > 10_000
    run = next(name for name in outcome.states if name.startswith("tune-learnable"))
    assert RunFolder(tmp_path / "demo" / "compare" / run).resizer_file.is_file()
