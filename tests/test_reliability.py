"""Bad input, crashes and untrusted files: each tried, each with a clear outcome."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import lightning as L
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from taskresize.data.decode import ImageDecodeError, load_image
from taskresize.data.formats.folders import ImageFolderDataset, Sample, screen_samples
from taskresize.data.transforms import PreResize
from taskresize.errors import DataError
from taskresize.training.config import load_config
from taskresize.training.run import TrainingDiverged, load_checkpoint, train

from helpers import cli, colour_folders, train_args


def bad_files(folder):
    """One file of every kind of trouble, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # header intact
    Image.new("L", (3000, 3000)).save(folder / "bomb.png")
    Image.new("RGB", (8, 8), (200, 40, 40)).save(folder / "tiny.png")
    return folder


def test_screening_skips_and_reports_by_reason(tmp_path):
    folder = bad_files(tmp_path / "bad")
    samples = [Sample(str(p), 0) for p in sorted(folder.iterdir())]
    kept, report = screen_samples(samples, max_pixels=1_000_000, min_size=(16, 16))
    assert {os.path.basename(s.path) for s in kept} == {"tiny.png"}  # truncation is found here, at scan time
    assert {k: [os.path.basename(p) for p in v] for k, v in report.skipped.items()} == {
        "too large": ["bomb.png"], "empty": ["empty.png"], "not an image": ["text.jpg"], "corrupt": ["truncated.png"]
    }  # fmt: skip
    assert [os.path.basename(p) for p in report.small] == ["tiny.png"]
    lines = "\n".join(report.lines())
    assert "skipped 1 file(s) (too large): " in lines and "smaller than 16x16 will be up-scaled" in lines
    with pytest.raises(DataError, match="--strict: skipped"):
        screen_samples(samples, max_pixels=1_000_000, min_size=(16, 16), strict=True)


def test_a_file_that_fails_to_decode_is_replaced_and_reported_once(tmp_path, capsys):
    folder = bad_files(tmp_path / "bad")
    good = str(folder / "tiny.png")
    dataset = ImageFolderDataset([Sample(str(folder / "truncated.png"), 1), Sample(good, 0)])
    image, label = dataset[0]
    assert label == 0 and image.shape == (3, 8, 8)
    dataset[0]
    assert capsys.readouterr().err.count("truncated.png") == 1
    with pytest.raises(ImageDecodeError, match=r"truncated\.png"):
        ImageFolderDataset([Sample(str(folder / "truncated.png"), 1)], strict=True)[0]


def test_training_skips_bad_files_or_stops_with_strict(tmp_path, capsys):
    data = colour_folders(tmp_path / "data", per_class=8)
    bad_files(data / "red")
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--epochs": 1, "--max-pixels": 1_000_000})) == 0
    err = capsys.readouterr().err
    assert "(too large)" in err and "bomb.png" in err and "(empty)" in err and "text.jpg" in err
    assert "Traceback" not in err
    assert cli("train", *train_args(data, tmp_path / "strict", **{"--max-pixels": 1_000_000}), "--strict") == 2
    assert "--strict: skipped" in capsys.readouterr().err


class ExplodeAtEpoch(L.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 1e30


def test_a_diverging_run_stops_clearly_and_keeps_the_last_good_epoch(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=8)
    run = tmp_path / "run"
    cfg = load_config(None, {"data": str(data), "output": str(run), "in_size": 32, "out_size": 32, "epochs": 4,
                             "batch_size": 8, "workers": 0, "lr": 0.01, "precise_bn": 0})  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"training diverged: the loss is .* at epoch 1") as info:
        train(cfg, callbacks=[ExplodeAtEpoch(1)])
    assert "last good checkpoint" in str(info.value) and "--lr" in str(info.value)
    checkpoint = load_checkpoint(run / "last.ckpt")
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    assert not (run / "metrics.json").exists()


def test_kill_9_during_training_loses_no_finished_epoch(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=12)
    run = tmp_path / "run"
    args = train_args(data, run, **{"--epochs": 6, "--precise-bn": 0})
    command = [sys.executable, "-m", "taskresize", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    csv = run / "epochs.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if csv.exists() and len(csv.read_text().strip().splitlines()) >= 3:  # header + two finished epochs
            break
        time.sleep(0.05)
    time.sleep(float(np.random.default_rng().uniform(0, 1.5)))  # somewhere in the third epoch
    finished = len(csv.read_text().strip().splitlines()) - 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved_epoch = load_checkpoint(run / "last.ckpt")["epoch"]  # loads: the file is whole
    assert saved_epoch >= finished - 1
    assert cli("train", "--output", run, "--resume") == 0
    rows = [line.split(",") for line in csv.read_text().strip().splitlines()[1:]]
    assert [r[0] for r in rows] == [str(i) for i in range(6)]
    assert all(value != "" for r in rows for value in r), rows  # the last epoch saved before the kill keeps its row
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 6


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_checkpoints_are_refused_and_do_not_run(tmp_path, capsys):
    data = colour_folders(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--epochs": 1})) == 0
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"x": Payload(str(marker))}}, run / "last.ckpt")  # replaces the real checkpoint
    assert cli("eval", "--run", run) == 2
    assert cli("train", *train_args(data, tmp_path / "next", **{"--epochs": 1}), "--init", run) == 2
    err = capsys.readouterr().err
    assert "can load safely" in err and "Python object (io.open)" in err and "Traceback" not in err
    assert not marker.exists()
    with open(run / "evil.pkl", "wb") as f:
        pickle.dump(Payload(str(marker)), f)
    assert cli("train", *train_args(data, tmp_path / "w", **{"--pretrained": run / "evil.pkl"})) == 2
    assert not marker.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".webp", ".bmp"]))
def test_fuzz_random_bytes_raise_only_the_documented_error(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        image = load_image(path, max_pixels=1_000_000)
    except ImageDecodeError:
        return
    assert image.dtype == torch.uint8 and image.shape[0] == 3


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF"]),
    out=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    augment=st.booleans(),
    seed=st.integers(0, 2**16),
    cut=st.floats(0.2, 1.0),
)
def test_fuzz_modes_sizes_and_truncation_through_the_loader_path(
    tmp_path, mode, width, height, fmt, out, augment, seed, cut
):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8)).convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format
    path = tmp_path / f"f.{fmt.lower()}"
    blob = buffer.getvalue()
    path.write_bytes(blob[: max(1, int(len(blob) * cut))])
    try:
        result = PreResize(out, augment=augment)(path)
    except ImageDecodeError:
        return
    assert result.dtype == torch.uint8 and result.shape == (3, *out)
