"""Image quality assessment: the EMD loss, the correlations, score tables, the generated set and a short run."""

import csv
import json
import os
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from scipy.stats import pearsonr, spearmanr

from taskresize.data.builtin import iqa as builtin_iqa
from taskresize.data.formats.iqa import (
    DEFAULT_STD,
    ScoreDataset,
    TableError,
    gaussian_histogram,
    read_score_table,
    split_table,
)
from taskresize.training.config import load_config
from taskresize.training.registry import get_task
from taskresize.training.run import evaluate, load_checkpoint
from taskresize.training.tasks.iqa import IQATask, ScoreTableData, emd, mean_score

from helpers import cli

SCORES = np.arange(1, 11)


# --- the loss and the metrics ---


def test_emd_equals_hand_computed_values():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 0.5]])
    # CDF differences [1, 1, 0] and [0.5, 0.5, 0]: sqrt(2/3) and sqrt((0.25 + 0.25) / 3)
    assert torch.allclose(emd(p, q), torch.tensor([(2 / 3) ** 0.5, (1 / 6) ** 0.5]))
    assert torch.allclose(emd(p, q, r=1), torch.tensor([2 / 3, 1 / 3]))
    assert torch.equal(emd(q, p), emd(p, q))


def test_emd_is_zero_for_equal_histograms_with_a_finite_gradient():
    logits = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    p = logits.softmax(-1)
    loss = emd(p, p.detach()).mean()
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_emd_gradcheck():
    logits = torch.randn(3, 10, dtype=torch.float64, requires_grad=True)
    q = torch.randn(3, 10, dtype=torch.float64).softmax(-1)
    assert torch.autograd.gradcheck(lambda x: emd(x.softmax(-1), q), (logits,))


def test_mean_score_is_the_expected_rating():
    p = torch.zeros(2, 10)
    p[0, 6] = 1
    p[1, :] = 0.1
    assert mean_score(p).tolist() == pytest.approx([7.0, 5.5])


def test_correlations_over_batches_equal_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 1, 203)
    y = 0.6 * x + rng.normal(0, 1, 203)
    y[:10] = y[10]  # ties
    task = IQATask({"task": "iqa", "backbone": "timm:resnet10t", "out_size": 32})
    for i in range(0, 203, 32):
        preds, target = (torch.tensor(v[i : i + 32], dtype=torch.float32) for v in (x, y))
        task.val_metrics.update(preds=preds, target=target, value=(preds - target).abs())  # value: a stand-in EMD
    metrics = {k: v.item() for k, v in task.epoch_metrics().items()}
    assert list(metrics) == ["val/srcc", "val/plcc", "val/emd"]
    assert metrics["val/plcc"] == pytest.approx(pearsonr(x, y)[0], abs=1e-5)
    assert metrics["val/srcc"] == pytest.approx(spearmanr(x, y)[0], abs=1e-5)
    assert metrics["val/emd"] == pytest.approx(np.abs(x - y).mean(), abs=1e-5)


def test_correlations_of_a_constant_predictor_are_zero():
    task = IQATask({"task": "iqa", "backbone": "timm:resnet10t", "out_size": 32})
    task.val_metrics.update(preds=torch.full((8,), 5.0), target=torch.arange(8.0), value=torch.ones(8))
    metrics = task.epoch_metrics()
    assert metrics["val/plcc"].item() == 0.0 and metrics["val/srcc"].item() == 0.0 and metrics["val/emd"].item() == 1.0


def _correlations_in_process(rank, world, port, x, y, folder):
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        task = IQATask({"task": "iqa", "backbone": "timm:resnet10t", "out_size": 32})
        xs, ys = x[rank::world], y[rank::world]  # uneven shards, as the rank-strided validation set
        for i in range(0, len(xs), 16):
            task.val_metrics.update(preds=xs[i : i + 16], target=ys[i : i + 16], value=xs[i : i + 16])
        metrics = task.epoch_metrics()
        torch.save(torch.stack([metrics["val/plcc"], metrics["val/srcc"]]), folder / f"{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_correlations_reduce_across_processes(tmp_path):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(101, generator=generator)
    y = x + torch.randn(101, generator=generator)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_correlations_in_process, args=(2, port, x, y, tmp_path), nprocs=2)
    for rank in (0, 1):
        plcc, srcc = torch.load(tmp_path / f"{rank}.pt").tolist()
        assert plcc == pytest.approx(pearsonr(x, y)[0], abs=1e-5)
        assert srcc == pytest.approx(spearmanr(x, y)[0], abs=1e-5)


# --- score tables ---


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), (i * 40 % 256, 90, 30)).save(folder / name)


def test_ava_layout(tmp_path):
    _images(tmp_path / "imgs", ["953619.jpg", "953958.jpg"])
    table = tmp_path / "AVA.txt"
    table.write_text("1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n\n2 953958 10 7 15 26 26 21 10 8 1 2 0 0 1396\n")
    read = read_score_table(table, images=tmp_path / "imgs")
    assert read.paths == [str(tmp_path / "imgs" / "953619.jpg"), str(tmp_path / "imgs" / "953958.jpg")]
    votes = np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1])
    assert np.allclose(read.histograms[0], votes / votes.sum())
    assert read.means[0] == pytest.approx((votes * SCORES).sum() / votes.sum())
    assert read.splits is None and read.lines == [1, 3]
    with pytest.raises(TableError, match=r"AVA.txt: 2 of 2 listed images are missing \(line 1: .*953619.jpg"):
        read_score_table(table)  # relative to the table's folder without --images


def test_vote_count_csv_with_paths_relative_to_the_table_or_images(tmp_path):
    _images(tmp_path / "data" / "img", ["a.png", "sub/b.png"])
    table = tmp_path / "data" / "votes.csv"
    table.write_text("path,1,2,3,4,5,6,7,8,9,10,extra\nimg/a.png,0,0,0,0,1,1,0,0,0,0,x\n"
                     f"{tmp_path / 'data' / 'img' / 'sub' / 'b.png'},0,0,0,0,0,0,0,0,0,2.5,y\n")  # fmt: skip
    read = read_score_table(table)
    assert read.paths == [str(tmp_path / "data" / "img" / "a.png"), str(tmp_path / "data" / "img" / "sub" / "b.png")]
    assert read.means.tolist() == pytest.approx([5.5, 10.0])
    moved = tmp_path / "elsewhere.csv"
    moved.write_text("path,1,2,3,4,5,6,7,8,9,10\na.png,1,0,0,0,0,0,0,0,0,0\n")
    assert read_score_table(moved, images=tmp_path / "data" / "img").paths == [str(tmp_path / "data" / "img" / "a.png")]


def test_mean_score_csv_becomes_a_gaussian_histogram(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    table = tmp_path / "scores.csv"
    table.write_text("path,mean_score,std\na.png,5.5,\nb.png,9.8,0.5\nc.png,1,2\n")
    read = read_score_table(table)
    assert read.means.tolist() == pytest.approx([5.5, 9.8, 1.0], abs=1e-6)
    assert np.allclose(read.histograms[0], gaussian_histogram(5.5, DEFAULT_STD))
    assert np.allclose(read.histograms.sum(1), 1)


def test_gaussian_histogram_has_the_mean_exactly_and_the_spread_in_the_middle():
    for mean, std in [(5.5, DEFAULT_STD), (3.2, 1.0), (7.9, 2.0), (9.99, 1.4), (1.0, 0.3), (4.5, 0.01)]:
        h = gaussian_histogram(mean, std)
        assert h.sum() == pytest.approx(1) and (h >= 0).all()
        assert h @ SCORES == pytest.approx(mean, abs=1e-9)
    h = gaussian_histogram(5.5, 1.4)
    assert np.sqrt(h @ (SCORES - 5.5) ** 2) == pytest.approx(1.4, rel=0.01)  # cut off 3.2 std out
    with pytest.raises(ValueError):
        gaussian_histogram(10.5)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("AVA.txt", "1 10 0 1 2 3 4 5 6 7 8 9 0 0 1\n2 11 0 1 2 3 4 5 6 7 8 0 0 1\n", "line 2, column 15"),
        ("AVA.txt", "1 10 0 1 2 3 4 five 6 7 8 9 0 0 1\n", r"line 1, column 8 \(votes for 6\): 'five'"),
        ("AVA.txt", "1 10 0 1 2 3 -4 5 6 7 8 9 0 0 1\n", r"line 1, column 7 \(votes for 5\): '-4'"),
        ("AVA.txt", "\n\n1 10 0 0 0 0 0 0 0 0 0 0 0 0 1\n", "line 3, column 3 .* sum to 0"),
        (
            "t.csv",
            "path,1,2,3,4,5,6,7,8,9,10\na.png,0,0,0,0,1,1,0,0,0,0\nb.png,0,0,x,0,1,1,0,0,0,0\n",
            r"line 3, column 4 \(3\): 'x'",
        ),
        ("t.csv", "path,1,2,3,4,5,6,7,8,9,10\na.png,0,0,0,0,1\n", r"line 2, column 7 \(6\): found 6 columns"),
        ("t.csv", "path,1,2,3,4,5,6,7,8,9,10\na.png,0,0,0,0,0,0,0,0,0,0\n", "line 2, column 2 .* sum to 0"),
        ("t.csv", "path,1,2,3,4,5,6,7,8,9,10\na.png,0,0,0,0,1,1,0,0,0,nan\n", r"line 2, column 11 \(10\)"),
        ("t.csv", "path,mean_score\na.png,5\n,5\n", r"line 3, column 1 \(path\): empty"),
        ("t.csv", "path,mean_score\na.png,10.5\n", r"line 2, column 2 \(mean_score\): '10.5' is not a number from 1"),
        ("t.csv", "std,path,mean_score\n-1,a.png,5\n", r"line 2, column 1 \(std\): '-1' is not a positive"),
        ("t.csv", "path,mean_score,split\na.png,5,test\n", r"line 2, column 3 \(split\): 'test' is not one of"),
        ("t.csv", "path,1,2,3,4,5\n", "line 1: header lacks vote column.* 6, 7, 8, 9, 10"),
        ("t.csv", "path,score\na.png,5\n", "line 1: header path,score has neither"),
        ("t.csv", "file,mean_score\na.png,5\n", "line 1: a CSV needs a header with a 'path' column"),
    ],
)
def test_malformed_tables_name_the_file_line_and_column(tmp_path, name, text, where):
    table = tmp_path / name
    table.write_text(text)
    with pytest.raises(TableError, match=rf"^{re.escape(str(tmp_path / name))}, {where}"):
        read_score_table(table, check_files=False)


def test_missing_and_empty_tables(tmp_path):
    with pytest.raises(TableError, match=r"nowhere\.csv is not a file"):
        read_score_table(tmp_path / "nowhere.csv")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(TableError, match=r"empty\.csv is empty"):
        read_score_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("path,mean_score\n")
    with pytest.raises(TableError, match=r"header\.csv has a header but no rows"):
        read_score_table(tmp_path / "header.csv")


def test_split_by_column_or_by_a_fixed_seed(tmp_path):
    names = [f"{i}.png" for i in range(10)]
    _images(tmp_path, names)
    table = tmp_path / "t.csv"
    table.write_text("path,mean_score,split\n" + "".join(f"{n},5,{'val' if i < 3 else 'train'}\n"
                                                        for i, n in enumerate(names)))  # fmt: skip
    train, val = split_table(read_score_table(table), 0.5, seed=0)
    assert [os.path.basename(p) for p in val.paths] == names[:3] and len(train) == 7
    plain = read_score_table(table)
    plain.splits = None
    train, val = split_table(plain, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8 and not set(train.paths) & set(val.paths)
    assert split_table(plain, 0.2, seed=0)[1].paths == val.paths
    assert split_table(plain, 0.2, seed=1)[1].paths != val.paths


def test_cli_reports_a_malformed_row_in_one_line(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("path,mean_score\na.png,eleven\n")
    assert cli("train", "--task", "iqa", "--data", table, "--output", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"{table}, line 2, column 2 (mean_score): 'eleven'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_distortions_are_refused_for_iqa_rather_than_ignored(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("path,mean_score\na.png,5\n")
    assert cli("train", "--task", "iqa", "--data", table, "--distortion", "jpeg10", "--output", tmp_path / "r") == 2
    assert "distortion = 'jpeg10': implemented for classification only, not for iqa" in capsys.readouterr().err


# --- the task's defaults and data module ---


def test_task_defaults_are_the_papers_bicubic_baseline_on_the_generated_set():
    cfg = load_config(None, {"task": "iqa"})
    assert (cfg.resizer, cfg.pre_resize, cfg.data) == ("bicubic", "bicubic", "builtin-iqa")
    spec = get_task("iqa")
    assert spec.monitor == "val/srcc" and spec.mode == "max"
    assert load_config(None, {"task": "iqa", "resizer": "learnable"}).resizer == "learnable"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return builtin_iqa.generate(tmp_path_factory.mktemp("iqa") / "set", count=480, size=48, workers=1)


def test_augmentation_is_a_flip_only_and_evaluation_sees_whole_images(generated, tmp_path):
    cfg = load_config(None, {"task": "iqa", "data": str(generated), "in_size": 40, "out_size": 40})
    data = ScoreTableData(cfg)
    train, plain = data.train_dataset(), ScoreDataset(data.train_samples, data.transform, flip=False)
    torch.manual_seed(0)
    seen = {bool(torch.equal(train[0][0], plain[0][0].flip(-1))) for _ in range(12)}
    assert seen == {True, False}
    for _ in range(12):
        image = train[0][0]
        assert torch.equal(image, plain[0][0]) or torch.equal(image, plain[0][0].flip(-1))
    assert data.val_size == 96 and data.train_size == 384


def test_eval_on_another_table_uses_its_val_rows_or_all_of_them(generated, tmp_path):
    cfg = load_config(None, {"task": "iqa", "data": str(generated), "in_size": 40, "out_size": 40})
    other = generated.parent / "other.csv"
    other.write_text("path,mean_score,split\nimages/00000.png,5,train\nimages/00001.png,6,val\n")
    data = ScoreTableData(cfg, eval_root=str(other))
    assert data.val_size == 1 and data.val_samples.paths == [str(generated.parent / "images" / "00001.png")]
    assert data.root == str(other) and data.train_size == 384
    other.write_text("path,mean_score\nimages/00000.png,5\nimages/00001.png,6\n")
    assert ScoreTableData(cfg, eval_root=str(other)).val_size == 2


def test_generated_set_is_deterministic_and_scores_fall_with_the_damage(generated, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path))
    image, record = builtin_iqa.sample(5, size=32)
    again, same = builtin_iqa.sample(5, size=32)
    assert np.array_equal(image, again) and record == same
    assert not np.array_equal(image, builtin_iqa.sample(6, size=32)[0])
    table = builtin_iqa.builtin_iqa_table(count=6, size=32)
    assert table == tmp_path / "builtin-iqa-v1-6x32-seed0" / "scores.csv"
    first = (table.parent / "images" / "00000.png").read_bytes()
    assert builtin_iqa.builtin_iqa_table(count=6, size=32) == table
    assert (table.parent / "images" / "00000.png").read_bytes() == first  # cached, not regenerated
    read = read_score_table(generated)
    assert len(read) == 480
    with open(generated) as f:
        rows = list(csv.DictReader(f))
    damage = [float(r["strength"]) + float(r["haze"]) for r in rows]
    assert {r["distortion"] for r in rows} == set(builtin_iqa.DISTORTIONS)
    assert spearmanr(damage, read.means)[0] < -0.9


# --- a short run ---


@pytest.mark.slow
def test_a_short_run_learns_quality_and_eval_reproduces_scipy(generated, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--task", "iqa", "--data", generated, "--backbone", "timm:resnet10t", "--in-size", 48,
            "--out-size", 48, "--epochs", 3, "--batch-size", 16, "--lr", 0.05, "--workers", 0, "--precise-bn", 32,
            "--output", run]  # fmt: skip
    assert cli(*args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["srcc"] > 0.5, metrics
    assert metrics["plcc"] > 0.5 and 0 < metrics["emd"] < 0.5
    assert metrics["val_images"] == 96 and metrics["epochs"] == 3
    assert load_config(run / "config.yaml").resizer == "bicubic"

    # the epoch-end metrics over batches equal scipy's on the whole validation set, predicted in one go
    cfg = load_config(run / "config.yaml")
    data = ScoreTableData(cfg)
    task = IQATask(cfg.to_dict())
    task.load_state_dict(load_checkpoint(run / "last.ckpt")["state_dict"])
    task.eval()
    dataset = data.eval_dataset()
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        predicted = mean_score(task(images).softmax(-1)).numpy()
    true = data.val_samples.means
    evaluated = evaluate(run)
    assert evaluated["srcc"] == pytest.approx(spearmanr(predicted, true)[0], abs=1e-4)
    assert evaluated["plcc"] == pytest.approx(pearsonr(predicted, true)[0], abs=1e-4)
    assert evaluated["srcc"] == pytest.approx(metrics["srcc"], abs=1e-4)
