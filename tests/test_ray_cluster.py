"""Sweeps on a Ray cluster of two nodes (``ray.cluster_utils.Cluster``: two raylets on this machine, one CPU each),
the run folders copied back (no shared storage): the runs are placed on both nodes and their metrics equal those of
the same grid run one after another in this process."""

import re

import pytest

from taskresize.experiments.sweep.plan import expand
from taskresize.experiments.sweep.run import run_sweep

from helpers import assert_equals_the_sequential_sweep, colour_folders

ray = pytest.importorskip("ray")  # installed by the dev extras (taskresize[ray])


@pytest.fixture
def two_nodes():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_a_grid_on_a_two_node_cluster_equals_the_sequential_run(two_nodes, tmp_path):
    assert len([node for node in ray.nodes() if node["Alive"]]) == 2
    data = colour_folders(tmp_path / "data", per_class=6, size=24)
    sweep = expand({
        "name": "grid",
        "base": {"data": str(data), "backbone": "torchvision:resnet18", "in_size": 24, "out_size": 16, "epochs": 1,
                 "batch_size": 6, "workers": 0, "lr": 0.01, "precise_bn": 1},
        "grid": {"resizer": ["bilinear", "muller"], "seed": [0]},
    })  # fmt: skip
    lines: list[str] = []
    # two runs at once, one CPU each, one CPU per node: one run on each node; folders travel through Ray
    outcome = run_sweep(sweep, tmp_path / "ray", log=lines.append, workers=2, ray="auto",
                        ray_options={"copy_back": True})  # fmt: skip
    assert list(outcome.values()) == ["finished"] * 2, (outcome, lines)
    assert any("Ray cluster of 2 CPUs" in line for line in lines), lines[:3]
    finished = [line for line in lines if ": finished" in line]
    assert finished and all("(copied back)" in line for line in finished), finished
    nodes = {match.group(1) for line in finished if (match := re.search(r"Ray node (\w+)", line))}
    assert len(nodes) == 2, finished
    assert_equals_the_sequential_sweep(sweep, tmp_path)
