"""Sweeps on Ray (--ray): a local Ray instance runs a 2x2 grid with 2 workers, and every run's metrics equal those
of the same grid run one after another in this process, seed for seed."""

import pytest

from taskresize.experiments.sweep.plan import expand
from taskresize.experiments.sweep.run import run_sweep

from helpers import assert_equals_the_sequential_sweep, colour_folders

ray = pytest.importorskip("ray")  # installed by the dev extras (taskresize[ray]), so CI runs this


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("copy_back", [None, True])
def test_a_2x2_grid_on_local_ray_equals_the_sequential_run(local_ray, tmp_path, copy_back):
    data = colour_folders(tmp_path / "data", per_class=6, size=24)
    sweep = expand({
        "name": "grid",
        "base": {"data": str(data), "backbone": "torchvision:resnet18", "in_size": 24, "out_size": 16, "epochs": 1,
                 "batch_size": 6, "workers": 0, "lr": 0.01, "precise_bn": 1},
        "grid": {"resizer": ["bilinear", "muller"], "seed": [0, 1]},
    })  # fmt: skip
    lines: list[str] = []
    # copy_back None: this machine sees the sweep folder (shared storage); True: folders travel through Ray
    outcome = run_sweep(sweep, tmp_path / "ray", log=lines.append, workers=2, ray="local",
                        ray_options={"copy_back": copy_back})  # fmt: skip
    assert list(outcome.values()) == ["finished"] * 4, outcome
    assert any("up to 2 runs at once, each a task of 1 CPU(s), 0 GPU(s)" in line for line in lines), lines[:3]
    assert all(("(copied back)" in line) == bool(copy_back) for line in lines if ": finished" in line)
    assert_equals_the_sequential_sweep(sweep, tmp_path)
    assert "muller" in (tmp_path / "ray" / "grid" / "report.md").read_text()
