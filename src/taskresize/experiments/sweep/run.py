"""Running a sweep: every unfinished run trained in order (resuming started ones), failures recorded, then the
report. See :mod:`taskresize.experiments.sweep.plan` for the sweep file."""

from __future__ import annotations

import copy
import fnmatch
import os
import time
import traceback
from pathlib import Path

import yaml

from taskresize.experiments.sweep.plan import FAILURES_FILE, PLAN_FILE, Sweep, configs, normalise, run_folder_values
from taskresize.experiments.sweep.report import write_report
from taskresize.fileio import atomic_write_text
from taskresize.runs import RunFolder
from taskresize.training.config import TrainConfig, read_yaml
from taskresize.training.run import train


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


def run_sweep(sweep: Sweep, output: str | Path, log=print, only: list[str] | None = None) -> dict[str, str]:
    """Train every unfinished run of ``sweep`` in ``output/<sweep name>/``, one after another, then write the report.

    Finished runs (``metrics.json``) are skipped, started ones resumed. A run that fails is logged (its traceback
    in ``<run>/error.txt``) and the sweep goes on; runs initialised from it are skipped. Ctrl-C stops the sweep
    after writing the report of what is finished. ``only``: shell patterns of run names to train (e.g.
    ``["*-s0"]``, to share a sweep between processes); the others are left alone.

    Returns:
        run name -> ``finished``, ``skipped`` (already finished), ``failed: ...``, ``blocked: ...`` or
        ``not selected``.
    """
    folder = Path(output) / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    cfgs = configs(sweep, folder)  # validates every run before the first one starts
    write_plan(sweep, folder)
    outcome: dict[str, str] = {}
    failures: dict[str, str] = {}
    try:
        for i, run in enumerate(sweep.runs, 1):
            run_dir = folder / run.name
            head = f"[{i}/{len(sweep.runs)}] {run.name}"
            if only and not any(fnmatch.fnmatchcase(run.name, pattern) for pattern in only):
                outcome[run.name] = "not selected"
                continue
            if RunFolder(run_dir).status == "finished":
                outcome[run.name] = "skipped"
                log(f"{head}: finished earlier, skipped")
                continue
            broken = [d for d in run.depends if RunFolder(folder / d).status != "finished"]
            if broken:
                outcome[run.name] = f"blocked: {', '.join(broken)} did not finish"
                failures[run.name] = outcome[run.name]
                log(f"{head}: {outcome[run.name]}")
                continue
            cfg = cfgs[run.name]
            note = _changed_config(run_dir, cfg)
            log(f"{head}: {'resuming' if RunFolder(run_dir).status == 'started' else 'starting'}{note}")
            started = time.perf_counter()
            try:
                train(cfg, resume=True)
            except KeyboardInterrupt:
                raise
            except Exception as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                outcome[run.name] = f"failed: {type(error).__name__}: {first}"
                failures[run.name] = outcome[run.name]
                run_dir.mkdir(parents=True, exist_ok=True)
                RunFolder(run_dir).error_file.write_text(traceback.format_exc())
                if distributed():  # the other processes cannot go on alone: they would wait for this one
                    log(f"{head}: {outcome[run.name]}; stopping the sweep (launched by torchrun: every process "
                        "must train the same runs)")  # fmt: skip
                    raise
                log(f"{head}: {outcome[run.name]} (traceback in {RunFolder(run_dir).error_file}); going on")
                continue
            outcome[run.name] = "finished"
            log(f"{head}: finished in {(time.perf_counter() - started) / 60:.1f} min")
    finally:
        _write_failures(folder, failures)
        paths = write_report(sweep, folder)
        log(f"report: {', '.join(str(p) for p in paths)}")
    return outcome


def distributed() -> bool:
    """Whether this process is one of several of a torchrun launch."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


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
