"""Where a sweep's runs train: in this process (one after another), in N worker processes on this machine, or as
tasks on a Ray cluster. :func:`taskresize.experiments.sweep.run.run_sweep` schedules them; this module starts one
run and tells when it is done.

- **In this process** (``workers=1``): :func:`train_one`.
- **Local workers** (:class:`LocalPool`): each run is a fresh ``python -m taskresize.experiments.sweep.workers``
  process (spawned, never forked: torch's threads and CUDA do not survive a fork), given ``cpus // N`` threads
  (``torch.set_num_threads`` and ``OMP_NUM_THREADS``) on its own ``cpus // N`` cores (its data loader is sized
  from them) and, where there are GPUs, the ``devices`` GPUs its run trains on (where every worker can have as
  many; else a share) in ``CUDA_VISIBLE_DEVICES``; its output goes to ``<sweep>/logs/<run>.log``. The run's config
  is in ``<sweep>/logs/<run>.config.json``: a run on several devices has Lightning start the worker again for each
  further rank, and every rank reads it there.
- **Ray** (:class:`RayPool`): each run is a Ray task asking for its CPUs and GPUs (Ray sets
  ``CUDA_VISIBLE_DEVICES`` for it). Run folders reach the sweep's output folder by **shared storage** when the
  task's node sees it at the same path (a marker file the driver writes tells), else by **copy-back**: the task
  receives the folders of the run it resumes and the runs it is initialised from, and returns its run folder,
  which the driver unpacks into the sweep folder.

Every way trains the same :class:`~taskresize.training.config.TrainConfig` with the same seed, so a run's metrics
do not depend on where it ran (at the same number of threads; a different thread count may change the rounding
of a convolution's sums).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskresize.errors import UserError
from taskresize.runs import RunFolder
from taskresize.training.config import TrainConfig
from taskresize.training.run import train

LOGS = "logs"  # <sweep>/logs/<run>.log: the output of runs trained in worker processes


def distributed() -> bool:
    """Whether this process is one of several of a torchrun launch."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def failure_text(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"failed: {type(error).__name__}: {first}"


def train_one(cfg: TrainConfig, threads: int | None = None) -> str:
    """Train (or resume) one run; returns ``finished`` or ``failed: Type: first line`` (the traceback in the run's
    ``error.txt``). Ctrl-C propagates; under torchrun a failure is raised (the other processes would wait)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        train(cfg, resume=True)
    except KeyboardInterrupt:
        raise
    except Exception as error:
        run_dir = Path(cfg.output)
        run_dir.mkdir(parents=True, exist_ok=True)
        RunFolder(run_dir).error_file.write_text(traceback.format_exc())
        if distributed():
            raise
        return failure_text(error)
    return "finished"


def config_values(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as plain values that rebuild it exactly (``lr`` and ``in_size`` left unresolved, unlike
    ``to_dict``: a run records whether its learning rate was the default)."""
    return dataclasses.asdict(cfg)


def cpu_count() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` entries (empty without CUDA)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_share(gpus: list[str], slot: int, slots: int, per_run: int | None = None) -> list[str]:
    """The GPUs of worker ``slot`` of ``slots``: the ``per_run`` GPUs a run trains on (its ``devices``) where every
    slot can have that many, else an equal share of ``gpus`` when there are enough, else one GPU shared round-robin
    (two runs on one GPU)."""
    if not gpus:
        return []
    if per_run and len(gpus) >= slots * per_run:
        return gpus[slot * per_run : (slot + 1) * per_run]
    if len(gpus) >= slots:
        per = len(gpus) // slots
        return gpus[slot * per : (slot + 1) * per]
    return [gpus[slot % len(gpus)]]


@dataclass
class Started:
    """A run in progress: what :meth:`LocalPool.poll` / :meth:`RayPool.poll` needs to tell when it is done."""

    name: str
    handle: Any
    slot: int
    since: float = dataclasses.field(default_factory=time.perf_counter)
    where: str = ""


class LocalPool:
    """N runs at once on this machine, each in its own process (see the module docstring)."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.folder = folder
        self.slots = workers
        self.threads = max(1, cpu_count() // workers)
        self.gpus = visible_gpus()
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        # each slot's own cores: its data loader is sized from them, not from the whole machine's (more workers than
        # cores: they share them round-robin)
        taken = [cores[i % len(cores)] for i in range(workers * self.threads)] if cores else []
        self.cores = [taken[s * self.threads : (s + 1) * self.threads] for s in range(workers)] if cores else []

    def describe(self) -> str:
        gpus = f", GPUs {', '.join(self.gpus)} shared among them" if self.gpus else ""
        return f"{self.slots} worker processes on this machine, {self.threads} CPU thread(s) each{gpus}"

    def start(self, name: str, cfg: TrainConfig, slot: int, depends: Sequence[str] = ()) -> Started:
        """Start run ``name`` in worker slot ``slot`` (``depends``: the runs it is initialised from, finished)."""
        logs = self.folder / LOGS
        logs.mkdir(parents=True, exist_ok=True)
        outcome = logs / f"{name}.outcome"
        outcome.unlink(missing_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        share = gpu_share(self.gpus, slot, self.slots, cfg.devices)
        if share:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(share)
        # the config in a file, not on stdin: a run with devices > 1 has Lightning start this same command again
        # for each further rank, which must read the same config
        config = logs / f"{name}.config.json"
        config.write_text(json.dumps(config_values(cfg)))
        cores = ",".join(map(str, self.cores[slot % len(self.cores)])) if self.cores else ""
        command = [sys.executable, "-m", "taskresize.experiments.sweep.workers", str(self.threads), str(outcome),
                   str(config), cores]  # fmt: skip
        log = (logs / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()
        where = f"log: {logs / f'{name}.log'}" + (f"; GPU {','.join(share)}" if share else "")
        return Started(name, (process, outcome), slot, where=where)

    def poll(self, started: Started) -> str | None:
        process, outcome = started.handle
        code = process.poll()
        if code is None:
            return None
        text = outcome.read_text().strip() if outcome.is_file() else ""
        outcome.unlink(missing_ok=True)
        if text:
            return text
        return f"failed: the worker process ended with status {code} (see {self.folder / LOGS / started.name}.log)"

    def interrupt(self, running: list[Started]) -> None:
        """Ctrl-C: ask every run to stop at its next step (each saves its last finished epoch) and wait for it."""
        for started in running:
            process, _ = started.handle
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
        for started in running:
            process, _ = started.handle
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        pass


# ---- Ray -------------------------------------------------------------------------------------------------------

SHARED_MARKER = ".ray-shared-storage"


def pack(folders: list[Path], root: Path) -> bytes:
    """The folders (inside ``root``) as an uncompressed tar, paths relative to ``root``; missing ones left out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in folders:
            if folder.is_dir():
                tar.add(folder, arcname=folder.relative_to(root).as_posix())
    return buffer.getvalue()


def unpack(data: bytes, root: Path) -> None:
    """Extract :func:`pack`'s tar into ``root`` (files are replaced; nothing outside ``root`` is written)."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(root, filter="data")


def ray_task(values: dict[str, Any], threads: int, marker: str, inputs: list) -> tuple[str, bytes | None, str]:
    """A run as a Ray task: trains it where Ray placed it; returns the outcome, its packed run folder when the
    node does not share the driver's storage (else None), and where it ran (host name and Ray node)."""
    import socket

    import ray

    cfg = TrainConfig.from_dict(values)
    run_dir = Path(cfg.output)
    root = Path(marker).parent
    shared = Path(marker).is_file()
    if not shared and inputs:
        unpack(ray.get(inputs[0]), root)
    outcome = train_one(cfg, threads)
    where = f"{socket.gethostname()}, Ray node {ray.get_runtime_context().get_node_id()[:12]}"
    return outcome, None if shared else pack([run_dir], root), where


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'taskresize[ray]'") from None
    return ray


class RayPool:
    """Runs as tasks on a Ray cluster (see the module docstring).

    Args:
        folder: the sweep folder (absolute paths are sent to the tasks).
        address: the cluster (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), or ``local`` to start a Ray instance
            on this machine; ignored when this process is connected to Ray already.
        workers: runs at once; default: as many as the cluster's CPUs (or GPUs) allow at ``cpus`` / ``gpus`` each.
        cpus, gpus: each task's resources (default 1 CPU, and 1 GPU when the cluster has GPUs).
        copy_back: force copy-back (True) or shared storage (False); default: detected per task.
    """

    def __init__(
        self,
        folder: Path,
        address: str,
        workers: int | None = None,
        cpus: float | None = None,
        gpus: float | None = None,
        copy_back: bool | None = None,
    ) -> None:
        ray = import_ray()
        self.ray = ray
        self.started_ray = False
        if not ray.is_initialized():
            try:
                if address == "local":
                    ray.init(include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except ConnectionError as error:
                raise UserError(f"--ray {address}: no Ray cluster there ({error}); start one with `ray start "
                                "--head`, or give --ray local to start one on this machine") from None  # fmt: skip
            self.started_ray = True
        resources = ray.cluster_resources()
        total_cpus, total_gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        self.gpus = gpus if gpus is not None else (1.0 if total_gpus else 0.0)
        self.cpus = cpus if cpus is not None else 1.0
        fit = int(total_cpus // self.cpus) if not self.gpus else int(total_gpus // self.gpus)
        self.slots = max(1, workers or fit)
        self.threads = max(1, int(self.cpus))
        self.folder = folder.resolve()
        self.marker = self.folder / SHARED_MARKER
        self.copy_back = copy_back
        if copy_back is not True:
            self.marker.write_text(uuid.uuid4().hex)
        else:
            self.marker.unlink(missing_ok=True)
        self.remote = ray.remote(ray_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        self.total = (total_cpus, total_gpus)

    def describe(self) -> str:
        cpus, gpus = self.total
        return (
            f"Ray cluster of {cpus:g} CPUs, {gpus:g} GPUs: up to {self.slots} runs at once, each a task of "
            f"{self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"
        )

    def start(self, name: str, cfg: TrainConfig, slot: int, depends: Sequence[str] = ()) -> Started:
        cfg = dataclasses.replace(cfg)
        cfg.resolve_paths(Path.cwd())  # the task's working folder is not this one
        inputs = []
        if self.copy_back is not False:
            data = pack([self.folder / name, *(self.folder / d for d in depends)], self.folder)
            inputs = [self.ray.put(data)]  # inside a list: fetched by the task only when it needs it
        ref = self.remote.remote(config_values(cfg), self.threads, str(self.marker), inputs)
        return Started(name, ref, slot, where="Ray task")

    def poll(self, started: Started) -> str | None:
        ready, _ = self.ray.wait([started.handle], timeout=0)
        if not ready:
            return None
        try:
            outcome, packed, host = self.ray.get(started.handle)
        except Exception as error:  # the task's process died (out of memory, node lost), or Ray failed
            return failure_text(error)
        if packed is not None:
            unpack(packed, self.folder)
        started.where = f"on {host}" + (" (copied back)" if packed is not None else "")
        return outcome

    def interrupt(self, running: list[Started]) -> None:
        for started in running:
            self.ray.cancel(started.handle)

    def close(self) -> None:
        self.marker.unlink(missing_ok=True)
        if self.started_ray:
            self.ray.shutdown()


Pool = LocalPool | RayPool
Log = Callable[[str], None]


def _main(argv: list[str]) -> int:
    """``python -m taskresize.experiments.sweep.workers THREADS OUTCOME_FILE CONFIG_FILE [CORES]``: what a
    :class:`LocalPool` worker process runs: the run of ``CONFIG_FILE`` (JSON) with ``THREADS`` threads on the
    comma-separated ``CORES`` (default: all it may use). Lightning runs this command again as rank 1, 2, ... of a
    run on several devices; only the first rank writes the outcome."""
    threads, outcome_file, config_file = int(argv[0]), Path(argv[1]), Path(argv[2])
    if len(argv) > 3 and argv[3] and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in argv[3].split(",")})
    first_rank = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    cfg = TrainConfig.from_dict(json.loads(config_file.read_text()))
    try:
        outcome = train_one(cfg, threads)
    except KeyboardInterrupt:
        outcome = "interrupted"
    if first_rank:
        outcome_file.write_text(outcome + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
