"""Running a sweep: every unfinished run trained (resuming started ones), one after another or several at once
(:mod:`taskresize.experiments.sweep.workers`), failures recorded, one progress line for the grid, then the
report. See :mod:`taskresize.experiments.sweep.plan` for the sweep file."""

from __future__ import annotations

import copy
import fnmatch
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from taskresize.experiments.sweep.claims import claim, release
from taskresize.experiments.sweep.plan import (
    FAILURES_FILE,
    PLAN_FILE,
    Sweep,
    SweepError,
    configs,
    normalise,
    run_folder_values,
)
from taskresize.experiments.sweep.report import write_report
from taskresize.experiments.sweep.workers import LocalPool, RayPool, Started, distributed, failure_text, train_one
from taskresize.fileio import atomic_write_text
from taskresize.runs import RunFolder
from taskresize.training.config import TrainConfig, read_yaml


def describe(sweep: Sweep, folder: Path) -> str:
    """The plan as text: one line per run with its status and what it is initialised from."""
    lines = [f"sweep {sweep.name} ({sweep.mirrors or 'no paper table named'}): {len(sweep.runs)} runs in {folder}"]
    for i, run in enumerate(sweep.runs, 1):
        after = f"  <- {', '.join(run.depends)}" if run.depends else ""
        lines.append(f"  {i:3d}. [{RunFolder(folder / run.name).status:8s}] {run.name}{after}")
    return "\n".join(lines)


def write_plan(sweep: Sweep, folder: Path) -> None:
    plan = {
        "name": sweep.name, "mirrors": sweep.mirrors, "source": sweep.source, "keys": sweep.keys,
        "report": sweep.report,
        "runs": [{"name": r.name, "identity": r.identity, "depends": r.depends,
                  "values": run_folder_values(r, folder)} for r in sweep.runs],
    }  # fmt: skip
    atomic_write_text(folder / PLAN_FILE, yaml.safe_dump(plan, sort_keys=False))


def run_sweep(
    sweep: Sweep,
    output: str | Path,
    log=print,
    only: list[str] | None = None,
    workers: int = 1,
    ray: str | None = None,
    ray_options: dict[str, Any] | None = None,
    report: bool = True,
) -> dict[str, str]:
    """Train every unfinished run of ``sweep`` in ``output/<sweep name>/``, then write the report (unless not
    ``report``: a caller that writes its own).

    Finished runs (``metrics.json``) are skipped, started ones resumed. A run that fails is logged (its traceback
    in ``<run>/error.txt``) and the sweep goes on; runs initialised from it are skipped. Ctrl-C stops the sweep
    after writing the report of what is finished. ``only``: shell patterns of run names to train (e.g.
    ``["*-s0"]``, to share a sweep between processes); the others are left alone.

    Args:
        workers: runs at once. 1: one after another in this process; more: each in its own process on this
            machine with its share of CPU threads and GPUs (see :mod:`taskresize.experiments.sweep.workers`); a
            run starts once the runs it is initialised from have finished.
        ray: a Ray cluster's address (or ``local``): the runs are Ray tasks there, ``workers`` (if not 1) at
            most at once.
        ray_options: :class:`~taskresize.experiments.sweep.workers.RayPool`'s ``cpus``, ``gpus``, ``copy_back``.

    Returns:
        run name -> ``finished``, ``skipped`` (already finished), ``failed: ...``, ``blocked: ...`` or
        ``not selected``.
    """
    folder = Path(output) / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    cfgs = configs(sweep, folder)  # validates every run before the first one starts
    if (workers > 1 or ray) and distributed():
        raise SweepError(f"{sweep.source}: --workers and --ray start runs themselves; do not launch the sweep with "
                         "torchrun (give each run --devices instead)")  # fmt: skip
    write_plan(sweep, folder)
    outcome: dict[str, str] = {}
    failures: dict[str, str] = {}
    progress = Progress(len(sweep.runs), log)
    try:
        todo = []
        for i, run in enumerate(sweep.runs, 1):
            if only and not any(fnmatch.fnmatchcase(run.name, pattern) for pattern in only):
                outcome[run.name] = "not selected"
                progress.total -= 1
            elif RunFolder(folder / run.name).status == "finished":
                outcome[run.name] = "skipped"
                progress.skip()
                log(f"[{i}/{len(sweep.runs)}] {run.name}: finished earlier, skipped")
            else:
                todo.append(run)
        if workers == 1 and not ray:
            _sequential(sweep, folder, todo, cfgs, outcome, failures, progress, log)
        else:
            if ray:
                pool = RayPool(folder, ray, workers=workers if workers > 1 else None, **(ray_options or {}))
            else:
                pool = LocalPool(folder, workers)
            log(f"{len(todo)} runs to train on {pool.describe()}")
            try:
                _scheduled(sweep, folder, todo, cfgs, outcome, failures, progress, log, pool)
            finally:
                pool.close()
    finally:
        _write_failures(folder, failures)
        if report:
            paths = write_report(sweep, folder)
            log(f"report: {', '.join(str(p) for p in paths)}")
    return outcome


def duration(seconds: float) -> str:
    """``12 s`` under 90 seconds, else ``4.5 min`` or ``2.3 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


class Progress:
    """One line for the whole grid (the selected runs): done (earlier or now) / running / left, and an ETA from the
    runs finished so far, shared among the workers."""

    def __init__(self, total: int, log) -> None:
        self.total, self.log = total, log
        self.done = self.failed = self.skipped = 0
        self.running: dict[str, float] = {}
        self.times: list[float] = []
        self.slots = 1

    def skip(self) -> None:
        self.skipped += 1

    def start(self, name: str) -> None:
        self.running[name] = time.perf_counter()

    def end(self, name: str, state: str) -> float:
        seconds = time.perf_counter() - self.running.pop(name, time.perf_counter())
        if state == "finished":
            self.done += 1
            self.times.append(seconds)
        else:
            self.failed += 1
        return seconds

    def block(self) -> None:
        self.failed += 1

    def line(self) -> str:
        left = self.total - self.skipped - self.done - self.failed - len(self.running)
        parts = [f"{self.done + self.skipped}/{self.total} done"]
        parts += [f"{len(self.running)} running", f"{left} left"]
        if self.failed:
            parts.append(f"{self.failed} failed or blocked")
        eta = "ETA after the first run"
        if not left and not self.running:
            eta = "nothing left"
        elif self.times:
            mean = statistics.fmean(self.times)
            now = time.perf_counter()
            remaining = sum(max(0.0, mean - (now - t)) for t in self.running.values()) + left * mean
            eta = f"ETA {duration(remaining / max(1, self.slots))}"
        return f"grid: {', '.join(parts)}; {eta}"

    def show(self) -> None:
        self.log(self.line())


def _sequential(sweep, folder, todo, cfgs, outcome, failures, progress, log) -> None:
    index = {run.name: i for i, run in enumerate(sweep.runs, 1)}
    for run in todo:
        run_dir = folder / run.name
        head = f"[{index[run.name]}/{len(sweep.runs)}] {run.name}"
        broken = [d for d in run.depends if RunFolder(folder / d).status != "finished"]
        if broken:
            outcome[run.name] = failures[run.name] = f"blocked: {', '.join(broken)} did not finish"
            progress.block()
            log(f"{head}: {outcome[run.name]}")
            continue
        if not _claimed(run, run_dir, outcome, progress, log, head):
            continue
        cfg = cfgs[run.name]
        note = _changed_config(run_dir, cfg)
        log(f"{head}: {'resuming' if RunFolder(run_dir).status == 'started' else 'starting'}{note}")
        progress.start(run.name)
        try:
            state = train_one(cfg)
        except Exception as error:  # under torchrun (train_one raises there): the others cannot go on alone
            outcome[run.name] = failures[run.name] = failure_text(error)
            log(f"{head}: failed; stopping the sweep (launched by torchrun: every process must train the same runs)")
            raise
        finally:
            release(run_dir)
        seconds = progress.end(run.name, state)
        outcome[run.name] = state
        if state == "finished":
            log(f"{head}: finished in {duration(seconds)}")
        else:
            failures[run.name] = state
            log(f"{head}: {state} (traceback in {RunFolder(run_dir).error_file}); going on")
        progress.show()


def _claimed(run, run_dir: Path, outcome, progress, log, head: str) -> bool:
    """Claim the run's folder for this sweep; False (the run left alone, and said why) when another sweep holds it
    or has finished it meanwhile."""
    busy = claim(run_dir)
    if busy is not None:
        outcome[run.name] = busy
        progress.block()
        log(f"{head}: {busy}")
        return False
    if RunFolder(run_dir).status != "finished":
        return True
    release(run_dir)  # finished by another sweep since this one looked
    outcome[run.name] = "skipped"
    progress.skip()
    log(f"{head}: finished by another sweep, skipped")
    return False


def _scheduled(sweep, folder, todo, cfgs, outcome, failures, progress, log, pool) -> None:
    """Up to ``pool.slots`` runs at once; a run starts when the runs it depends on have finished, and is blocked
    when one of them failed or will not run."""
    index = {run.name: i for i, run in enumerate(sweep.runs, 1)}
    pending = list(todo)
    running: list[Started] = []
    free = list(range(pool.slots))
    progress.slots = pool.slots
    progress.show()
    try:
        while pending or running:
            for run in list(pending):
                head = f"[{index[run.name]}/{len(sweep.runs)}] {run.name}"
                waiting = {r.name for r in pending} | {s.name for s in running}
                # a run still running is not done (its metrics.json comes a moment before its process ends)
                unfinished = [d for d in run.depends if d in waiting or RunFolder(folder / d).status != "finished"]
                if any(d not in waiting for d in unfinished):
                    broken = [d for d in unfinished if d not in waiting]
                    outcome[run.name] = failures[run.name] = f"blocked: {', '.join(broken)} did not finish"
                    pending.remove(run)
                    progress.block()
                    log(f"{head}: {outcome[run.name]}")
                    continue
                if unfinished or not free:
                    continue
                pending.remove(run)
                if not _claimed(run, folder / run.name, outcome, progress, log, head):
                    continue
                note = _changed_config(folder / run.name, cfgs[run.name])
                verb = "resuming" if RunFolder(folder / run.name).status == "started" else "starting"
                slot = free.pop(0)
                started = pool.start(run.name, cfgs[run.name], slot, run.depends)
                running.append(started)
                progress.start(run.name)
                log(f"{head}: {verb} ({started.where}){note}")
                progress.show()
            changed = False
            for started in list(running):
                state = pool.poll(started)
                if state is None:
                    continue
                running.remove(started)
                release(folder / started.name)
                free.append(started.slot)
                free.sort()
                seconds = progress.end(started.name, state)
                outcome[started.name] = state
                head = f"[{index[started.name]}/{len(sweep.runs)}] {started.name}"
                if state == "finished":
                    log(f"{head}: finished in {duration(seconds)}{f' {started.where}' if started.where else ''}")
                else:
                    failures[started.name] = state
                    error = RunFolder(folder / started.name).error_file
                    log(f"{head}: {state} (traceback in {error}); going on")
                changed = True
            if changed:
                progress.show()
            elif running:
                time.sleep(0.5)
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} running run(s) (each keeps its last finished epoch)")
        pool.interrupt(running)
        raise
    finally:
        for started in running:
            release(folder / started.name)


def _write_failures(folder: Path, failures: dict[str, str]) -> None:
    path = folder / FAILURES_FILE
    if failures:
        atomic_write_text(path, yaml.safe_dump(failures, sort_keys=False))
    elif path.exists():
        path.unlink()


def _changed_config(run_dir: Path, cfg: TrainConfig) -> str:
    """A note when a started run's saved config differs from the sweep's (the saved one is what resumes)."""
    run = RunFolder(run_dir)
    if not run.is_run:
        return ""
    saved = read_yaml(run.config_file)
    resolved = copy.copy(cfg)
    resolved.resolve_paths(Path.cwd())  # a run folder saves absolute paths; the sweep file may give relative ones
    now = resolved.to_dict()
    changed = sorted(k for k in now if k != "output" and normalise(k, saved.get(k)) != normalise(k, now[k]))
    if not changed:
        return ""
    return f" (its saved config differs from the sweep file in {', '.join(changed)}; resuming with the saved one — " \
           f"delete {run_dir} to start it anew)"  # fmt: skip
