"""`taskresize compare`: the grid (baseline, learned resizers, equal-size and FLOP-matched controls), its verdict
table on a tiny generated folder, resume through the sweep file, the export of a winner, and user errors."""

import dataclasses
import json
import shutil

import pytest
import yaml

from taskresize.experiments.compare import (
    SWEEP_FILE,
    CompareSettings,
    backbone_flops,
    compare_spec,
    read_compare_file,
    write_compare_report,
)
from taskresize.experiments.sweep.plan import expand
from taskresize.flops import flop_matched_size

from helpers import cli, colour_folders

BACKBONE = "torchvision:resnet18"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("colours"), per_class=6, size=24)


def test_flop_matched_size_is_the_nearest_size_at_the_target_cost():
    calls = []

    def area(size):
        calls.append(size)
        return size[0] * size[1]

    assert flop_matched_size(area, 2 * 32 * 32, (32, 32)) == (45, 45)  # 45² = 2025 is nearer 2048 than 46² = 2116
    assert len(calls) < 12  # a bisection, not a scan
    assert flop_matched_size(area, 3 * 32 * 64, (32, 64)) == (55, 110)  # the width in proportion: 6050 of 6144
    assert flop_matched_size(area, 100, (32, 32)) == (32, 32)  # already costs more
    steps = lambda size: 74 if size[0] <= 32 else 160  # noqa: E731  (resnet18's jump from 32 to 33 px)
    assert flop_matched_size(steps, 114, (32, 32)) == (32, 32)
    assert flop_matched_size(steps, 120, (32, 32)) == (33, 33)


@pytest.mark.slow
def test_the_grid_is_the_papers_protocol_with_its_controls(data):
    settings = CompareSettings(data=str(data), backbone=BACKBONE, out_size=16, resizers=["learnable", "downsizenet"],
                               in_scale=3, seeds=2, epochs=2, tune_epochs=1, train={"batch_size": 6})  # fmt: skip
    spec = compare_spec(settings, log=lambda line: None)
    sweep = expand(spec)
    stages = {}
    for run in sweep.runs:
        stages.setdefault(run.values["stage"], []).append(run)
    assert [len(stages[s]) for s in ("baseline", "tune", "control")] == [2, 4, 6]
    assert {r.values["resizer"] for r in stages["tune"]} == {"learnable", "downsizenet"}
    assert {r.values["in_size"] for r in stages["tune"]} == {"48"}
    assert {(r.values["resizer"], r.values["resizer_args"]["antialias"]) for r in stages["control"]} == {
        ("bilinear", False), ("bilinear", True), ("area", True)}  # fmt: skip
    # the controls resize the learned resizers' input: at 16 -> 16 every classic resizer would be the identity
    assert {(r.values["in_size"], r.values["out_size"]) for r in stages["control"]} == {("48", "16")}
    for run in sweep.runs:  # every run but the baselines starts from its own seed's baseline, for tune_epochs
        if run.values["stage"] != "baseline":
            assert run.depends == [f"baseline-bilinear-in16-out16-s{run.values['seed']}"]
            assert run.values["epochs"] == 1
    flops = backbone_flops(spec["base"])
    for name, matched in spec["compare"]["matched"].items():  # the matched size costs nearest to resizer + backbone
        cost = flops({"resizer": name, "in_size": [48, 48], "out_size": [16, 16]})
        target = cost["resizer"] + cost["backbone"]
        h = int(matched)
        sizes = [s for s in (h - 1, h, h + 1) if s >= 16]
        at = {s: flops({"resizer": "bilinear", "in_size": [s, s], "out_size": [s, s]})["backbone"] for s in sizes}
        assert all(abs(at[h] - target) <= abs(at[s] - target) for s in sizes), (name, matched, target, at)
    flop_runs = stages.get("flops", [])
    assert flop_runs  # resnet18 at 16 px costs less than with either resizer in front: bigger matched sizes
    assert {r.values["out_size"] for r in flop_runs} == {m for m in spec["compare"]["matched"].values() if m != "16"}
    assert all(r.values["in_size"] == "48" for r in flop_runs if int(r.values["out_size"]) <= 48)
    assert [r["label"] for r in spec["report"]["references"]] == [
        "bilinear (plain)", "bilinear (antialias)", "area (antialias)"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("train", [{}, {"resizer_lr_scale": 0.1}])
def test_from_pretrained_weights_the_resizer_learns_at_the_measured_rate(data, tmp_path, train):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")  # only its path is read here
    settings = CompareSettings(data=str(data), backbone=BACKBONE, out_size=16, resizers=["learnable", "saliency"],
                               seeds=1, pretrained=str(weights), train=train)  # fmt: skip
    sweep = expand(compare_spec(settings, log=lambda line: None))
    for run in sweep.runs:
        tuned = run.values["stage"] != "baseline"
        # a sampler learns at the backbone's rate (at the uniform resizers' 0.001 x its map would not move)
        own = 1.0 if run.values["resizer"] == "saliency" else 0.001
        expected = own if tuned and not train else train.get("resizer_lr_scale")
        assert run.values.get("resizer_lr_scale") == expected, run.name
        assert run.values["pretrained"] == str(weights)
    plain = expand(compare_spec(dataclasses.replace(settings, pretrained=None, train={}), log=lambda line: None))
    assert all("resizer_lr_scale" not in run.values for run in plain.runs)


def test_compare_on_a_tiny_folder_gives_a_verdict_table(data, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--data", data, "--backbone", BACKBONE, "--out-size", 16, "--resizers", "learnable",
            "--seeds", 2, "--epochs", 1, "--tune-epochs", 1, "--output", out]  # fmt: skip
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"batch_size": 6, "workers": 0, "precise_bn": 6, "lr": 0.01}))
    assert cli(*args, "--config", config) == 0
    printed = capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert report in printed
    header = next(line for line in report.splitlines() if line.startswith("| learned resizer"))
    assert "vs bilinear (plain), 32 → 16" in header and "vs bilinear at equal FLOPs" in header
    row = next(line for line in report.splitlines() if line.startswith("| learnable"))
    words = [cell for cell in row.split(" | ")[4:]]
    assert len(words) == 4 and all(any(w in cell for w in ("better", "tie", "worse")) for cell in words), row
    verdicts = json.loads((out / "verdicts.json").read_text())["verdicts"]["learnable"]
    assert set(verdicts.values()) <= {"better", "tie", "worse"}
    assert "FLOPs" in report and "## Every condition" in report
    assert (out / "resized.png").stat().st_size > 5_000
    assert not (out / "compare" / "report.md").exists()  # one report: the comparison's

    # the sweep file is the grid: `taskresize sweep` sees every run finished, and compare again trains nothing
    assert cli("sweep", "--config", out / SWEEP_FILE, "--output", out, "--dry-run") == 0
    listing = capsys.readouterr().out
    assert listing.count("[finished]") == 10 and "pending" not in listing
    assert cli(*args, "--config", config) == 0
    assert "starting" not in capsys.readouterr().out

    # `sweep` on the compare file writes compare's report as well, and --report-only rewrites it from the runs:
    # after a hand edit of compare.yaml, or with part of the grid trained (--only), the verdicts come from there
    table_rows = [line for line in report.splitlines() if line.startswith("| ")]
    (out / "report.md").unlink()
    assert cli("sweep", "--config", out / SWEEP_FILE, "--output", out, "--report-only") == 0
    assert f"compare's report: {out / 'report.md'}" in capsys.readouterr().out
    assert [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| ")] == table_rows
    left_out = tmp_path / "left-out"
    shutil.copytree(out, left_out)
    for run in (left_out / "compare").glob("control-bilinear-antialiasFalse-*"):
        (run / "metrics.json").unlink()
    assert cli("sweep", "--config", left_out / SWEEP_FILE, "--output", left_out, "--report-only") == 0
    partial = (left_out / "report.md").read_text()
    assert "No conclusion" not in partial and "keep the best classic" in partial
    listed = 'Not measured (no finished run; verdicts against them read "not measured"): bilinear (plain) (control, '
    assert listed + "32 → 16)." in partial
    cells = next(line for line in partial.splitlines() if line.startswith("| learnable")).split(" | ")
    assert cells[4] == "not measured"
    assert all(any(w in cell for w in ("better", "tie", "worse")) for cell in cells[5:]), cells

    # with one seed per condition there is no verdict, and the report says it cannot conclude
    one = read_compare_file(out)
    for grid in one["grid"] if isinstance(one["grid"], list) else [one["grid"]]:
        grid["seed"] = [0]
    report = write_compare_report(one, expand(one, source="one seed"), out, {}, log=lambda line: None).report
    assert "No conclusion" in report.read_text() and "keep the best classic" not in report.read_text()

    # a winner (metrics made so: better than every control by far) is exported and its command printed
    spec = read_compare_file(out)
    sweep = expand(spec, source=str(out / SWEEP_FILE))
    for run in sweep.runs:
        path = out / "compare" / run.name / "metrics.json"
        metrics = json.loads(path.read_text())
        tuned = run.values["stage"] == "tune"
        metrics["top1_error"] = (0.0 if tuned else 0.5) + 0.01 * run.values["seed"]
        path.write_text(json.dumps(metrics))
    outcome = write_compare_report(spec, sweep, out, {}, log=lambda line: None)
    assert outcome.winner == "learnable"
    assert all(word == "better" for word in outcome.verdicts["learnable"].values())
    assert (out / "best" / "resizer.safetensors").is_file() and (out / "best" / "resizer.onnx").is_file()
    report = outcome.report.read_text()
    assert "**learnable** is better than every control" in report
    assert f"taskresize resize --resizer {out / 'best' / 'resizer.safetensors'}" in report


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resizers", "learnabel"], "unknown learnabel"),
        (["--resizers", "learnable,area"], "area is classic"),
        (["--seeds", "0"], "--seeds"),
        (["--in-scale", "0"], "--in-scale"),
    ],
)
def test_user_errors_are_one_line(data, tmp_path, capsys, extra, message):
    args = ["compare", "--data", data, "--backbone", BACKBONE, "--out-size", 16, "--output", tmp_path, *extra]
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_settings_compare_chooses_are_refused_in_the_config_file(data, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"resizer": "bicubic", "batch_size": 6}))
    assert cli("compare", "--data", data, "--backbone", BACKBONE, "--out-size", 16, "--config", config) == 2
    assert "--config sets resizer" in capsys.readouterr().err
    assert cli("compare", "--data", tmp_path / "none", "--backbone", BACKBONE, "--out-size", 16) == 2
    assert "no such folder" in capsys.readouterr().err
