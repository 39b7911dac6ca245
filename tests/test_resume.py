"""Resuming, re-running and moving run folders: a resumed run is the run it continues, a failed start does
not block its folder, changed settings are accepted or refused, damaged checkpoints, folders used from elsewhere."""

import csv
import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from taskresize.errors import DataError
from taskresize.training.callbacks import RunProgressBar
from taskresize.training.config import load_config
from taskresize.training.run import AtomicCheckpointIO, load_checkpoint, quiet_lightning, train
from taskresize.training.tasks.data import EpochShuffle, SeededItems, TaskData

from helpers import StopAtEpoch, cli, colour_folders, train_args

QUICK = {"backbone": "timm:resnet10t", "in_size": 32, "out_size": 32, "batch_size": 8, "lr": 0.01, "precise_bn": 16}
TIMING = {"train_seconds", "train_images_per_s", "epoch_seconds", "wall_seconds"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("colours"), per_class=8, size=32)


def rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "epochs.csv").read_text().splitlines()))


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


class RandomDraws(L.Callback):
    """Records a draw of the global torch random state (what dropout would use) before every training batch."""

    def __init__(self):
        self.draws = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.draws[(trainer.current_epoch, batch_idx)] = torch.rand(()).item()
        self.draws[(trainer.current_epoch, batch_idx, "batch")] = batch[0].float().mean().item()


def test_a_stopped_and_resumed_run_equals_the_uninterrupted_one_with_any_worker_count(data, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    spy_whole, spy_parts = RandomDraws(), RandomDraws()
    train(load_config(None, {**QUICK, "data": str(data), "output": str(whole), "epochs": 2, "workers": 0}),
          callbacks=[spy_whole])  # fmt: skip
    first = load_config(None, {**QUICK, "data": str(data), "output": str(parts), "epochs": 2, "workers": 1})
    with pytest.raises(KeyboardInterrupt):
        train(first, callbacks=[StopAtEpoch(1), spy_parts])
    assert load_checkpoint(parts / "last.ckpt")["epoch"] == 0
    again = load_config(None, {"output": str(parts), "workers": 0})  # a safe change: recorded, not refused
    train(again, resume=True, given={"output", "workers"}, callbacks=[spy_parts])

    assert spy_parts.draws == spy_whole.draws  # the same batches (data order, augmentation) and random numbers
    a, b = rows(whole), rows(parts)
    assert [r["epoch"] for r in b] == ["0", "1"]
    for ra, rb in zip(a, b, strict=True):  # the last finished epoch's row survives the resume, metric for metric
        assert all(rb[k] != "" for k in rb), rb
        for key in set(ra) - TIMING:
            assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-6), key
    ma, mb = metrics(whole), metrics(parts)
    for key in set(ma) - TIMING:
        assert ma[key] == pytest.approx(mb[key], abs=1e-6), key
    saved = yaml.safe_load((parts / "config.yaml").read_text())
    assert saved["workers"] == 0 and saved["resumed"][-1]["changed"] == {"workers": [1, 0]}
    assert saved["resumed"][-1]["from_epoch"] == 1


def test_items_are_seeded_by_seed_epoch_and_index_and_leave_the_callers_random_state(data):
    class Draw(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return torch.rand(())

    items = SeededItems(Draw(), seed=3)
    torch.manual_seed(0)
    expected = torch.rand(())
    torch.manual_seed(0)
    assert items[(1, 2)] == items[(1, 2)] and items[(1, 2)] != items[(2, 2)] and items[(1, 2)] != items[(1, 3)]
    assert torch.rand(()) == expected  # the caller's random state did not move
    sampler = EpochShuffle(5, seed=3, rank=0, world=2)
    sampler.set_epoch(4)
    keys = list(sampler)
    assert len(keys) == 3 and all(epoch == 4 for epoch, _ in keys) and keys == list(sampler)


def test_the_last_partial_batch_is_dropped_so_no_batch_of_one_breaks_batchnorm(tmp_path):
    root = tmp_path / "data"
    colour_folders(root / "train", per_class=9, size=32)  # 27 training images at batch 13: 13 + 13 + 1
    colour_folders(root / "val", per_class=1, size=32, seed=1)
    run = tmp_path / "run"
    args = train_args(root, run, **{"--backbone": "timm:resnet10t", "--epochs": 1, "--batch-size": 13,
                                    "--precise-bn": 39})  # fmt: skip
    assert cli("train", *args) == 0
    assert metrics(run)["train_images"] == 27 and metrics(run)["val_images"] == 3


def test_a_training_set_too_small_for_batchnorm_is_a_clear_error():
    class Tiny(TaskData):
        root = "data/tiny"
        train_samples = (object(), object())
        cfg = load_config(None, {"batch_size": 8})

    assert Tiny().train_batch_size(world=1) == 2
    with pytest.raises(DataError, match=r"data/tiny: 2 training images after the split; training needs at least 2 "
                                         r"per process \(2 processes\)"):  # fmt: skip
        Tiny().train_batch_size(world=2)


def test_a_run_that_failed_before_its_first_epoch_does_not_block_its_folder(data, tmp_path, capsys):
    run = tmp_path / "run"
    args = train_args(data, run, **{"--backbone": "timm:resnet10t", "--epochs": 1, "--lr": None, "--batch-size": 1})
    for _ in range(2):  # a batch of one image: BatchNorm cannot train; the second time the folder does not block
        assert cli("train", *args) == 2
        err = capsys.readouterr().err
        assert "use a batch size of 2 or more" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert (run / "config.yaml").exists() and not (run / "last.ckpt").exists()
    assert cli("train", "--output", run, "--resume", "--batch-size", 4) == 0  # the saved settings, fixed
    assert "finished no epoch; starting it again" in capsys.readouterr().err
    assert [r["epoch"] for r in rows(run)] == ["0"]
    saved = load_config(run / "config.yaml")
    assert saved.batch_size == 4 and saved.lr == 0.05 * 4 / 128 and saved.backbone == "timm:resnet10t"


def test_resume_refuses_changes_of_what_the_model_is_and_damaged_checkpoints_fall_back(data, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config(None, {**QUICK, "data": str(data), "output": str(run), "epochs": 2, "workers": 0})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAtEpoch(1)])
    before = (run / "config.yaml").read_text()
    assert cli("train", "--output", run, "--resume", "--resizer", "learnable", "--lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "resizer 'bilinear' -> 'learnable'; lr 0.01 -> 0.5" in err and "--resume can change only epochs" in err
    assert len(err.strip().splitlines()) == 1 and (run / "config.yaml").read_text() == before
    assert cli("train", "--output", run, "--resume", "--epochs", "0") == 2  # checked before anything else

    last = run / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a copy or write cut short
    assert cli("eval", "--run", run) == 2
    err = capsys.readouterr().err
    assert "last.ckpt is damaged or incomplete" in err and "safely" not in err and "Traceback" not in err
    assert cli("train", "--output", run, "--resume") == 0
    err = capsys.readouterr().err
    assert "last.ckpt is damaged or incomplete" in err and "resuming from" in err and "best.ckpt (epoch 1)" in err
    assert [r["epoch"] for r in rows(run)] == ["0", "1"] and metrics(run)["epochs"] == 2
    finished = metrics(run)
    (run / "metrics.json").unlink()  # as if killed after the last epoch was saved, before metrics.json
    assert cli("train", "--output", run, "--resume") == 0
    again = metrics(run)
    assert again["epochs"] == 2 and again["top1_error"] == finished["top1_error"]
    assert again["val_loss"] == pytest.approx(finished["val_loss"], abs=1e-6)
    assert [r["epoch"] for r in rows(run)] == ["0", "1"] and all(v != "" for r in rows(run) for v in r.values())
    (run / "metrics.json").unlink()
    for name in ("last.ckpt", "best.ckpt"):
        (run / name).write_bytes(b"")
    assert cli("train", "--output", run, "--resume") == 2
    assert "no other checkpoint is whole" in capsys.readouterr().err


def test_a_mistyped_setting_stops_before_anything_is_written(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--pre-resize": "bicubicc"})) == 2
    config = tmp_path / "bad.yaml"
    config.write_text("label_smoothing: lots\n")
    assert cli("train", *train_args(data, run), "--config", config) == 2
    assert cli("train", *train_args(data, run, **{"--backbone": "tv:resnet18"})) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    wanted = "pre_resize = 'bicubicc': must be one of nearest, bilinear, bicubic, area, lanczos. Did you mean"
    assert wanted in err[0]
    assert "label_smoothing = 'lots': must be a number" in err[1] and "torchvision:NAME, timm:NAME" in err[2]
    assert not run.exists()


def test_a_run_folder_works_from_any_working_folder(data, tmp_path, monkeypatch, capsys):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "data").mkdir(parents=True)
    elsewhere.mkdir()
    os.symlink(data, home / "data" / "clip3")
    monkeypatch.chdir(home)
    assert cli("train", *train_args(Path("data/clip3"), Path("runs/learn"), **{"--backbone": "timm:resnet10t",
                                    "--epochs": 1})) == 0  # fmt: skip
    saved = yaml.safe_load((home / "runs/learn/config.yaml").read_text())
    assert saved["data"] == str(home / "data/clip3") and saved["output"] == str(home / "runs/learn")
    assert saved["paths_as_given"] == {"data": "data/clip3", "output": "runs/learn"}
    m = metrics(home / "runs/learn")
    assert "top5_error" not in m and "top5_error" not in rows(home / "runs/learn")[0]  # 3 classes: no top-5
    monkeypatch.chdir(elsewhere)
    assert cli("eval", "--run", home / "runs/learn") == 0
    # a run folder of an earlier version, with relative paths: taken from the folder the run was started in
    saved |= {"data": "data/clip3", "output": "runs/learn"}
    (home / "runs/learn/config.yaml").write_text(yaml.safe_dump(saved))
    assert cli("eval", "--run", home / "runs/learn") == 0
    assert json.loads((home / "runs/learn/eval.json").read_text())["top1_error"] == m["top1_error"]


def test_the_terminal_progress_bar_counts_epochs_from_one_and_shows_the_runs_time_left(capfd):
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
    trainer = L.Trainer(max_epochs=2, callbacks=[RunProgressBar(refresh_rate=1)], logger=False,
                        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    with quiet_lightning():
        trainer.fit(Tiny(), loader)
    shown = "".join(capfd.readouterr())  # Lightning's bars write to stdout
    assert "epoch 1/2" in shown and "epoch 2/2" in shown and "Epoch 0" not in shown and " left" in shown


def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an object it cannot pickle
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "bad": lambda: 0}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_finished_run_whose_checkpoints_were_deleted_is_not_started_over(tmp_path, capsys):
    from helpers import cli, colour_folders, train_args

    data = colour_folders(tmp_path / "data", per_class=4)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: classification\n")
    (run / "metrics.json").write_text('{"top1_error": 0.25}\n')
    (run / "epochs.csv").write_text("epoch,lr\n1,0.01\n")
    assert cli("train", *train_args(data, run)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == '{"top1_error": 0.25}\n'
    assert (run / "epochs.csv").read_text() == "epoch,lr\n1,0.01\n"


@pytest.mark.parametrize("task", ["[a]", "5", "null", "{x: 1}"])
def test_a_task_that_is_no_name_is_one_line(tmp_path, capsys, task):
    from helpers import cli

    config = tmp_path / "bad.yaml"
    config.write_text(f"task: {task}\n")
    assert cli("train", "--config", config, "--output", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
