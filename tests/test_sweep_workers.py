"""Sweeps with several runs at once (--workers N): the same metrics as one after another, dependencies waited
for, failures reported while the others go on, resume, the progress line, and the GPU split."""

import json

import pytest
import torch
import yaml

from taskresize.experiments.sweep.plan import expand
from taskresize.experiments.sweep.run import Progress, run_sweep
from taskresize.experiments.sweep.workers import LOGS, gpu_share, pack, unpack

from helpers import cli, colour_folders

METRICS = ("top1_error", "val_loss", "flops_total", "params_resizer")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("colours"), per_class=6, size=24)


def spec(data, **extra):
    """A baseline per seed, a run initialised from it, and a run that fails when it trains."""
    return {
        "name": "par",
        "base": {"data": str(data), "backbone": "torchvision:resnet18", "out_size": 16, "epochs": 1, "batch_size": 6,
                 "workers": 0, "lr": 0.01, "precise_bn": 6},
        "grid": [{"stage": ["base"], "resizer": ["bilinear"], "seed": [0, 1]},
                 {"stage": ["tune"], "resizer": ["muller"], "in_size": [24], "seed": [0, 1]}],
        "overrides": [{"match": {"stage": "tune"}, "set": {"init": "@{stage: base, seed: $seed}"}}],
        "runs": [{"name": "broken", "stage": "x", "resizer": "learnable", "resizer_args": {"in_channels": 1}}],
    } | extra  # fmt: skip


def metrics(folder, name):
    values = json.loads((folder / name / "metrics.json").read_text())
    return {k: values[k] for k in METRICS}


@pytest.mark.slow
def test_two_workers_give_the_sequential_metrics_and_wait_for_dependencies(data, tmp_path):
    sweep = expand(spec(data))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))  # each of 2 workers' threads: the same rounding
    try:
        sequential = run_sweep(sweep, tmp_path / "seq", log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    lines: list[str] = []
    parallel = run_sweep(sweep, tmp_path / "par", log=lines.append, workers=2)
    assert parallel == sequential
    assert parallel["broken"].startswith("failed: ") and "channels" in parallel["broken"]
    assert sum(state == "finished" for state in parallel.values()) == 4
    for run in sweep.runs:
        if run.name != "broken":
            assert metrics(tmp_path / "par" / "par", run.name) == metrics(tmp_path / "seq" / "par", run.name), run.name
    folder = tmp_path / "par" / "par"
    order = [line.split("] ", 1)[1].split(":")[0] for line in lines if ": starting" in line]
    for seed in (0, 1):  # a tuned run starts only after its own baseline has finished
        finished = next(i for i, line in enumerate(lines) if f"base-bilinear-in16-s{seed}: finished" in line)
        started = next(i for i, line in enumerate(lines) if f"tune-muller-in24-s{seed}: starting" in line)
        assert finished < started
    assert len(order) == 5
    assert "channels" in (folder / "broken" / "error.txt").read_text()
    assert (folder / LOGS / "base-bilinear-in16-s0.log").is_file()
    assert "broken" in yaml.safe_load((folder / "failures.yaml").read_text())
    final = "grid: 4/5 done, 0 running, 0 left, 1 failed or blocked; nothing left"
    assert final in lines, lines[-4:]
    assert any("1 CPU thread(s) each" in line for line in lines)
    report = (folder / "report.md").read_text()
    assert "`broken`" in report

    again: list[str] = []  # resume: finished runs are skipped, the broken one tried again
    outcome = run_sweep(sweep, tmp_path / "par", log=again.append, workers=2)
    assert [outcome[r.name] for r in sweep.runs if r.name != "broken"] == ["skipped"] * 4
    assert outcome["broken"].startswith("failed")


def test_a_run_whose_dependency_is_not_selected_is_blocked(data, tmp_path, monkeypatch):
    import taskresize.experiments.sweep.workers as workers

    sweep = expand(spec(data, runs=[]))
    trained = []

    class Instant(workers.LocalPool):  # no processes: records and "finishes" at once
        def start(self, name, cfg, slot, depends=()):
            trained.append(name)
            return workers.Started(name, None, slot)

        def poll(self, started):
            (tmp_path / "out" / "par" / started.name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "out" / "par" / started.name / "metrics.json").write_text("{}")
            return "finished"

    monkeypatch.setattr("taskresize.experiments.sweep.run.LocalPool", Instant)
    monkeypatch.setattr("taskresize.experiments.sweep.run.write_report", lambda sweep, folder: [])
    lines = []
    outcome = run_sweep(sweep, tmp_path / "out", log=lines.append, workers=2, only=["tune-*", "base-*-s1"])
    assert trained == ["base-bilinear-in16-s1", "tune-muller-in24-s1"]
    assert lines[-2] == "grid: 2/3 done, 0 running, 0 left, 1 failed or blocked; nothing left"  # of the selected
    assert outcome["tune-muller-in24-s0"] == "blocked: base-bilinear-in16-s0 did not finish"
    assert outcome["base-bilinear-in16-s0"] == "not selected"


def test_progress_line_counts_runs_and_estimates_the_time_left(monkeypatch):
    clock = iter([0.0, 0.0, 60.0, 60.0, 90.0])
    monkeypatch.setattr("taskresize.experiments.sweep.run.time.perf_counter", lambda: next(clock))
    progress = Progress(5, log=None)
    progress.slots = 2
    progress.skip()
    assert progress.line() == "grid: 1/5 done, 0 running, 4 left; ETA after the first run"
    progress.start("a")  # t=0
    progress.start("b")  # t=0
    progress.end("a", "finished")  # t=60: one run took a minute
    # b has run 90 s of an expected 60 s (nothing left of it), two runs left: 2 min over 2 slots
    assert progress.line() == "grid: 2/5 done, 1 running, 2 left; ETA 60 s"


def test_gpus_are_split_among_workers():
    assert gpu_share(["0", "1", "2", "3"], 1, 2) == ["2", "3"]
    assert gpu_share(["0", "1", "2"], 0, 2) == ["0"]
    assert gpu_share(["0"], 1, 2) == ["0"]  # fewer GPUs than workers: shared
    assert gpu_share([], 0, 2) == []


def test_copy_back_packs_run_folders_relative_to_the_sweep(tmp_path):
    (tmp_path / "a" / "run").mkdir(parents=True)
    (tmp_path / "a" / "run" / "metrics.json").write_text("{}")
    data = pack([tmp_path / "a" / "run", tmp_path / "a" / "missing"], tmp_path / "a")
    unpack(data, tmp_path / "b")
    assert (tmp_path / "b" / "run" / "metrics.json").read_text() == "{}"


def test_cli_refuses_nonsense_worker_counts(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "grid": {"seed": [0]}}))
    assert cli("sweep", "--config", path, "--jobs", "0") == 2
    assert "--jobs: '0'" in capsys.readouterr().err
    assert cli("sweep", "--config", path, "--workers", "0") == 2  # the old spelling, announced
    err = capsys.readouterr().err
    assert "--workers is now --jobs" in err and "--jobs: '0'" in err
    assert cli("sweep", "--config", path, "--cpus-per-run", "2") == 2
    assert "give --ray" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_another_sweep_holds_is_left_alone_and_a_stale_claim_is_taken_over(tmp_path, monkeypatch, workers):
    import os
    import socket
    import subprocess
    import sys

    import taskresize.experiments.sweep.run as sweep_run
    import taskresize.experiments.sweep.workers as sweep_workers
    from taskresize.runs import RunFolder

    sweep = expand({"name": "s", "base": {"epochs": 1}, "grid": {"seed": [0, 1, 2, 3]}})
    folder = tmp_path / "s"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holders = {
        "s0": f"{socket.gethostname()} {os.getppid()}",  # alive, on this host
        "s1": f"{socket.gethostname()} {int(ended.stdout)}",  # its process has ended: stale
        "s3": f"another-host {os.getpid()}",  # cannot be checked from here: respected
    }
    for name, holder in holders.items():
        (folder / name).mkdir(parents=True)
        RunFolder(folder / name).lock_file.write_text(f"{holder} 2026-12-07T10:00:00\n")
    trained, held = [], []

    def train(name):
        trained.append(name)
        held.append(RunFolder(folder / name).lock_file.read_text().split()[:2])
        RunFolder(folder / name).metrics_file.write_text("{}")
        RunFolder(folder / "s2").metrics_file.parent.mkdir(exist_ok=True)
        RunFolder(folder / "s2").metrics_file.write_text("{}")  # another sweep finished s2 meanwhile

    class Instant(sweep_workers.LocalPool):  # no processes: trains and finishes at once
        def start(self, name, cfg, slot, depends=()):
            train(name)
            return sweep_workers.Started(name, None, slot)

        def poll(self, started):
            return "finished"

    monkeypatch.setattr(sweep_workers, "train", lambda cfg, resume=False: train(f"s{cfg.seed}"))
    monkeypatch.setattr(sweep_run, "LocalPool", Instant)
    monkeypatch.setattr(sweep_run, "write_report", lambda sweep, folder: [])
    outcome = run_sweep(sweep, tmp_path, log=lambda line: None, workers=workers)
    assert trained == ["s1"] and held == [[socket.gethostname(), str(os.getpid())]]  # claimed while it trained
    assert outcome["s0"].startswith(f"busy: another sweep is training it (process {os.getppid()} on ")
    assert outcome["s3"].startswith(f"busy: another sweep is training it (process {os.getpid()} on another-host")
    assert str(RunFolder(folder / "s3").lock_file) in outcome["s3"]
    assert outcome["s1"] == "finished" and outcome["s2"] == "skipped"
    assert not RunFolder(folder / "s1").lock_file.exists() and not RunFolder(folder / "s2").lock_file.exists()
    for name in ("s0", "s3"):  # another sweep's claim is left as it was
        assert RunFolder(folder / name).lock_file.read_text().startswith(holders[name])
