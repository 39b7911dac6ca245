"""End-to-end training runs on tiny generated data (CPU, a few seconds each)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from torch import nn

from taskresize.training.config import TrainConfig, load_config
from taskresize.training.run import evaluate, load_checkpoint, train
from taskresize.training.tasks.classification import ClassificationTask

from helpers import StopAtEpoch, cli, colour_folders, free_port, train_args


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("colours"), per_class=12)


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


class FixedLogits(nn.Module):
    """A stand-in classifier with known outputs, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_top1_and_top5_errors_and_loss_over_two_batches_equal_hand_computed_values():
    cfg = TrainConfig.from_dict({"task": "classification", "backbone": "timm:resnet10t", "out_size": 8}).to_dict()
    task = ClassificationTask(cfg, num_outputs=7).eval()
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    ranking = torch.tensor([6.0, 5, 4, 3, 2, 1, 0])  # class 0 first, then 1, 2, ...
    # first batch: both right at top-1; second: the label ranked 3rd (a top-5 hit) and 7th (a miss).
    # Top-1 error 2/4, top-5 error 1/4.
    batches = [(ranking.expand(2, 7), torch.tensor([0, 0])), (ranking.expand(2, 7), torch.tensor([2, 6]))]
    with torch.no_grad():
        for logits, labels in batches:
            task.backbone = FixedLogits(logits)
            task.validation_step((images, labels), 0)
    metrics = {k: v.item() for k, v in task.epoch_metrics().items()}
    loss = torch.cat([nn.functional.cross_entropy(x, y, reduction="none") for x, y in batches]).mean().item()
    assert metrics == pytest.approx({"val/top1_error": 0.5, "val/top5_error": 0.25, "val/loss": loss}, abs=1e-6)
    task.val_metrics.reset()
    task.validation_step((images, torch.tensor([1, 1])), 0)  # reset: only this batch counts
    assert task.epoch_metrics()["val/top1_error"].item() == 1.0


def test_a_short_run_learns_and_fills_the_run_folder(data, tmp_path):
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--epochs": 4, "--resizer": "learnable", "--in-size": 48})) == 0
    m = metrics(run)
    epochs = list(csv.DictReader((run / "epochs.csv").read_text().splitlines()))
    # it learns (chance is 0.67); on 30 images the last epoch may bounce back, depending on the thread count
    assert min(float(e["top1_error"]) for e in epochs) < 0.4
    assert m["top1_error"] == pytest.approx(float(epochs[-1]["top1_error"]), abs=1e-6)  # metrics.json: the last epoch
    for key in ("val_loss", "flops_total", "flops_resizer", "params_resizer", "epochs", "seed", "train_images_per_s"):
        assert key in m
    assert "top5_error" not in m and "top5_error" not in epochs[0]  # three classes: top-5 only with more than five
    assert m["epochs"] == 4 and m["flops_resizer"] > 0 and m["flops_total"] > m["flops_resizer"]
    for name in ("config.yaml", "epochs.csv", "last.ckpt", "best.ckpt", "resizer.safetensors"):
        assert (run / name).is_file(), name
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    assert len((run / "epochs.csv").read_text().strip().splitlines()) == 1 + 4
    assert load_config(run / "config.yaml").in_size == [48, 48]


def test_same_seed_same_metrics_and_eval_reproduces_them(data, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert cli("train", *train_args(data, run, **{"--resizer": "muller", "--in-size": 40})) == 0
    first, second = (metrics(r) for r in runs)
    for key in ("top1_error", "val_loss"):
        assert first[key] == second[key]
    a, b = (load_checkpoint(r / "last.ckpt")["state_dict"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert cli("eval", "--run", str(runs[0])) == 0
    assert json.loads((runs[0] / "eval.json").read_text())["top1_error"] == first["top1_error"]
    evaluated = evaluate(runs[0])
    assert evaluated["top1_error"] == first["top1_error"]
    assert evaluated["val_loss"] == pytest.approx(first["val_loss"], abs=1e-5)


def test_interrupted_run_resumes_from_its_last_epoch(data, tmp_path):
    run = tmp_path / "run"
    cfg = load_config(None, {"data": str(data), "output": str(run), "in_size": 32, "out_size": 32, "epochs": 3,
                             "batch_size": 8, "workers": 0, "lr": 0.01})  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAtEpoch(2)])
    assert not (run / "metrics.json").exists()
    assert load_checkpoint(run / "last.ckpt")["epoch"] == 1
    assert cli("train", "--output", str(run)) == 2  # refuses to overwrite without --resume
    assert cli("train", "--output", str(run), "--resume") == 0
    rows = (run / "epochs.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]
    assert metrics(run)["epochs"] == 3
    assert cli("train", "--output", str(run), "--resume") == 0  # finished: nothing to do


def test_init_loads_the_earlier_backbone(data, tmp_path):
    base, joint = tmp_path / "base", tmp_path / "joint"
    assert cli("train", *train_args(data, base, **{"--epochs": 1})) == 0
    args = train_args(data, joint, **{"--epochs": 1, "--resizer": "learnable", "--in-size": 48, "--lr": None})
    assert cli("train", *args, "--init", str(base), "--freeze-backbone") == 0
    assert load_config(joint / "config.yaml").lr == 0.005 * 8 / 128  # fine-tuning learning rate by default
    before = load_checkpoint(base / "last.ckpt")["state_dict"]
    after = load_checkpoint(joint / "last.ckpt")["state_dict"]
    backbone = [k for k in before if k.startswith("backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert any(k.startswith("resizer.") for k in after)


def test_user_mistakes_end_with_one_line_and_status_2(data, tmp_path, capsys):
    assert cli("train", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "r")) == 2
    assert cli("train", *train_args(data, tmp_path / "r2", **{"--resizer": "learnabel"})) == 2
    assert (
        cli("train", *train_args(data, tmp_path / "r3", **{"--resizer-args": '{"depth": 2}', "--resizer": "learnable"}))
        == 2
    )
    assert cli("train", *train_args(data, tmp_path / "r4", **{"--backbone": "resnet19"})) == 2
    err = capsys.readouterr().err
    assert "nowhere is not a folder" in err and "Did you mean 'learnable'" in err and "does not take depth" in err
    assert "Did you mean 'torchvision:resnet18'" in err and "Traceback" not in err


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU")
def test_torchrun_two_processes(data, tmp_path):
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "taskresize", "train",
               *train_args(data, run, **{"--devices": 2})]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    m = metrics(run)
    assert m["val_images"] == 6 and m["epochs"] == 2
    assert 0 <= m["top1_error"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU")
def test_two_torchrun_nodes_equal_one_node_with_two_processes(data, tmp_path):
    """The GPU guide's multi-node command, as two "nodes" on this machine (one process each, gloo, c10d rendezvous):
    the run equals a one-node two-process run, metric for metric."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    one = tmp_path / "one-node"
    single = subprocess.run([*torchrun, "--nproc_per_node", "2", "-m", "taskresize", "train", *train_args(data, one)],
                            capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    two = tmp_path / "two-nodes"
    rendezvous = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                  "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--rdzv_id", "taskresize-test"]  # fmt: skip
    logs = [tmp_path / f"node{i}.log" for i in range(2)]  # files, not pipes: neither node blocks on a full pipe
    files = [log.open("w") for log in logs]
    try:
        nodes = [subprocess.Popen([*torchrun, *rendezvous, "-m", "taskresize", "train", *train_args(data, two)],
                                  stdout=file, stderr=subprocess.STDOUT, env=env) for file in files]  # fmt: skip
        codes = [node.wait(timeout=600) for node in nodes]
    finally:
        for file in files:
            file.close()
    assert codes == [0, 0], "\n".join(log.read_text()[-2000:] for log in logs)
    a, b = metrics(one), metrics(two)
    assert b["val_images"] == a["val_images"] == 6
    for key in ("top1_error", "val_loss", "epochs", "params_backbone"):
        assert b[key] == a[key], key
    ran_on = yaml.safe_load((two / "config.yaml").read_text())["ran_on"]
    assert (ran_on["num_nodes"], ran_on["devices"]) == (2, 1)


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    reader_gone = subprocess.Popen(
        [sys.executable, "-m", "taskresize", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    reader_gone.stdout.close()  # like `| head` exiting before the command writes
    _, stderr = reader_gone.communicate(timeout=120)
    assert reader_gone.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
