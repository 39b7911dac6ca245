"""Fuzzing the command line: flag values (sizes, JSON resizer arguments, numbers, names and paths), a corpus of
damaged resizer files, a disk that fills up, and signals.

Whatever the values, a command ends with its documented exit status -- 0 done, 1 done in part (``resize`` skipped
files, and says so), 2 nothing done with one line on stderr, 130 / 143 interrupted / terminated -- never with a
traceback, never modifies an input, and leaves no partial output (nothing where it ended in 2, no half-written
file ever). Only commands that fail fast or finish at once are fuzzed: ``train`` on data that is refused when
scanned (so no training starts), ``resize`` on a tiny folder, ``sweep --dry-run``, ``info``, ``list``.
"""

import errno
import hashlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from taskresize.cli import main

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_counter = itertools.count()

size = st.one_of(
    st.integers(-3, 5000).map(str),
    st.tuples(st.integers(-2, 300), st.integers(-2, 300)).map(lambda hw: f"{hw[0]}x{hw[1]}"),
    st.text(alphabet="0123456789x -.,", max_size=7),
)
json_value = st.one_of(
    st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=6), st.sampled_from(["bilinear", "lanczos", "paper", "identity", "sigmoid"]),
    st.lists(st.integers(-2, 64), max_size=3),
)  # fmt: skip
argument_name = st.sampled_from(
    ["n", "r", "antialias", "interpolation", "init", "in_channels", "layers", "channels", "neighbors", "normalize",
     "kernel_size", "sigma", "max_stride", "checkpoint", "output_size", "nn", "depth", ""]
)  # fmt: skip
resizer_args = st.one_of(
    st.dictionaries(argument_name, json_value, max_size=3).map(json.dumps),
    st.text(max_size=12),  # mostly not JSON, or not an object
)
resizer_name = st.one_of(
    st.sampled_from(["bilinear", "lanczos", "area", "learnable", "learnable-strided", "downsizenet", "muller",
                     "lanczoss", "Bilinear", ""]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", max_size=10),
)  # fmt: skip
number = st.one_of(
    st.integers(-5, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "abc", "1e3", "0x10", "-0"]),
)  # fmt: skip


def sometimes(valid, wild=None):
    """A flag's value: often left out (None), else a valid value or, less often, anything."""
    return st.one_of(st.none(), st.none(), valid, valid, *([wild] if wild is not None else []))


def flags(**values) -> list:
    """``--flag value`` pairs of the values that are not None (``out_size`` -> ``--out-size``)."""
    return [x for key, value in values.items() if value is not None for x in (f"--{key.replace('_', '-')}", value)]


def run(capsys, argv) -> tuple[int, str, str]:
    """``taskresize ARGV`` in this process: exit status, stdout, stderr."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, out: str, err: str, argv, allow_skipped: bool = False) -> None:
    assert "Traceback" not in out + err, (argv, err)
    if code == 2:
        lines = [line for line in err.strip().splitlines() if ": warning: " not in line]
        assert len(lines) == 1 and lines[0].startswith("taskresize") and "error:" in lines[0], (argv, err)
    elif code == 1 and allow_skipped:
        assert "skipped" in out, (argv, out, err)
    else:
        assert code == 0, (argv, code, err)


@pytest.fixture(scope="module")
def one_class(tmp_path_factory):
    """Data a scan refuses (one class), so that ``train`` stops right after validating its flags."""
    root = tmp_path_factory.mktemp("one_class")
    (root / "only").mkdir()
    Image.new("RGB", (12, 12), (200, 30, 30)).save(root / "only" / "a.png")
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(9, 13), (16, 16)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(root / f"{i}.png")
    return root


@SETTINGS
@given(out_size=sometimes(st.integers(1, 64).map(str), size), in_size=sometimes(st.integers(1, 96).map(str), size),
       name=sometimes(st.sampled_from(["bilinear", "learnable", "downsizenet", "muller"]), resizer_name),
       args=sometimes(st.dictionaries(argument_name, json_value, max_size=2).map(json.dumps), resizer_args),
       epochs=sometimes(st.integers(0, 3).map(str), number), batch=sometimes(st.integers(0, 9).map(str), number),
       lr=sometimes(st.floats(0, 1).map(repr), number), val_split=sometimes(st.floats(0, 1).map(repr), number),
       max_pixels=sometimes(st.integers(0, 10**10).map(str), number),
       data=st.sampled_from(["one_class", "missing", "file"]))  # fmt: skip
def test_train_flags(capsys, tmp_path, one_class, out_size, in_size, name, args, epochs, batch, lr, val_split,
                     max_pixels, data):  # fmt: skip
    where = {"one_class": one_class, "missing": tmp_path / "missing", "file": one_class / "only" / "a.png"}[data]
    output = tmp_path / f"run{next(_counter)}"
    argv = ["train", "--data", where, "--output", output, "--workers", 0,
            *flags(out_size=out_size, in_size=in_size, resizer=name, resizer_args=args, epochs=epochs,
                   batch_size=batch, lr=lr, val_split=val_split, max_pixels=max_pixels)]  # fmt: skip
    code, out, err = run(capsys, argv)
    assert code == 2, (argv, out, err)  # the data is refused, if nothing before it is
    assert_clean(code, out, err, argv)
    assert not output.exists()  # nothing is written by a run that cannot start


@SETTINGS
@given(name=st.one_of(st.sampled_from(["bilinear", "lanczos", "area", "nearest", "bicubic"]), resizer_name),
       out_size=st.one_of(st.integers(1, 40).map(str), size), in_size=sometimes(st.just("none"), size),
       quality=sometimes(st.integers(1, 100).map(str), number), batch=sometimes(st.integers(1, 4).map(str), number),
       max_pixels=sometimes(st.integers(1, 10**9).map(str), number),
       fmt=sometimes(st.sampled_from(["png", "jpg", "webp"]), st.just("gif")), keep=st.booleans())  # fmt: skip
def test_resize_flags(capsys, tmp_path, tiny, name, out_size, in_size, quality, batch, max_pixels, fmt, keep):
    out = tmp_path / f"out{next(_counter)}"
    before = digest(tiny)
    argv = ["resize", "--resizer", name, tiny, "--output", out, "--no-progress", *(["--keep-aspect"] if keep else []),
            *flags(out_size=out_size, in_size=in_size, quality=quality, batch_size=batch, max_pixels=max_pixels,
                   format=fmt)]  # fmt: skip
    code, out_text, err = run(capsys, argv)
    assert digest(tiny) == before
    assert_clean(code, out_text, err, argv, allow_skipped=True)
    if code == 2:
        assert not out.exists() or not any(out.iterdir())
    if code == 0:
        assert len(list(out.iterdir())) == 2


@SETTINGS
@given(name=st.one_of(st.sampled_from(["bilinear", "learnable", "muller"]), resizer_name),
       args=st.dictionaries(argument_name, st.one_of(st.integers(0, 8), json_value), max_size=2),
       out_size=st.one_of(st.integers(1, 64), json_value), epochs=st.one_of(st.integers(1, 3), json_value),
       seeds=st.lists(st.one_of(st.integers(0, 3), json_value), max_size=3))  # fmt: skip
def test_sweep_dry_run_values(capsys, tmp_path, one_class, name, args, out_size, epochs, seeds):
    folder = tmp_path / f"sweep{next(_counter)}"
    folder.mkdir()
    spec = {"name": "fuzz", "base": {"data": str(one_class), "out_size": out_size, "epochs": epochs},
            "grid": {"resizer": [name], "resizer_args": [args], "seed": seeds or [0]}}  # fmt: skip
    if any(isinstance(v, float) and not math.isfinite(v) for v in (out_size, epochs)):
        spec["base"].pop("epochs")  # YAML writes .nan/.inf, which are fine inputs; keep the file simple
    (folder / "sweep.yaml").write_text(json.dumps(spec))  # JSON is YAML
    argv = ["sweep", "--config", folder / "sweep.yaml", "--dry-run", "--output", folder / "out"]
    code, out, err = run(capsys, argv)
    assert_clean(code, out, err, argv)
    assert not (folder / "out").exists()  # a dry run writes nothing


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["missing", "folder", "text", "empty", "image"]), as_json=st.booleans())
def test_info_paths(capsys, tmp_path, tiny, kind, as_json):
    path = {"missing": tmp_path / "missing", "folder": tiny, "image": tiny / "0.png"}.get(kind, tmp_path / kind)
    if kind == "text":
        path.write_text("not a resizer")
    elif kind == "empty":
        path.write_bytes(b"")
    argv = ["info", path, *(["--json"] if as_json else [])]
    code, out, err = run(capsys, argv)
    assert code == 2
    assert_clean(code, out, err, argv)


def test_list_and_help(capsys):
    for argv in (["list"], ["--version"], ["--help"], ["resize", "--help"], []):
        code, _, err = run(capsys, argv)
        assert code in (0, 2) and "Traceback" not in err


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path: its SHA-256 (inputs must come out byte for byte the same)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}  # fmt: skip


def no_partial_files(folder: Path) -> bool:
    return not any(".tmp" in p.name for p in Path(folder).rglob("*"))


@pytest.fixture(scope="module")
def resizer_bytes(tmp_path_factory) -> bytes:
    import taskresize as tr

    path = tr.save_resizer(tr.create_resizer("muller", output_size=8), tmp_path_factory.mktemp("r") / "m.safetensors")
    return path.read_bytes()


def damage(data: bytes, kind: str, where: float, value: int) -> bytes:
    """A damaged copy of a resizer file: cut short, a byte changed (header or weights), NaN weights, or empty."""
    at = int(where * (len(data) - 1))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (value or 1)]) + data[at + 1 :]
    if kind == "nan-weights":  # every weight float32 NaN, the header intact
        start = 8 + int.from_bytes(data[:8], "little")
        return data[:start] + b"\x00\x00\xc0\x7f" * ((len(data) - start) // 4)
    if kind == "garbage-header":
        return data[:8] + b"{not json" + data[17:]
    return b""


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["truncate", "flip", "nan-weights", "garbage-header", "empty"]),
       where=st.floats(0, 1), value=st.integers(0, 255), command=st.sampled_from(["resize", "info"]))  # fmt: skip
def test_damaged_resizer_files(capsys, tmp_path, tiny, resizer_bytes, kind, where, value, command):
    path = tmp_path / f"damaged{next(_counter)}.safetensors"
    path.write_bytes(damage(resizer_bytes, kind, where, value))
    before, file_before = digest(tiny), path.read_bytes()
    out = tmp_path / f"out{next(_counter)}"
    argv = (
        ["resize", "--resizer", path, tiny, "--output", out, "--no-progress"] if command == "resize" else ["info", path]
    )
    code, out_text, err = run(capsys, argv)
    assert code in (0, 2), (argv, code, err)  # a byte flipped in a weight can leave a usable file
    assert_clean(code, out_text, err, argv)
    assert digest(tiny) == before and path.read_bytes() == file_before
    if command == "resize":
        assert (code == 2) == (not out.exists()) and no_partial_files(tmp_path)
        if kind == "nan-weights":
            assert code == 2 and "NaN" in err


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(room=st.integers(0, 2), name=st.sampled_from(["bilinear", "lanczos"]))
def test_a_disk_that_fills_up(capsys, tmp_path, tiny, monkeypatch, room, name):
    import taskresize.inference.files as files
    from taskresize.fileio import atomic_write_bytes as real  # not files' name: patched by an earlier example

    written = []

    def full_after_room(path, data, sync=True):
        if len(written) >= room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(path)
        return real(path, data, sync=sync)

    monkeypatch.setattr(files, "atomic_write_bytes", full_after_room)
    out = tmp_path / f"out{next(_counter)}"
    before = digest(tiny)
    argv = ["resize", "--resizer", name, tiny, "--output", out, "--out-size", 8, "--no-progress"]
    code, _, err = run(capsys, argv)
    expected = 0 if room >= len(before) else 2
    assert code == expected, (argv, code, err)
    assert "Traceback" not in err
    if code == 2:  # after the line that says what is being done, the one that says why it stopped
        assert "no space left" in err.strip().splitlines()[-1]
        assert out.exists() == bool(written)  # an --output it created and could write nothing to is removed
    assert digest(tiny) == before and no_partial_files(tmp_path)
    assert sorted(p.name for p in out.glob("*")) == sorted(Path(p).name for p in written)  # whole files only


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(200):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_midway_ends_cleanly(tmp_path, many, signum):
    folder = many
    before = digest(folder)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "taskresize", "resize", "--resizer", "lanczos", folder, "--output", out,
            "--out-size", 32, "--workers", 0]  # fmt: skip
    process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not (out.is_dir() and any(out.glob("*.png"))):
        time.sleep(0.02)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert process.returncode in (0, expected), err  # 0: it had finished before the signal came
    assert "Traceback" not in err
    if process.returncode == expected:
        assert "interrupted" in err.strip().splitlines()[-1]
    assert digest(folder) == before and no_partial_files(out)
