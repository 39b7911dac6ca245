"""Try every kind of bad input on the command line and record what happens (docs/results.md, Robustness).

Each case builds its input in a temporary folder, runs `taskresize ...` in a subprocess and records the exit
status and the message the user sees (first error or warning line on stderr). The test that checks the same
behaviour is named beside it.

    python benchmarks/robustness.py [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import colour_folders, train_args
from results_file import add_section

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
MISTAKES = "test_training::test_user_mistakes_end_with_one_line_and_status_2"
FOLDERS = "test_data::test_folder_errors_name_the_folder"
SKIPS = "test_reliability::test_training_skips_bad_files_or_stops_with_strict"
SIZES = "test_sizes_flops::test_bad_sizes"
JSON = "test_config::test_resizer_args_flag_must_be_a_json_object"
CRAFTED = "test_reliability::test_crafted_checkpoints_are_refused_and_do_not_run"
PICKLE = "test_backbones::test_pickle_payload_is_refused_without_running"
DIVERGED = "test_reliability::test_a_diverging_run_stops_clearly_and_keeps_the_last_good_epoch"
KILLED = "test_reliability::test_kill_9_during_training_loses_no_finished_epoch"
INIT = "test_training::test_init_loads_the_earlier_backbone"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def taskresize(*args: object, timeout: float = 600) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "taskresize", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    lines = [line for line in result.stderr.splitlines() if "error" in line or "warning" in line or "skipped" in line]
    if "Traceback" in result.stderr:
        lines.insert(0, "TRACEBACK")
    return result.returncode, " / ".join(lines[:2]) or "(nothing on stderr)"


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def cases(root: Path):
    """Yield ``(bad input, test, thunk)``; the thunk returns ``(exit status, message, extra note)``."""
    data = colour_folders(root / "data", per_class=8)
    quick = {"--epochs": 1}

    def run(*args):
        status, message = taskresize(*args)
        return status, message, ""

    yield (
        "data folder missing",
        MISTAKES,
        lambda: run("train", *train_args(root / "missing", root / "r1", **quick)),
    )
    (root / "empty").mkdir()
    yield (
        "data folder empty",
        FOLDERS,
        lambda: run("train", *train_args(root / "empty", root / "r2", **quick)),
    )
    colour_folders(root / "noimg", per_class=2)
    (root / "noimg" / "cats").mkdir()
    (root / "noimg" / "cats" / "readme.txt").write_text("no images")
    yield (
        "a class folder without images",
        FOLDERS,
        lambda: run("train", *train_args(root / "noimg", root / "r3", **quick)),
    )
    bad = colour_folders(root / "bad", per_class=8)
    (bad / "red" / "zero.jpg").write_bytes(b"")
    (bad / "red" / "text.jpg").write_text("not an image")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "PNG")
    (bad / "red" / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Image.new("L", (3000, 3000)).save(bad / "green" / "bomb.png")
    Image.new("RGB", (8, 8)).save(bad / "blue" / "tiny.png")
    limit = {"--max-pixels": 1_000_000}
    yield ("empty, text-as-.jpg, truncated, decompression-bomb and too-small images",
           SKIPS,
           lambda: run("train", *train_args(bad, root / "r4", **quick, **limit)))  # fmt: skip
    yield (
        "the same with --strict",
        SKIPS,
        lambda: run("train", *train_args(bad, root / "r5", **quick, **limit), "--strict"),
    )
    for size in ("224x", "0", "-5"):
        yield (
            f"--out-size {size}",
            SIZES,
            lambda s=size: run("train", *train_args(data, root / "r6", **{"--out-size": s})),
        )
    yield (
        "unknown resizer name",
        MISTAKES,
        lambda: run("train", *train_args(data, root / "r7", **{"--resizer": "learnabel"})),
    )
    yield (
        "unknown backbone name",
        MISTAKES,
        lambda: run("train", *train_args(data, root / "r8", **{"--backbone": "resnet19"})),
    )
    yield ("--resizer-args with an unknown key", MISTAKES,
           lambda: run("train", *train_args(data, root / "r9", **{"--resizer": "learnable",
                                                                  "--resizer-args": '{"depth": 2}'})))  # fmt: skip
    yield (
        "--resizer-args not JSON",
        JSON,
        lambda: run("train", *train_args(data, root / "r10", **{"--resizer-args": "{n: 8}"})),
    )
    base = root / "base"
    taskresize("train", *train_args(data, base, **quick))
    yield ("--init from a run with another backbone", INIT,
           lambda: run("train", *train_args(data, root / "r11", **quick, **{"--backbone": "timm:resnet10t"}),
                       "--init", base))  # fmt: skip
    yield (
        "eval of a folder that is not a run",
        CRAFTED,
        (lambda: run("eval", "--run", data)),
    )
    crafted = root / "crafted"
    taskresize("train", *train_args(data, crafted, **quick))
    marker = root / "payload-ran"

    def crafted_checkpoint():
        import torch

        torch.save({"state_dict": {"x": Payload(str(marker))}}, crafted / "last.ckpt")
        status, message = taskresize("eval", "--run", crafted)
        return status, message, "payload ran!" if marker.exists() else "payload did not run"

    yield ("a checkpoint crafted to run code when unpickled", CRAFTED,
           crafted_checkpoint)  # fmt: skip

    def weights_pickle():
        with open(root / "evil.pth", "wb") as f:
            pickle.dump(Payload(str(marker)), f)
        status, message = taskresize("train", *train_args(data, root / "r12", **{"--pretrained": root / "evil.pth"}))
        return status, message, "payload ran!" if marker.exists() else "payload did not run"

    yield (
        "--pretrained weights crafted to run code",
        PICKLE,
        (weights_pickle),
    )
    yield (
        "a learning rate that makes the loss infinite",
        DIVERGED,
        (lambda: run("train", *train_args(data, root / "r13", **{"--lr": 1e30, "--precise-bn": 0}))),
    )

    def kill_and_resume():
        run_dir = root / "killed"
        command = [sys.executable, "-m", "taskresize", "train", *train_args(data, run_dir, **{"--epochs": 4})]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        csv = run_dir / "epochs.csv"
        while process.poll() is None and not (csv.exists() and len(csv.read_text().splitlines()) >= 2):
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished = len(csv.read_text().strip().splitlines()) - 1
        status, message = taskresize("train", "--output", run_dir, "--resume")
        rows = len(csv.read_text().strip().splitlines()) - 1
        return status, message, f"killed after {finished} finished epoch(s); resumed to {rows} of 4 epochs"

    yield (
        "kill -9 during training, then --resume",
        KILLED,
        (kill_and_resume),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--append", action="store_true", help=f"add the table to {RESULTS}")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bad_input, test, thunk in cases(Path(tmp)):
            status, message, note = thunk()
            message = message.replace(tmp, "…").replace("|", "\\|")
            rows.append(f"| {bad_input} | {status} | {message}{' — ' + note if note else ''} | `{test}` |")
            print(rows[-1], flush=True)
    text = (
        f"### Bad input, {dt.date.today().isoformat()}\n\n`python benchmarks/robustness.py` — each input tried on the "
        "command line in a subprocess; exit status 2 means a user error reported in one line without a traceback "
        "(a traceback would show as TRACEBACK).\n\n| bad input | exit | what the user sees | test |\n"
        "|---|---:|---|---|\n" + "\n".join(rows)
    )
    print("\n" + text)
    if args.append:
        add_section(RESULTS, "Robustness", text)


if __name__ == "__main__":
    main()
