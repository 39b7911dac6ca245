"""What a new user hits in the first hour: each case ends in correct behaviour or one line naming the fix (exit 2,
nothing written), and every command speaks one vocabulary of flags (old spellings kept as announced aliases)."""

import errno
import json
import os

import pytest
import torch
from PIL import Image

import taskresize as tr
from taskresize.cli import main

from helpers import cli, colour_folders, train_args


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if ": warning: " not in line]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folders(tmp_path_factory.mktemp("data"), per_class=4, size=40)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (20, 16), (40 * i, 90, 200)).save(folder / f"img{i}.png")
    return folder


def test_sizes_beyond_memory_are_refused_with_the_bytes_they_need(images, data, tmp_path, capsys):
    assert (
        cli("resize", "--resizer", "bilinear", images, "--output", tmp_path / "big", "--out-size", "100000x100000") == 2
    )
    assert "GB" in one_line_error(capsys)
    assert not (tmp_path / "big").exists()
    args = train_args(data, tmp_path / "run", **{"--in-size": "100000x100000", "--out-size": "100000x100000"})
    assert cli("train", *args) == 2
    assert "GB" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_outputs_that_cannot_hold_what_is_written_are_refused(images, data, tmp_path, capsys):
    a_file = tmp_path / "afile"
    a_file.write_text("mine")
    assert cli("train", *train_args(data, a_file)) == 2
    assert "is a file" in one_line_error(capsys) and a_file.read_text() == "mine"
    before = sorted(p.name for p in data.iterdir())
    assert cli("train", *train_args(data, data / "myrun")) == 2  # it would become a class of the next run
    assert "inside --data" in one_line_error(capsys)
    assert sorted(p.name for p in data.iterdir()) == before
    folder = tmp_path / "adir"
    folder.mkdir()
    assert cli("export", "--resizer", "bilinear", "--out-size", 8, "--in-size", 16, "--output", folder) == 2
    assert "is a folder" in one_line_error(capsys) and not any(folder.iterdir())
    assert cli("eval", "--run", tmp_path / "norun", "--output", folder) == 2
    assert "is a folder" in one_line_error(capsys)


def test_resume_refuses_a_folder_without_a_run(data, tmp_path, capsys):
    assert cli("train", *train_args(data, tmp_path / "nosuch"), "--resume") == 2
    assert "does not exist" in one_line_error(capsys) and not (tmp_path / "nosuch").exists()
    (tmp_path / "empty").mkdir()
    assert cli("train", *train_args(data, tmp_path / "empty"), "--resume") == 2
    assert "holds no run" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_one_line(data, tmp_path, capsys):
    assert cli("train", *train_args(data, tmp_path / "gpu"), "--accelerator", "gpu") == 2
    assert "--accelerator gpu" in one_line_error(capsys) and not (tmp_path / "gpu").exists()


def test_a_resizer_file_with_nan_weights_is_refused(images, tmp_path, capsys):
    module = tr.create_resizer("learnable", output_size=8)
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))
    path = tr.save_resizer(module, tmp_path / "nan.safetensors")
    assert cli("resize", "--resizer", path, images, "--output", tmp_path / "out") == 2
    assert "NaN" in one_line_error(capsys) and not (tmp_path / "out").exists()
    assert cli("info", path) == 2
    assert "NaN" in one_line_error(capsys)


def test_flags_a_command_would_ignore_are_refused_and_existing_files_kept(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli("resize", "--resizer", "bilinear", images, "--output", out, "--out-size", 8, "--in-size", 64) == 2
    assert "classic" in one_line_error(capsys) and not out.exists()
    out.mkdir()
    (out / "img0.png").write_text("precious")
    assert cli("resize", "--resizer", "bilinear", images, "--output", out, "--out-size", 8) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert (out / "img0.png").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["img0.png"]
    assert cli("resize", "--resizer", "bilinear", images, "--output", out, "--out-size", 8, "--overwrite") == 0
    with Image.open(out / "img0.png") as written:
        assert written.size == (8, 8)


def test_export_checks_its_tolerance_before_anything(capsys):
    assert cli("export", "--resizer", "bilinear", "--tolerance", "-1") == 2
    assert "--tolerance" in one_line_error(capsys)


def test_one_image_per_class_says_there_is_nothing_to_validate_on(tmp_path, capsys):
    for name, colour in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), colour).save(tmp_path / "data" / name / "only.png")
    assert cli("train", *train_args(tmp_path / "data", tmp_path / "run")) == 2
    line = one_line_error(capsys)
    assert "single image" in line and "readable" not in line


@pytest.mark.slow
def test_resume_extends_a_finished_run_and_removes_stale_temporary_checkpoints(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run, **{"--epochs": 1})) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    stale = run / ".last.0123abcd.tmp.ckpt"  # what a kill -9 during a checkpoint write leaves
    stale.write_bytes(b"\0" * 100)
    capsys.readouterr()
    assert cli("train", *train_args(data, run, **{"--epochs": 1}), "--resume") == 0
    assert "nothing to do" in capsys.readouterr().out and stale.exists()  # a finished run is not touched
    assert cli("train", *train_args(data, run, **{"--epochs": 2}), "--resume") == 0
    assert not stale.exists()
    assert len((run / "epochs.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert cli("info", run) == 0


@pytest.mark.slow
def test_a_full_disk_when_a_checkpoint_is_written_is_one_line_and_keeps_the_last_good_one(
    data, tmp_path, capsys, monkeypatch
):
    from taskresize.training import run as run_module

    saved = run_module.AtomicCheckpointIO.save_checkpoint
    calls = []

    def fill_up(self, checkpoint, path, storage_options=None):
        calls.append(path)
        if len(calls) > 2:  # the second epoch's checkpoints (best and last)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        saved(self, checkpoint, path, storage_options)

    monkeypatch.setattr(run_module.AtomicCheckpointIO, "save_checkpoint", fill_up)
    run = tmp_path / "run"
    assert cli("train", *train_args(data, run)) == 2
    line = one_line_error(capsys)
    assert "no space left" in line and "--resume" in line
    assert run_module.load_checkpoint(run / "last.ckpt")["epoch"] == 0


def test_info_describes_runs_without_a_resizer_file(tmp_path, capsys):
    run = tmp_path / "classic"
    run.mkdir()
    (run / "config.yaml").write_text("resizer: bilinear\nepochs: 2\n")
    (run / "epochs.csv").write_text("epoch,lr\n0,0.1\n1,0.1\n")
    (run / "metrics.json").write_text('{"top1_error": 0.25}\n')
    assert cli("info", run) == 0
    out = capsys.readouterr().out
    assert "classic" in out and "finished" in out and "top1_error" in out
    learned = tmp_path / "learned"
    learned.mkdir()
    (learned / "config.yaml").write_text("resizer: learnable\nepochs: 3\n")
    (learned / "epochs.csv").write_text("epoch,lr\n0,0.1\n")
    assert cli("info", learned) == 0
    out = capsys.readouterr().out
    assert "unfinished: 1 of 3 epochs" in out and "--resume" in out


WRITERS = ("resize", "show", "export", "train", "eval", "sweep", "compare", "demo")
RETAINERS = frozenset({"train", "resize", "eval", "compare", "sweep", "demo"})  # the commands that run models


@pytest.mark.parametrize("command", sorted({*WRITERS, "info", "list"}))
def test_every_help_speaks_the_one_vocabulary(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert ("--output" in text) == (command in WRITERS)
    assert ("--no-retain-freed-memory" in text) == (command in RETAINERS)
    for old in ("--out ", "--input-size", "--size "):
        assert old not in text.replace("--out-size", "").replace("--in-size", ""), old
    if command in ("sweep", "compare", "demo"):
        assert "--jobs" in text and "--workers" not in text
    if command in ("resize", "train"):
        assert "--workers" in text and "data-loading" in text.lower()


def test_old_spellings_still_work_and_say_the_new_one(images, tmp_path, capsys):
    assert cli("resize", "--resizer", "bilinear", images, "--out", tmp_path / "o", "--size=8") == 0
    err = capsys.readouterr().err
    assert "--out is now --output" in err and "--size is now --out-size" in err
    assert len(list((tmp_path / "o").iterdir())) == 2


def test_mistyped_flags_commands_and_sweep_keys_get_a_suggestion(tmp_path, capsys):
    assert cli("trian") == 2
    assert "Did you mean 'train'?" in one_line_error(capsys)
    assert cli("train", "--epohcs", 3) == 2
    assert "Did you mean '--epochs'?" in one_line_error(capsys)
    assert cli("resize", "--resizer", "bilinear", "x", "--output", "y", "--overwirte") == 2
    assert "Did you mean '--overwrite'?" in one_line_error(capsys)
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nbase: {epoch: 2}\ngrid: {resizer: [bilinear]}\n")
    assert cli("sweep", "--config", sweep, "--dry-run") == 2
    assert "Did you mean 'epochs'?" in one_line_error(capsys)


def test_value_errors_come_before_torch_is_imported():
    import subprocess
    import sys

    code = (
        "import sys\nfrom taskresize.cli import main\n"
        "for argv in (['train', '--epochs', '0'], ['resize', '--resizer', 'x', 'y', '--output', 'z', '--quality', "
        "'0'], ['sweep', '--config', 'x', '--jobs', '0'], ['export', '--resizer', 'x', '--tolerance', '-1']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 2, argv\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_list_marks_learned_and_classic_with_a_description(capsys):
    from taskresize.resizers.registry import list_resizers

    assert cli("list") == 0
    out = capsys.readouterr().out
    learned, classic = out.split("classic (fixed filters):")
    assert all(f"  {name} " in learned for name in list_resizers(learned=True))
    assert all(f"  {name} " in classic for name in list_resizers(learned=False))
    assert ":class:" not in out and "``" not in out


def test_the_terminal_bar_fits_80_columns_with_the_runs_time_left():
    from tqdm import tqdm

    from taskresize.training.callbacks import RunProgressBar

    line = tqdm.format_meter(
        n=123, total=456, elapsed=83, ncols=80, prefix="epoch 10/10", bar_format=RunProgressBar.BAR_FORMAT,
        postfix="run=12.5 min left",
    )  # fmt: skip
    assert len(line) <= 80 and line.endswith("run=12.5 min left]") and "epoch 10/10" in line


def test_epoch_lines_go_above_a_terminal_bar(tmp_path, capsys, monkeypatch):
    from taskresize.training.callbacks import EpochLog

    written = []
    monkeypatch.setattr("tqdm.tqdm.write", classmethod(lambda cls, line, file=None: written.append(line)))
    log = EpochLog(tmp_path / "epochs.csv", {"top1_error": "val/top1_error"}, echo=True, above_bar=True)
    log.rows = [{"epoch": 0, "lr": 0.1, "train_loss": 0.5, "top1_error": 0.25, "train_seconds": 1.0,
                 "train_images_per_s": 10.0, "epoch_seconds": 1.5}]  # fmt: skip
    log._batches, log._train_end = 1, None

    class Trainer:
        current_epoch, max_epochs, is_global_zero, world_size = 0, 2, True, 1

    log.on_train_epoch_end(Trainer(), None)
    assert len(written) == 1 and written[0].startswith("epoch 1/2: train loss 0.5, top1_error 0.25")
    assert capsys.readouterr().out == ""


def test_commands_keep_freed_memory_on_a_cpu_unless_told_not_to(images, tmp_path, monkeypatch):
    from taskresize.hardware import RETAIN_FREED_MEMORY

    monkeypatch.delenv(RETAIN_FREED_MEMORY, raising=False)  # restored after the test, whatever the command sets
    calls = []
    monkeypatch.setattr("taskresize.hardware.retain_freed_memory", lambda: calls.append(1) or True)
    assert cli("resize", "--resizer", "bilinear", images, "--output", tmp_path / "a", "--out-size", 8) == 0
    assert calls == [1] and RETAIN_FREED_MEMORY not in os.environ
    argv = ["--resizer", "bilinear", images, "--output", tmp_path / "b", "--out-size", 8, "--no-retain-freed-memory"]
    assert cli("resize", *argv) == 0
    assert calls == [1] and os.environ[RETAIN_FREED_MEMORY] == "0"  # and the processes it starts inherit it


def test_resize_progress_when_piped_is_a_line_every_so_often():
    from taskresize.inference.files import PipedProgress

    lines = []
    progress = PipedProgress(3, every=0.0, write=lines.append)
    for _ in range(3):
        progress.update()
    assert [line.split(" (")[0] for line in lines] == ["1/3 images", "2/3 images"]  # the summary tells the last
    assert all("left)" in line for line in lines)
