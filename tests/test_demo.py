"""The demo's protocol end to end, at a toy scale (the real `make demo` takes about ten minutes)."""

from taskresize.experiments.demo import DEMO_SWEEP, demo_sweep, run_demo
from taskresize.experiments.sweep.plan import load_sweep
from taskresize.runs import RunFolder

from helpers import colour_folders


def test_the_demo_is_a_sweep_file_of_the_two_phase_protocol():
    sweep = load_sweep(DEMO_SWEEP)  # what `taskresize sweep --config demo.yaml` runs
    assert [r.name for r in sweep.runs] == ["baseline", "bilinear", "learnable", "downsizenet"]
    assert all(r.depends == ["baseline"] for r in sweep.runs[1:])
    assert {r.values["epochs"] for r in sweep.runs[1:]} == {5}
    changed = demo_sweep(base={"workers": 0}, epochs={"baseline": 2, "joint": 1})
    assert [r.values["epochs"] for r in changed.runs] == [2, 1, 1, 1]
    assert all(r.values["workers"] == 0 for r in changed.runs)


def test_demo_runs_the_protocol_and_writes_report_and_figure(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=4, size=40)
    sweep = demo_sweep(base={"data": str(data), "batch_size": 4, "workers": 0}, epochs={"baseline": 1, "joint": 1})
    report, figure = run_demo(tmp_path / "runs", sweep)
    rows = [line for line in report.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 4  # one seed: the learned runs get a difference from the control but no verdict
    assert all("(n<2: no verdict)" in row for row in rows if "96 → 32" in row or "learnable" in row)
    assert sum("reference" in row for row in rows) == 1
    assert figure.stat().st_size > 10_000
    for name in ("learnable", "downsizenet"):
        assert RunFolder(tmp_path / "runs" / "demo" / name).resizer_file.is_file()
