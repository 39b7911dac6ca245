"""Sweeps: grid expansion, references between runs, running with resume, and the command line."""

import json
from pathlib import Path

import pytest
import yaml

from taskresize.experiments.sweep.plan import SweepError, configs, expand, load_sweep
from taskresize.experiments.sweep.run import run_sweep
from taskresize.training.run import train

from helpers import StopAtEpoch, cli, colour_folders

BASE = {"data": "builtin", "backbone": "timm:resnet10t", "out_size": 32, "epochs": 1}


def names(sweep):
    return [r.name for r in sweep.runs]


def test_grid_is_every_combination_named_by_its_varying_keys():
    sweep = expand({"name": "g", "base": BASE, "grid": {"resizer": ["bilinear", "learnable"], "in_size": [32, "48"],
                                                        "seed": [0, 1]}})  # fmt: skip
    assert names(sweep) == [
        "bilinear-in32-s0", "bilinear-in32-s1", "bilinear-in48-s0", "bilinear-in48-s1",
        "learnable-in32-s0", "learnable-in32-s1", "learnable-in48-s0", "learnable-in48-s1",
    ]  # fmt: skip
    run = sweep.runs[2]
    assert run.values == {**BASE, "resizer": "bilinear", "in_size": "48", "seed": 0}
    assert run.identity == {"resizer": "bilinear", "in_size": [48, 48], "seed": 0}
    assert sweep.keys == ["resizer", "in_size", "seed"]


def test_exclude_overrides_and_explicit_runs():
    sweep = expand({
        "name": "g", "base": BASE,
        "grid": {"resizer": ["bilinear", "learnable"], "in_size": [32, 64]},
        "exclude": [{"resizer": "bilinear", "in_size": "64x64"}],
        "overrides": [{"match": {"in_size": 64}, "set": {"batch_size": 16}},
                      {"match": {"resizer": "learnable", "in_size": 64}, "set": {"batch_size": 8}}],
        "runs": [{"resizer": "bilinear", "in_size": 64, "out_size": 64},
                 {"name": "special", "resizer": "area", "in_size": 64}],
    })  # fmt: skip
    by_name = {r.name: r for r in sweep.runs}
    assert list(by_name) == ["bilinear-in32-out32", "learnable-in32-out32", "learnable-in64-out32",
                             "bilinear-in64-out64", "special"]  # fmt: skip
    assert by_name["learnable-in64-out32"].values["batch_size"] == 8  # the later override wins
    assert by_name["bilinear-in64-out64"].values["batch_size"] == 16  # overrides apply to explicit runs too
    assert "batch_size" not in by_name["learnable-in32-out32"].values
    assert sweep.keys == ["resizer", "in_size", "out_size"]


def test_in_scale_sets_the_input_size_from_the_output_size():
    sweep = expand({"name": "g", "base": BASE, "grid": {"out_size": [32, 64], "in_scale": [1, 1.25, 1.75]}})
    sizes = [(r.values["out_size"], r.values["in_size"]) for r in sweep.runs]
    assert sizes == [(32, [32, 32]), (32, [40, 40]), (32, [56, 56]), (64, [64, 64]), (64, [80, 80]), (64, [112, 112])]
    assert names(sweep)[1] == "in40-out32"
    excluded = expand({"name": "g", "base": BASE, "grid": {"in_scale": [1, 2]}, "exclude": [{"in_scale": 2}]})
    assert names(excluded) == ["in32"]


def test_references_resolve_to_one_run_per_seed_and_order_the_runs(tmp_path):
    sweep = expand({
        "name": "two_phase", "base": BASE,
        "grid": {"resizer": ["learnable", "bilinear"], "seed": [0, 1]},
        "overrides": [{"match": {"resizer": "learnable"},
                       "set": {"in_size": 64, "init": "@{resizer: bilinear, seed: $seed}"}}],
    })  # fmt: skip
    assert names(sweep) == ["bilinear-s0", "learnable-s0", "bilinear-s1", "learnable-s1"]  # dependencies first
    learnable = {r.name: r for r in sweep.runs}["learnable-s1"]
    assert learnable.depends == ["bilinear-s1"]
    cfg = configs(sweep, tmp_path)["learnable-s1"]
    assert cfg.init == str(tmp_path / "bilinear-s1") and cfg.output == str(tmp_path / "learnable-s1")
    assert cfg.learning_rate == pytest.approx(0.005 * 32 / 128)  # initialised: the fine-tuning rate

    runs = [{"name": "base-s0", "seed": 0}, {"resizer": "learnable", "seed": 0, "init_resizer": "@base-s$seed"}]
    by_name = expand({"name": "t", "base": BASE, "runs": runs})
    assert by_name.runs[1].depends == ["base-s0"]


def test_reference_to_a_grid_key_names_the_run_readably():
    sweep = expand({
        "name": "transfer", "base": {**BASE, "resizer": "learnable", "in_size": 64},
        "grid": {"backbone": ["timm:resnet10t", "timm:mobilenetv3_small_050"], "seed": [0]},
        "runs": [{"backbone": "timm:mobilenetv3_small_050", "seed": 0, "freeze_resizer": True,
                  "init_resizer": "@{backbone: timm:resnet10t, seed: $seed}"}],
    })  # fmt: skip
    assert names(sweep) == ["resnet10t-s0", "mobilenetv3_small_050-s0",
                            "mobilenetv3_small_050-freeze_resizer-resizer_from_resnet10t-s0"]  # fmt: skip


def test_fractions_are_reported_in_percent():
    from taskresize.training.registry import get_task

    shown = {"classification": ["top1_error", "top5_error"], "iqa": [],
             "segmentation": ["miou", "pixel_accuracy", "class/ring_iou"],
             "detection": ["map", "map50", "class/disc_map"]}  # fmt: skip
    for task, percent in shown.items():
        spec = get_task(task)
        for metric in [*spec.metrics, "class/ring_iou", "class/disc_map"]:
            assert spec.is_percent(metric) == (metric in percent), (task, metric)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "base": BASE, "grid": {"resizr": ["bilinear"]}}, r"unknown key\(s\) resizr"),
        ({"name": "x", "base": BASE, "grid": {"resizer": "bilinear"}}, "must be a non-empty list"),
        ({"name": "x y", "base": BASE, "grid": {"seed": [0]}}, "name"),
        ({"name": "x", "base": BASE, "grid": {"seed": [0, 1]}, "runs": [{"seed": 0}]}, "share the folder 's0'"),
        ({"name": "x", "base": BASE, "grid": {"seed": [0, 1], "resizer": ["learnable"]},
          "overrides": [{"match": {}, "set": {"init": "@{resizer: bicubic}"}}]}, "matches no other run"),
        ({"name": "x", "base": BASE, "grid": {"seed": [0, 1, 2]},
          "runs": [{"name": "late", "init": "@{resizer: bilinear}"}]}, r"matches 3 runs \(s0, s1, s2\)"),
        ({"name": "x", "base": BASE, "runs": [{"name": "a", "init": "@b"}, {"name": "b", "init": "@a"}]}, "cycle"),
        ({"name": "x", "base": {**BASE, "epochs": 0}, "grid": {"seed": [0]}}, "epochs = 0"),
        ({"name": "x", "base": BASE, "grid": {"in_scale": [-1]}}, "in_scale = -1"),
        ({"name": "x", "base": BASE, "grid": {"task": ["segmentation", "detection"]}},
         "mix the tasks detection, segmentation"),
        ({"name": "x", "base": BASE, "grid": {"seed": [0]}, "report": {"references": {"resizer": "area"}}},
         "report.references"),
    ],
)  # fmt: skip
def test_invalid_sweeps_name_the_problem(spec, message):
    with pytest.raises(SweepError, match=message):
        expand(spec)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("colours"), per_class=8, size=24)


def tiny_sweep(data, path):
    spec = {
        "name": "tiny", "mirrors": "a test",
        "base": {"data": str(data), "backbone": "torchvision:resnet18", "in_size": 24, "out_size": 16, "epochs": 1,
                 "batch_size": 8, "workers": 0, "lr": 0.01, "precise_bn": 8},
        "grid": {"resizer": ["bilinear", "muller"], "seed": [0, 1]},
        # a run that is valid as planned (unknown arguments are refused then) but fails when it trains: a resizer
        # for 1-channel images on RGB data
        "runs": [{"name": "broken", "resizer": "learnable", "resizer_args": {"in_channels": 1}, "seed": 0}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_tiny_grid_runs_resumes_and_reports(data, tmp_path, capsys):
    config = tiny_sweep(data, tmp_path / "tiny.yaml")
    out = tmp_path / "sweeps"
    assert cli("sweep", "--config", config, "--output", out, "--dry-run") == 0
    assert "[pending ] bilinear-s0" in capsys.readouterr().out
    assert not (out / "tiny" / "bilinear-s0").exists()

    assert cli("sweep", "--config", config, "--output", out) == 1  # one run fails; the others go on
    folder = out / "tiny"
    for name in ("bilinear-s0", "bilinear-s1", "muller-s0", "muller-s1"):
        assert (folder / name / "metrics.json").is_file(), name
    assert "channels" in (folder / "broken" / "error.txt").read_text()
    assert "broken" in yaml.safe_load((folder / "failures.yaml").read_text())
    stamp = (folder / "muller-s1" / "metrics.json").stat().st_mtime_ns

    report = (folder / "report.md").read_text()
    assert "Mirrors: a test." in report
    row = next(line for line in report.splitlines() if line.startswith("| muller"))
    errors = [json.loads((folder / f"muller-s{s}" / "metrics.json").read_text())["top1_error"] for s in (0, 1)]
    mean, std = sum(errors) / 2, abs(errors[0] - errors[1]) / 2**0.5
    assert f"{mean:.1%} ± {std * 100:.1f} (n=2)" in row
    assert "24 → 16" in row
    assert "reference" not in row and ("tie" in row or "better" in row or "worse" in row)
    assert "`broken`" in report
    assert (folder / "plots" / "top1_error_vs_flops.png").stat().st_size > 1000
    csv_lines = (folder / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith(
        "resizer,resizer_args,in_size,out_size,resizer_as_run,base_resize,pre_resize,n,planned,top1_error_mean,"
    )
    assert len(csv_lines) == 1 + 3

    capsys.readouterr()
    outcome = run_sweep(load_sweep(config), out, log=lambda line: None)  # a second invocation
    assert [outcome[n] for n in ("bilinear-s0", "bilinear-s1", "muller-s0", "muller-s1")] == ["skipped"] * 4
    assert outcome["broken"].startswith("failed")
    assert (folder / "muller-s1" / "metrics.json").stat().st_mtime_ns == stamp

    (folder / "report.md").unlink()
    for seed, value in enumerate((0.25, 0.75)):  # per-class metrics, as segmentation writes them, become columns
        path = folder / f"muller-s{seed}" / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"class/ring_top1_error": value}))
    assert cli("sweep", "--config", config, "--output", out, "--report-only") == 0
    report = (folder / "report.md").read_text()
    assert "| class/ring_top1_error |" in report
    assert "50.0% ± 35.4 (n=2)" in next(line for line in report.splitlines() if line.startswith("| muller"))
    assert "class/ring_top1_error_mean" in (folder / "report.csv").read_text().splitlines()[0]


def test_an_unfinished_run_is_resumed(data, tmp_path):
    config = tiny_sweep(data, tmp_path / "tiny.yaml")
    spec = yaml.safe_load(config.read_text())
    spec |= {"grid": {"resizer": ["bilinear"], "seed": [0]}, "runs": []}
    spec["base"]["epochs"] = 2
    config.write_text(yaml.safe_dump(spec))
    sweep = load_sweep(config)
    run_dir = tmp_path / "out" / "tiny" / "bilinear-s0"
    with pytest.raises(KeyboardInterrupt):  # stopped after its first epoch
        train(configs(sweep, tmp_path / "out" / "tiny")["bilinear-s0"], callbacks=[StopAtEpoch(1)])
    assert not (run_dir / "metrics.json").exists()
    lines: list[str] = []
    assert run_sweep(sweep, tmp_path / "out", log=lines.append)["bilinear-s0"] == "finished"
    assert any("bilinear-s0: resuming" in line for line in lines)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
    assert len((run_dir / "epochs.csv").read_text().strip().splitlines()) == 1 + 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "grid": {"resizer": ["bilinear"]}, "base": {"epochs": -1}}))
    assert cli("sweep", "--config", bad, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "epochs = -1" in err
    assert cli("sweep", "--config", tmp_path / "missing.yaml", "--dry-run") == 2
    assert "does not exist" in capsys.readouterr().err
    assert Path(tmp_path / "sweeps").exists() is False


def test_a_list_of_grids_and_stages_give_the_two_phase_protocol(tmp_path):
    sweep = expand({
        "name": "t4",
        "base": {**BASE, "stage": "joint", "epochs": 5, "lr": 0.005,
                 "init": "@{stage: baseline, backbone: $backbone, seed: $seed}"},
        "grid": [
            {"stage": ["baseline"], "backbone": ["timm:resnet10t", "timm:lcnet_050"], "seed": [0]},
            {"backbone": ["timm:resnet10t", "timm:lcnet_050"], "resizer": ["learnable"], "in_scale": [1.25],
             "seed": [0]},
            {"backbone": ["timm:resnet10t"], "resizer": ["bilinear"], "out_size": [32, 40], "seed": [0]},
        ],
        "overrides": [{"match": {"stage": "baseline"}, "set": {"epochs": 12, "lr": None, "init": None}}],
    })  # fmt: skip
    assert sweep.keys == ["stage", "backbone", "resizer", "in_size", "out_size", "seed"]
    by_name = {r.name: r for r in sweep.runs}
    assert list(by_name) == [
        "baseline-resnet10t-bilinear-in32-out32-s0", "baseline-lcnet_050-bilinear-in32-out32-s0",
        "joint-resnet10t-learnable-in40-out32-s0", "joint-lcnet_050-learnable-in40-out32-s0",
        "joint-resnet10t-bilinear-in32-out32-s0", "joint-resnet10t-bilinear-in40-out40-s0",
    ]  # fmt: skip
    cfgs = configs(sweep, tmp_path)
    assert cfgs["joint-lcnet_050-learnable-in40-out32-s0"].init == str(
        tmp_path / "baseline-lcnet_050-bilinear-in32-out32-s0"
    )
    baseline = cfgs["baseline-resnet10t-bilinear-in32-out32-s0"]
    assert baseline.init is None and baseline.epochs == 12 and baseline.learning_rate == pytest.approx(0.05 * 32 / 128)
    assert cfgs["joint-resnet10t-bilinear-in40-out40-s0"].learning_rate == 0.005


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    sweep = load_sweep(path)
    assert sweep.runs and sweep.name == path.stem


def test_report_names_each_rows_classic_method_as_resolved():
    from taskresize.experiments.sweep.report import methods

    base = {"out_size": [32, 32], "pre_resize": "bilinear", "pre_resize_antialias": True}
    assert methods({**base, "resizer": "bilinear", "resizer_args": {}}) == {
        "resizer": "bilinear (antialias)", "base resize": "—", "pre-resize": "bilinear (antialias)"}  # fmt: skip
    assert methods({**base, "resizer": "bicubic", "resizer_args": {"antialias": False}})["resizer"] == "bicubic (plain)"
    assert methods({**base, "resizer": "area", "resizer_args": {}})["resizer"] == "area (antialias)"
    assert methods({**base, "resizer": "nearest", "resizer_args": {}})["resizer"] == "nearest"
    learned = methods({**base, "resizer": "learnable", "resizer_args": {}, "pre_resize_antialias": False})
    assert learned == {"resizer": "learnable", "base resize": "bilinear (plain)", "pre-resize": "bilinear (plain)"}
    assert methods({**base, "resizer": "muller", "resizer_args": {"antialias": True}})["base resize"] == (
        "bilinear (antialias)"
    )
    assert methods({**base, "resizer": "downsizenet", "resizer_args": {}})["base resize"] == "—"


def test_pre_resize_at_its_defaults_stays_out_of_run_names():
    sweep = expand({"name": "p", "base": BASE, "grid": [
        {"resizer": ["bilinear", "learnable"], "seed": [0]},
        {"resizer": ["bilinear"], "pre_resize_antialias": [False], "seed": [0]},
        {"resizer": ["bilinear"], "pre_resize": ["area"], "seed": [0]},
    ]})  # fmt: skip
    assert names(sweep) == ["bilinear-s0", "learnable-s0", "bilinear-no_pre_resize_antialias-s0",
                            "bilinear-pre_resizearea-s0"]  # fmt: skip


def _fake_run(folder, sweep, name, top1, config_changes=None):
    from taskresize.experiments.sweep.plan import effective

    run = next(r for r in sweep.runs if r.name == name)
    path = folder / name
    path.mkdir(parents=True)
    config = effective(run.values, name) | (config_changes or {})
    (path / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "stage"}))
    (path / "metrics.json").write_text(json.dumps({"top1_error": top1, "top5_error": 0.1, "val_loss": 1.0}))


def test_report_shows_what_ran_and_a_verdict_against_each_reference(tmp_path):
    from taskresize.experiments.sweep.report import write_report

    sweep = expand({
        "name": "r", "base": {**BASE, "in_size": 64},
        "grid": [{"resizer": ["bilinear", "area", "learnable"], "seed": [0, 1]},
                 {"resizer": ["bilinear"], "resizer_args": [{"antialias": False}], "seed": [0, 1]}],
        "report": {"references": [
            {"label": "bilinear (plain)", "resizer": "bilinear", "resizer_args": {"antialias": False}},
            {"label": "bilinear (antialias)", "resizer": "bilinear", "resizer_args": {}},
            {"label": "bicubic (antialias)", "resizer": "bicubic", "resizer_args": {}},
        ]},
    })  # fmt: skip
    folder = tmp_path / "r"
    errors = {"bilinear-antialiasFalse": (0.60, 0.62), "bilinear": (0.50, 0.52), "area": (0.40, 0.42),
              "learnable": (0.50, 0.53)}  # fmt: skip
    for stem, values in errors.items():
        for seed, top1 in enumerate(values):
            _fake_run(folder, sweep, f"{stem}-s{seed}", top1)
    write_report(sweep, folder)
    lines = (folder / "report.md").read_text().splitlines()
    head = next(line for line in lines if line.startswith("| resizer (as run)"))
    assert "| base resize | pre-resize |" in head
    assert "Δ top1_error vs bilinear (plain) | Δ top1_error vs bilinear (antialias) | Δ top1_error vs bicubic" in head

    def row(start):
        return next(line for line in lines if line.startswith(start))

    learned = row("| learnable |")
    assert "| bilinear (plain) | bilinear (antialias) |" in learned  # its base resize and the loader's pre-resize
    assert "-9.5 (better, ±" in learned and "+0.5 (tie, ±" in learned and learned.count("not measured") == 1
    assert "reference" in row("| bilinear (plain) |") and "| bilinear (antialias) | default |" in "".join(lines)
    assert "-10.0 (better" in row("| area (antialias) |")
    with (folder / "report.csv").open() as handle:
        import csv

        by_run = {r["resizer_as_run"]: r for r in csv.DictReader(handle)}
    assert by_run["learnable"]["verdict_vs_bilinear (plain)"] == "better"
    assert by_run["learnable"]["verdict_vs_bilinear (antialias)"] == "tie"
    assert by_run["learnable"]["verdict_vs_bicubic (antialias)"] == "not measured"
    assert by_run["bilinear (plain)"]["verdict_vs_bilinear (plain)"] == "reference"
    assert float(by_run["learnable"]["delta_vs_bilinear (plain)"]) == pytest.approx(-0.095)


def test_report_labels_come_from_the_runs_config_not_the_sweep_file(tmp_path):
    """A run whose saved config.yaml differs from what the sweep file plans is labelled as it ran."""
    from taskresize.experiments.sweep.report import write_report

    sweep = expand({"name": "c", "base": {**BASE, "in_size": 64}, "grid": {"resizer": ["bilinear"], "seed": [0]}})
    folder = tmp_path / "c"
    _fake_run(folder, sweep, "bilinear-s0", 0.5, {"resizer_args": {"antialias": False}})
    metrics_path = folder / "bilinear-s0" / "metrics.json"  # FLOPs of an older convention (classic resizers 0)
    metrics_path.write_text(json.dumps(json.loads(metrics_path.read_text()) | {
        "flops_resizer": 0, "flops_backbone": 1000, "flops_total": 1000}))  # fmt: skip
    write_report(sweep, folder)
    assert any(line.startswith("| bilinear (plain) |") for line in (folder / "report.md").read_text().splitlines())
    from taskresize import count_flops, create_resizer

    now = count_flops(create_resizer("bilinear", output_size=32, antialias=False), (1, 3, 64, 64), size=(32, 32))
    with (folder / "report.csv").open() as handle:
        import csv

        row = next(csv.DictReader(handle))
    assert now > 0 and float(row["flops_resizer_mean"]) == now and float(row["flops_total_mean"]) == 1000 + now
    assert float(row["flops_resizer_measured_mean"]) == 0


def test_a_started_run_saved_with_absolute_paths_matches_its_relative_sweep_entry(tmp_path, monkeypatch):
    from taskresize.experiments.sweep.run import _changed_config
    from taskresize.training.config import TrainConfig, write_yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    cfg = TrainConfig(data="data", resizer="bilinear", out_size=(32, 32))
    saved = TrainConfig(data="data", resizer="bilinear", out_size=(32, 32))
    saved.resolve_paths(tmp_path)  # what train writes into config.yaml
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_yaml(run_dir / "config.yaml", saved.to_dict())
    assert _changed_config(run_dir, cfg) == ""
    write_yaml(run_dir / "config.yaml", {**saved.to_dict(), "epochs": saved.epochs + 1})
    assert "epochs" in _changed_config(run_dir, cfg)


def test_under_torchrun_a_failed_run_stops_the_sweep(tmp_path, monkeypatch):
    import taskresize.experiments.sweep.run as sweep_run
    import taskresize.experiments.sweep.workers as sweep_workers

    sweep = expand({"name": "s", "base": {"epochs": 1}, "grid": {"seed": [0, 1]}})
    trained = []

    def failing(cfg, resume=False):
        trained.append(cfg.seed)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(sweep_workers, "train", failing)
    assert sweep_run.run_sweep(sweep, tmp_path, log=lambda line: None)["s1"].startswith("failed")  # one process
    assert trained == [0, 1]  # went on after the first failure
    monkeypatch.setenv("WORLD_SIZE", "2")
    trained.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        sweep_run.run_sweep(sweep, tmp_path / "ddp", log=lambda line: None)
    assert trained == [0]  # stopped: the other processes cannot go on without this one
    assert "s0" in (tmp_path / "ddp" / "s" / "failures.yaml").read_text()
