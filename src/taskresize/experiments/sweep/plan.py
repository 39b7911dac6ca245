"""Sweeps: a grid of training runs from one YAML file, run one after another with resume, then reported.

A sweep file::

    name: table4_resolution                      # the sweep's folder under --output
    mirrors: "Talebi & Milanfar 2021, Table 4"   # shown in the report
    base: {task: classification, data: DIR, out_size: 32, epochs: 15}   # TrainConfig keys shared by every run
    grid: {resizer: [bilinear, learnable], in_size: [32, 40], seed: [0, 1, 2]}   # every combination
    exclude: [{resizer: bilinear, in_size: 40}]  # optional: drop grid combinations that match
    overrides: [{match: {in_size: 64}, set: {batch_size: 16}}]   # optional: extra values for matching runs
    runs: [{resizer: bilinear, in_size: 64, out_size: 64, seed: 0}]   # optional: explicit runs over base
    report: {reference: {resizer: bilinear, in_size: $out_size}}    # optional: see taskresize.experiments.sweep.report
    # or several, one Δ column each: report: {references: [{label: "bilinear (plain)", resizer: bilinear,
    #     resizer_args: {antialias: false}}, {label: "area (antialias)", resizer: area}]}

Grid values are any TrainConfig values: sizes (``64``, ``"80x64"``, ``[80, 64]``), mappings for ``resizer_args``,
booleans. ``grid`` may also be a list of such mappings: the runs of each, one after the other. Besides TrainConfig
keys, a grid or run may set ``in_scale`` (``in_size = round(out_size * in_scale)``, for the paper's "input = 1.25
x output"), ``stage`` (a label such as ``baseline``: part of the run's name and matched like any value, not a
training setting) and an explicit run may set ``name`` (its folder).

**References to other runs** (the paper's two-phase protocol, transfer between backbones): ``init`` and
``init_resizer`` may name another run of the same sweep instead of a folder:

- ``"@{stage: baseline, backbone: $backbone, seed: $seed}"``: the one run whose values match this flow mapping;
  ``$key`` stands for this run's own value of ``key`` (here: the baseline with the same backbone and seed);
- ``"@NAME"``: the run whose folder is ``NAME`` (``$key`` substitutions work here too).

A reference must match exactly one run; it becomes that run's folder, and that run is trained first.

**Matching** (``exclude``, ``overrides``, references, report references): a run matches when each given key has
the given value, compared after normalisation (``64`` equals ``"64x64"``; ``in_size`` defaults to ``out_size``).
``overrides`` apply in order to grid and explicit runs alike; a later one wins.

**Folder names** come from the keys a sweep varies (grid keys and the keys of explicit runs; ``seed`` last), e.g.
``learnable-in40-out32-resnet10t-s0``: readable, and stable as long as the sweep file keeps its keys. Empty
values (``{}``, ``null``, ``false``) and the loader's ``pre_resize`` / ``pre_resize_antialias`` at their defaults
are left out (``bilinear-in32-out32-no_pre_resize_antialias-s0`` beside ``bilinear-in32-out32-s0``).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskresize.errors import did_you_mean
from taskresize.sizes import format_size, to_size
from taskresize.training.config import ConfigError, TrainConfig, read_yaml

# compare: what `taskresize compare` wrote for its own report (controls, matched sizes); the sweep ignores it
SPEC_KEYS = ("name", "mirrors", "description", "base", "grid", "exclude", "overrides", "runs", "report", "compare")
PSEUDO_KEYS = ("in_scale", "name", "stage")  # allowed besides TrainConfig keys (name: explicit runs only)
SIZE_KEYS = ("in_size", "out_size")
REFERENCE_KEYS = ("init", "init_resizer")
PLAN_FILE, FAILURES_FILE = "plan.yaml", "failures.yaml"
_SUBSTITUTION = re.compile(r"\$(\w+)")
# loader settings named in a run's folder only where they differ from TrainConfig's defaults, so that adding a
# pre-resize variant (e.g. pre_resize_antialias: false) to a sweep leaves the other runs' names unchanged
QUIET_DEFAULTS = {"pre_resize": TrainConfig.pre_resize, "pre_resize_antialias": TrainConfig.pre_resize_antialias}


class SweepError(ConfigError):
    """A sweep file that cannot work; the message names the key, the value and what is accepted."""


@dataclass
class SweepRun:
    """One planned run of a sweep.

    Attributes:
        name: its folder name inside the sweep folder.
        values: its TrainConfig values (base, grid or explicit run, overrides; references resolved to folders).
        identity: the values of the sweep's varying keys (what tells it from the other runs; used for names and
            report rows).
        depends: names of the runs it is initialised from.
    """

    name: str
    values: dict[str, Any]
    identity: dict[str, Any]
    depends: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    """A parsed, expanded sweep file."""

    name: str
    mirrors: str
    description: str
    runs: list[SweepRun]  # in execution order: every run after the runs it depends on
    keys: list[str]  # the varying keys, in naming order
    report: dict[str, Any]
    source: str

    @property
    def task(self) -> str:
        return self.runs[0].values.get("task", TrainConfig.task) if self.runs else TrainConfig.task


def _fail(source: str, message: str) -> SweepError:
    return SweepError(f"{source}: {message}")


def normalise(key: str, value: Any) -> Any:
    """A value in a form where equal settings compare equal (sizes as ``(h, w)``, mappings and lists as tuples)."""
    if key in SIZE_KEYS and value is not None:
        try:
            return to_size(value, what=key)
        except ValueError:
            return value
    if isinstance(value, dict):
        return tuple(sorted((k, normalise(k, v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(normalise("", v) for v in value)
    return value


def effective(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Resolved TrainConfig values (defaults filled in, ``in_size`` defaulting to ``out_size``)."""
    plain = {k: v for k, v in values.items() if k not in PSEUDO_KEYS}
    try:
        return TrainConfig.from_dict(plain, source=source).to_dict() | {"stage": values.get("stage")}
    except SweepError:
        raise
    except ConfigError as error:
        text = str(error)
        raise SweepError(text if text.startswith(source) else f"{source}: {text}") from None


def matches(criteria: dict[str, Any], resolved: dict[str, Any]) -> bool:
    return all(normalise(k, v) == normalise(k, resolved.get(k)) for k, v in criteria.items())


def substitute(text: str, values: dict[str, Any], source: str) -> str:
    """Replace ``$key`` in ``text`` with ``values[key]`` (YAML flow style)."""

    def value(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise _fail(source, f"${key} in {text!r}: this run has no value {key!r}")
        return yaml.safe_dump(values[key], default_flow_style=True, width=10_000).strip().removesuffix("\n...")

    return _SUBSTITUTION.sub(value, text)


def _check_keys(mapping: Any, source: str, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise _fail(source, f"{what} must be a mapping of config keys, got {mapping!r}")
    unknown = sorted(set(mapping) - allowed, key=str)
    if unknown:
        hints = "".join(did_you_mean(key, allowed) for key in unknown)
        raise _fail(source, f"{what}: unknown key(s) {', '.join(map(str, unknown))}.{hints} Known: "
                    f"{', '.join(sorted(allowed))}")  # fmt: skip
    return dict(mapping)


def _list_of_mappings(value: Any, source: str, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _fail(source, f"{what} must be a list of mappings, got {value!r}")
    return value


def _apply_scale(values: dict[str, Any], source: str) -> dict[str, Any]:
    if "in_scale" not in values:
        return values
    scale = values.pop("in_scale")
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale <= 0:
        raise _fail(source, f"in_scale = {scale!r}: must be a positive number (in_size = out_size x in_scale)")
    out = to_size(values.get("out_size", TrainConfig().out_size), what="out_size")
    values["in_size"] = [round(out[0] * scale), round(out[1] * scale)]
    return values


def format_value(key: str, value: Any) -> str:
    """A value as a piece of a folder name."""
    if key in SIZE_KEYS:
        text = format_size(to_size(value)) if value is not None else "same"
        return ("in" if key == "in_size" else "out") + text
    if key == "in_scale":
        return f"x{value:g}"
    if key == "seed":
        return f"s{value}"
    if key in ("resizer", "distortion", "stage"):
        return str(value)
    if key == "backbone":
        return str(value).split(":", 1)[-1]
    if key in REFERENCE_KEYS:
        return ("from" if key == "init" else "resizer_from") + "_" + reference_label(str(value))
    if isinstance(value, bool):
        return key if value else f"no_{key}"
    if isinstance(value, dict):
        return "".join(f"{k}{v}" for k, v in sorted(value.items())) or f"{key}_default"
    if isinstance(value, list | tuple):
        return f"{key}" + "_".join(str(v) for v in value)
    return f"{key}{value}"


def reference_label(text: str) -> str:
    """A short label for an ``init`` value: a folder's name, or the fixed values of an ``@`` reference
    (``"@{backbone: timm:resnet18, seed: $seed}"`` -> ``"resnet18"``)."""
    if not text.startswith("@"):
        return Path(text).name
    body = text[1:].strip()
    if body.startswith("{"):
        try:
            criteria = yaml.safe_load(body)
        except yaml.YAMLError:
            criteria = None
        if isinstance(criteria, dict):
            fixed = [format_value(k, v) for k, v in criteria.items() if not (isinstance(v, str) and v.startswith("$"))]
            return "-".join(fixed) or "ref"
    return _SUBSTITUTION.sub("", body).strip("-_") or "ref"


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "run"


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep file: every run's values validated, references resolved, execution ordered.

    Raises:
        SweepError: the file or one of its runs is invalid; the message names the key and the value.
    """
    source = str(path)
    spec = read_yaml(path)
    return expand(spec, source)


def expand(spec: dict[str, Any], source: str = "sweep") -> Sweep:
    """Expand a sweep mapping (see the module docstring) into its runs."""
    spec = _check_keys(spec, source, set(SPEC_KEYS), "the sweep file")
    if not isinstance(spec.get("name"), str) or not spec["name"] or _sanitise(spec["name"]) != spec["name"]:
        raise _fail(source, f"name = {spec.get('name')!r}: give the sweep a name of letters, digits, '-', '_', '.'")
    config_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"output"}
    settable = config_keys | {"stage"}
    allowed = settable | {"in_scale"}
    base = _check_keys(spec.get("base") or {}, source, settable, "base")
    raw_grids = spec.get("grid") or {}
    grids = [
        _check_keys(g, source, allowed, "grid") for g in (raw_grids if isinstance(raw_grids, list) else [raw_grids])
    ]
    for grid in grids:
        for key, options in grid.items():
            if not isinstance(options, list) or not options:
                raise _fail(source, f"grid.{key} = {options!r}: must be a non-empty list of values")
    excludes = [
        _check_keys(e, source, allowed, "exclude entry")
        for e in _list_of_mappings(spec.get("exclude"), source, "exclude")
    ]
    overrides = []
    for entry in _list_of_mappings(spec.get("overrides"), source, "overrides"):
        entry = _check_keys(entry, source, {"match", "set"}, "overrides entry")
        overrides.append((_check_keys(entry.get("match") or {}, source, allowed, "overrides.match"),
                          _check_keys(entry.get("set") or {}, source, settable, "overrides.set")))  # fmt: skip
    explicit = [
        _check_keys(r, source, allowed | {"name"}, "runs entry")
        for r in _list_of_mappings(spec.get("runs"), source, "runs")
    ]
    report = spec.get("report") or {}
    if not isinstance(report, dict):
        raise _fail(source, f"report must be a mapping, got {report!r}")
    listed = report.get("references")
    if listed is not None and not (isinstance(listed, list) and listed and all(isinstance(r, dict) for r in listed)):
        raise _fail(source, f"report.references = {listed!r}: must be a non-empty list of mappings, e.g. "
                    "[{label: bilinear (plain), resizer: bilinear, resizer_args: {antialias: false}}]")  # fmt: skip

    # the varying keys: grid keys, then keys of explicit runs, seed last
    keys: list[str] = []
    for grid in grids:
        keys += [k for k in grid if k not in keys]
    for run in explicit:
        keys += [k for k in run if k not in keys and k != "name"]
    keys = [k for k in keys if k != "seed"] + (["seed"] if "seed" in keys else [])
    if "in_scale" in keys and "in_size" not in keys:
        keys.insert(keys.index("in_scale"), "in_size")
    keys = [k for k in keys if k != "in_scale"]
    if "in_size" in keys and "out_size" in keys:
        keys.remove("in_size")
        keys.insert(keys.index("out_size"), "in_size")

    combos = [
        dict(zip(grid, values, strict=True)) for grid in grids if grid for values in itertools.product(*grid.values())
    ]
    planned: list[tuple[str | None, dict[str, Any]]] = []
    for combo in combos:
        values = _apply_scale({**base, **combo}, source)
        resolved = effective(values, source)
        if any(matches({k: v for k, v in e.items() if k != "in_scale"}, resolved) and _scale_matches(e, combo)
               for e in excludes):  # fmt: skip
            continue
        planned.append((None, values))
    for run in explicit:
        run = dict(run)
        name = run.pop("name", None)
        if name is not None and (not isinstance(name, str) or _sanitise(name) != name):
            raise _fail(source, f"runs: name {name!r} must be letters, digits, '-', '_', '.'")
        planned.append((name, _apply_scale({**base, **run}, source)))
    if not planned:
        raise _fail(source, "the sweep has no runs: give a grid or runs (or exclude less)")

    runs: list[SweepRun] = []
    for name, values in planned:
        resolved = effective(values, source)
        for match, settings in overrides:
            if matches({k: v for k, v in match.items() if k != "in_scale"}, resolved):
                values = {**values, **settings}
                resolved = effective(values, source)
        identity = {k: resolved.get(k, values.get(k)) for k in keys}
        identity = {k: values[k] if k in REFERENCE_KEYS and k in values else v for k, v in identity.items()}
        shown = {k: v for k, v in identity.items() if (v != QUIET_DEFAULTS[k] if k in QUIET_DEFAULTS else
                 v is not None and v is not False and v != {} and v != [])}  # fmt: skip
        label = name or "-".join(_sanitise(format_value(k, v)) for k, v in shown.items()) or "run"
        runs.append(SweepRun(label, values, identity))

    names: dict[str, SweepRun] = {}
    for run in runs:
        if run.name in names:
            raise _fail(
                source, f"two runs would share the folder {run.name!r} ({names[run.name].values} and {run.values}): "
                "vary a key in the grid, or give the explicit run a name"
            )  # fmt: skip
        names[run.name] = run
    tasks = sorted({str(run.values.get("task", TrainConfig.task)) for run in runs})
    if len(tasks) > 1:  # the report is one table of one task's metrics
        raise _fail(source, f"the runs mix the tasks {', '.join(tasks)}: a sweep holds one task; make a file per task")
    _resolve_references(runs, source)
    return Sweep(
        name=spec["name"], mirrors=str(spec.get("mirrors") or ""), description=str(spec.get("description") or ""),
        runs=_order(runs, source), keys=keys, report=report, source=source,
    )  # fmt: skip


def _scale_matches(entry: dict[str, Any], combo: dict[str, Any]) -> bool:
    return "in_scale" not in entry or combo.get("in_scale") == entry["in_scale"]


def _resolve_references(runs: list[SweepRun], source: str) -> None:
    """Replace ``@...`` references in ``init`` / ``init_resizer`` with the folder name of the run they name."""
    resolved = {run.name: effective(run.values, f"{source}: {run.name}") for run in runs}
    by_name = {run.name: run for run in runs}
    for run in runs:
        for key in REFERENCE_KEYS:
            value = run.values.get(key)
            if not isinstance(value, str) or not value.startswith("@"):
                continue
            where = f"{run.name}: {key} = {value!r}"
            text = substitute(value[1:], {**resolved[run.name], "name": run.name}, f"{source}: {where}")
            if text.startswith("{"):
                try:
                    criteria = yaml.safe_load(text)
                except yaml.YAMLError as error:
                    raise _fail(source, f"{where}: not a YAML mapping after '@' ({error})") from None
                if not isinstance(criteria, dict):
                    raise _fail(source, f"{where}: '@' must be followed by a mapping, e.g. @{{resizer: bilinear}}")
                found = [n for n, r in resolved.items() if n != run.name and matches(criteria, r)]
            else:
                found = [text] if text in by_name and text != run.name else []
            if len(found) != 1:
                which = f"matches {len(found)} runs ({', '.join(found[:4])})" if found else "matches no other run"
                raise _fail(source, f"{where} {which}; a reference must name exactly one run of the sweep")
            run.values[key] = f"@{found[0]}"  # turned into a folder when the sweep folder is known
            run.depends.append(found[0])


def _order(runs: list[SweepRun], source: str) -> list[SweepRun]:
    """Runs in file order, except that every run comes after the runs it depends on."""
    done: set[str] = set()
    ordered: list[SweepRun] = []
    pending = list(runs)
    while pending:
        ready = next((r for r in pending if all(d in done for d in r.depends)), None)
        if ready is None:
            raise _fail(source, "references form a cycle: " + ", ".join(f"{r.name} <- {r.depends}" for r in pending))
        pending.remove(ready)
        ordered.append(ready)
        done.add(ready.name)
    return ordered


def run_folder_values(run: SweepRun, folder: Path) -> dict[str, Any]:
    """``run.values`` without sweep-only keys (``stage``), references turned into run folders inside ``folder``."""
    values = {k: v for k, v in run.values.items() if k not in PSEUDO_KEYS}
    for key in REFERENCE_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value.startswith("@"):
            values[key] = str(folder / value[1:])
    return values


def configs(sweep: Sweep, folder: Path) -> dict[str, TrainConfig]:
    """Each run's TrainConfig, with its output folder inside ``folder``."""
    return {
        run.name: TrainConfig.from_dict(
            {**run_folder_values(run, folder), "output": str(folder / run.name)}, source=f"{sweep.source}: {run.name}"
        )
        for run in sweep.runs
    }
