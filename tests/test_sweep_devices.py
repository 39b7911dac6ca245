"""A sweep whose runs train on several devices each, several runs at once (--jobs N with ``devices: 2``): Lightning
starts each worker again as rank 1, which reads the same config; each run has its own GPUs and cores."""

import json
import os

import pytest

from taskresize.experiments.sweep.plan import expand
from taskresize.experiments.sweep.run import run_sweep
from taskresize.experiments.sweep.workers import LOGS, LocalPool, gpu_share

from helpers import colour_folders


def test_each_worker_gets_the_gpus_its_run_trains_on():
    gpus = [str(i) for i in range(8)]
    assert gpu_share(gpus, 1, 2, per_run=2) == ["2", "3"]  # not four, of which the run would use two
    assert gpu_share(gpus, 3, 4, per_run=2) == ["6", "7"]
    assert gpu_share(gpus, 1, 2, per_run=1) == ["1"]
    assert gpu_share(["0", "1"], 1, 2, per_run=2) == ["1"]  # not enough for every worker: a share


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")
def test_each_worker_has_its_own_cores(tmp_path):
    pool = LocalPool(tmp_path, 2)
    cores = sorted(os.sched_getaffinity(0))
    assert pool.cores[0] == cores[: pool.threads]
    assert not set(pool.cores[0]) & set(pool.cores[1] if len(cores) > 1 else [])


@pytest.mark.slow
def test_two_runs_at_once_on_two_devices_each_finish(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=4, size=24)
    sweep = expand({
        "name": "two",
        "base": {"data": str(data), "backbone": "torchvision:resnet18", "in_size": 24, "out_size": 16, "epochs": 1,
                 "batch_size": 4, "workers": 0, "precise_bn": 0, "devices": 2},
        "grid": {"resizer": ["bilinear"], "seed": [0, 1]},
    })  # fmt: skip
    lines: list[str] = []
    outcome = run_sweep(sweep, tmp_path / "out", log=lines.append, workers=2)
    folder = tmp_path / "out" / "two"
    logs = {run.name: (folder / LOGS / f"{run.name}.log").read_text() for run in sweep.runs}
    assert list(outcome.values()) == ["finished"] * 2, (outcome, logs)
    for run in sweep.runs:
        assert "MEMBER: 2/2" in logs[run.name]  # the second rank started, read the config and joined
        assert json.loads((folder / run.name / "metrics.json").read_text())["seed"] == run.values["seed"]
