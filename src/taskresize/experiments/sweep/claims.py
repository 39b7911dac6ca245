"""One sweep at a time per run: a sweep claims a run's folder before training it and lets go when the run ends.

Two sweeps over the same folder (two terminals, or a restarted sweep whose first process is still stopping) would
otherwise train the same run at once, each overwriting the other's checkpoints. The claim is a file in the run's
folder, created atomically, that names the sweep's process and host. A claim whose process is gone (on this host)
is stale and taken over; one held on another host is respected, and the message says how to clear it. Under
torchrun every process trains the same runs together, so no claim is made there.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from pathlib import Path

from taskresize.experiments.sweep.workers import distributed
from taskresize.runs import RunFolder

FRESH_SECONDS = 60  # an empty claim younger than this is still being written


def claim(run_dir: Path) -> str | None:
    """Claim ``run_dir`` for this process: None when claimed (or when claims do not apply), else the state to
    report, ``busy: ...``, naming who holds it."""
    if distributed():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunFolder(run_dir).lock_file
    me = (socket.gethostname(), os.getpid())
    for _ in range(2):  # the second try after clearing a stale claim
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None and _age(path) < FRESH_SECONDS:  # being written by its claimer this moment
                return f"busy: another sweep is claiming it at this moment ({path}); run this sweep again"
            if holder is not None and holder[:2] != me and not _gone(*holder[:2]):
                host, pid, since = holder
                return (
                    f"busy: another sweep is training it (process {pid} on {host}, since {since}); run this "
                    f"sweep again when that one has finished, or delete {path} if that process is gone"
                )
            path.unlink(missing_ok=True)  # stale, unreadable, or this process's own
            continue
        with os.fdopen(fd, "w") as file:
            file.write(f"{me[0]} {me[1]} {dt.datetime.now().isoformat(timespec='seconds')}\n")
        return None
    return f"busy: another sweep is claiming it at this moment ({path}); run this sweep again"


def release(run_dir: Path) -> None:
    """Let go of this process's claim on ``run_dir`` (another process's claim is left alone)."""
    path = RunFolder(run_dir).lock_file
    holder = _holder(path)
    if holder is not None and holder[:2] == (socket.gethostname(), os.getpid()):
        path.unlink(missing_ok=True)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _holder(path: Path) -> tuple[str, int, str] | None:
    try:
        host, pid, since = path.read_text().split()
        return host, int(pid), since
    except (OSError, ValueError):
        return None


def _gone(host: str, pid: int) -> bool:
    """Whether the claiming process has ended; a process on another host cannot be checked: assumed alive."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False
