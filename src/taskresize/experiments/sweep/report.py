"""The report of a sweep: ``report.md``, ``report.csv`` (one row per condition), ``runs.csv`` (one per run) and
a plot of the task's first metric against total FLOPs per image, one line per resizer (like Talebi Table 4).

A *condition* is a run's identity without its seed; its runs over seeds give mean ± sample standard deviation
(n shown). Each condition is compared with its *reference* condition (the sweep file's ``report.reference``,
default ``{resizer: bilinear, in_size: $out_size}``: bilinear at the same output size, otherwise the same):
the difference is called a tie when it is within two standard errors
(``|Δ| <= 2 * sqrt(s1²/n1 + s2²/n2)``), and cannot be judged with fewer than two seeds on either side.
``report.references`` (a list of such mappings, each optionally with a ``label``) compares every condition with
several references, one Δ column each (e.g. plain bilinear, antialiased bilinear and antialiased area); the
verdicts are also in ``report.csv`` (``delta_vs_<label>``, ``verdict_vs_<label>``), so that a summary can be read
off the report. A reference that the sweep does not have, or that has no finished run, is "not measured".

Every table names what each row ran, as resolved from the run's saved ``config.yaml`` (the plan's values for a
condition with no finished run), not as a sweep file's comment says: the resizer with its classic method and
antialias setting (``bilinear (antialias)``, ``bilinear (plain)``), the base resize of a learned resizer that has
one (``learnable``, ``muller``: ``bilinear (plain)`` by default; ``—`` for DownsizeNet, which weights input
pixels itself) and the data loader's pre-resize (``pre_resize``, ``pre_resize_antialias``).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskresize.experiments.sweep.plan import (
    FAILURES_FILE,
    Sweep,
    SweepError,
    effective,
    format_value,
    matches,
    normalise,
    reference_label,
    substitute,
)
from taskresize.fileio import atomic_write_text
from taskresize.flops import count_flops
from taskresize.resizers import create_resizer
from taskresize.runs import RunFolder
from taskresize.sizes import format_size, to_size
from taskresize.training.registry import PER_CLASS, TaskSpec, get_task

DEFAULT_REFERENCE = {"resizer": "bilinear", "in_size": "$out_size"}
SHOWN_KEYS = ("batch_size",)  # values that may differ inside a table although they are not varied by the grid
TIE_SE = 2.0  # a difference within this many standard errors is a tie


@dataclass
class Condition:
    """Runs that differ only in their seed."""

    identity: dict[str, Any]  # the sweep's varying keys without seed
    resolved: dict[str, Any]  # the TrainConfig values of its first run
    runs: list[str] = field(default_factory=list)  # names of finished runs
    metrics: list[dict[str, Any]] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    planned: int = 0

    @property
    def n(self) -> int:
        return len(self.metrics)

    def values(self, key: str) -> list[float]:
        return [float(m[key]) for m in self.metrics if m.get(key) is not None]

    def mean(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.stdev(values) if len(values) > 1 else None


def _antialias_label(method: str, antialias: Any) -> str:
    if method == "nearest":  # never filters, whatever antialias says
        return "nearest"
    return f"{method} ({'antialias' if antialias else 'plain'})"


def _resizer_settings(config: dict[str, Any]) -> dict[str, Any] | None:
    """The resizer's keyword arguments as the task resolves them (``create_resizer(...).config()``), or None when
    it cannot be built."""
    key = {k: config.get(k) for k in ("resizer", "out_size", "resizer_args")}
    settings = _built_settings(json.dumps(key, sort_keys=True, default=str))
    return dict(settings) if settings is not None else None  # the cached one stays as built


@functools.lru_cache(maxsize=256)
def _built_settings(key: str) -> dict[str, Any] | None:
    """:func:`_resizer_settings` of one resizer, built once per report (many runs share a resizer)."""

    config = json.loads(key)
    try:
        out = to_size(config.get("out_size") or 224, what="out_size")
        module = create_resizer(str(config.get("resizer")), output_size=out, **dict(config.get("resizer_args") or {}))
    except (TypeError, ValueError):  # an unknown name or argument: the run failed, or the registry changed since
        return None
    return {"method": getattr(module, "method", None), **module.config()}


def methods(config: dict[str, Any]) -> dict[str, str]:
    """What a run's resizing resolved to, from its config (``config.yaml`` or planned values).

    Returns:
        ``resizer``: the resizer, a classic one with its method and antialias setting (``"bilinear (plain)"``,
        ``"area (antialias)"``), a learned one by name; ``base resize``: a learned resizer's own classic resize
        (``"bilinear (plain)"``), ``"—"`` when it has none (classic resizers, DownsizeNet); ``pre-resize``: the data
        loader's classic resize to the resizer's input.
    """
    name = str(config.get("resizer"))
    settings = _resizer_settings(config)
    if settings is None:
        resizer, base = f"{name} (not buildable)", "—"
    elif settings.get("method"):
        resizer, base = _antialias_label(str(settings["method"]), settings.get("antialias", True)), "—"
    else:
        resizer = name
        interpolation = settings.get("interpolation")
        base = _antialias_label(str(interpolation), settings.get("antialias")) if interpolation else "—"
    pre = _antialias_label(str(config.get("pre_resize", "bilinear")), config.get("pre_resize_antialias", True))
    return {"resizer": resizer, "base resize": base, "pre-resize": pre}


METHOD_COLUMNS = ("resizer", "base resize", "pre-resize")


def condition_methods(condition: Condition) -> dict[str, str]:
    """:func:`methods` of a condition's finished runs (their ``config.yaml``; differing runs are joined with
    " / "), or of its planned values when none has finished."""
    found = [methods(c) for c in condition.configs if c] or [methods(condition.resolved)]
    return {k: " / ".join(dict.fromkeys(m[k] for m in found)) for k in METHOD_COLUMNS}


def format_metric(percent: bool, mean: float | None, std: float | None, n: int) -> str:
    """``mean ± std (n=N)``, fractions in percent."""
    if mean is None:
        return "—"
    if percent:
        text = f"{mean:.1%}" + (f" ± {std * 100:.1f}" if std is not None else "")
    else:
        text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
    return f"{text} (n={n})"


def collect(sweep: Sweep, folder: Path) -> list[Condition]:
    """Group the sweep's finished runs by condition, in the order of the plan."""
    conditions: dict[tuple, Condition] = {}
    for run in sweep.runs:
        identity = {k: v for k, v in run.identity.items() if k != "seed"}
        key = tuple((k, normalise(k, v)) for k, v in identity.items())
        if key not in conditions:
            conditions[key] = Condition(identity, effective(run.values, f"{sweep.source}: {run.name}"))
        condition = conditions[key]
        condition.planned += 1
        run_dir = RunFolder(folder / run.name)
        metrics = run_dir.metrics()
        if metrics is not None:
            condition.runs.append(run.name)
            condition.metrics.append(metrics)
            config = run_dir.config()
            condition.configs.append(config)
            _recount_flops(metrics, config or condition.resolved)
    return list(conditions.values())


_FLOPS_CACHE: dict[str, int | None] = {}


def resizer_flops(config: dict[str, Any]) -> int | None:
    """The resizer's FLOPs per image counted now by :func:`taskresize.count_flops` (the one convention of
    ``taskresize.flops``) from a run's config, input ``in_size`` to ``out_size``; None when it cannot be built."""

    key = _flow({k: config.get(k) for k in ("resizer", "resizer_args", "in_size", "out_size")})
    if key not in _FLOPS_CACHE:
        try:
            out = to_size(config.get("out_size") or 224, what="out_size")
            src = to_size(config["in_size"], what="in_size") if config.get("in_size") is not None else out
            module = create_resizer(str(config["resizer"]), output_size=out, **dict(config.get("resizer_args") or {}))
            _FLOPS_CACHE[key] = count_flops(module, (1, 3, *src), size=out)
        except Exception:  # a resizer that no longer builds: keep what the run measured
            _FLOPS_CACHE[key] = None
    return _FLOPS_CACHE[key]


def _recount_flops(metrics: dict[str, Any], config: dict[str, Any]) -> None:
    """Replace a run's resizer FLOPs (and the total) with today's count, so that runs measured under an older FLOP
    convention compare; what the run wrote stays as ``flops_resizer_measured``."""
    now = resizer_flops(config)
    if now is None or metrics.get("flops_backbone") is None:
        return
    metrics["flops_resizer_measured"] = metrics.get("flops_resizer")
    metrics["flops_resizer"] = now
    metrics["flops_total"] = metrics["flops_backbone"] + now


def reference_of(condition: Condition, conditions: list[Condition], spec: dict[str, Any]) -> Condition | None:
    """The condition ``condition`` is compared with: its own values with ``spec``'s (``$key``: its own value of
    ``key``; keys the sweep does not vary are ignored); None if the sweep has no such condition. May be
    ``condition`` itself (it is then a reference)."""
    if not spec:
        return None
    own = condition.resolved
    try:
        text = substitute(yaml.safe_dump(spec, default_flow_style=True, width=10_000), _flat(own), "report")
        wanted = yaml.safe_load(text)
    except (SweepError, yaml.YAMLError):
        return None
    if not isinstance(wanted, dict):
        return None
    target = {**condition.identity, **{k: v for k, v in wanted.items() if k in condition.identity}}
    return next((other for other in conditions if matches(target, other.identity)), None)


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


@dataclass
class Verdict:
    """``a`` against ``b`` on one metric: the difference of means, the tie bound (``TIE_SE`` standard errors of the
    difference) and the word: ``better``, ``worse``, ``tie``, ``no verdict`` (fewer than 2 seeds on a side),
    ``reference`` (``a`` is ``b``) or ``not measured`` (no such reference, or no finished run on a side)."""

    word: str
    diff: float | None = None
    bound: float | None = None


def verdict(a: Condition, b: Condition | None, metric: str, mode: str) -> Verdict:
    """``a`` against ``b`` (see :class:`Verdict`)."""
    if b is a:
        return Verdict("reference")
    ma, mb = a.mean(metric), (b.mean(metric) if b is not None else None)
    if b is None or ma is None or mb is None:
        return Verdict("not measured")
    diff = ma - mb
    sa, sb = a.std(metric), b.std(metric)
    if sa is None or sb is None:
        return Verdict("no verdict", diff)
    bound = TIE_SE * math.sqrt(sa**2 / a.n + sb**2 / b.n)
    if abs(diff) <= bound:
        return Verdict("tie", diff, bound)
    better = diff < 0 if mode == "min" else diff > 0
    return Verdict("better" if better else "worse", diff, bound)


def compare(a: Condition, b: Condition | None, metric: str, spec: TaskSpec) -> str:
    """``a`` against ``b`` as a table cell: the difference of means, and better / worse / tie (within ``TIE_SE``
    standard errors)."""
    v = verdict(a, b, metric, spec.mode)
    if v.diff is None:
        return v.word
    percent = spec.is_percent(metric)
    text = f"{v.diff * 100:+.1f}" if percent else f"{v.diff:+.3f}"
    if v.bound is None:
        return f"{text} (n<2: no verdict)"
    bound = f"{v.bound * 100:.1f}" if percent else f"{v.bound:.3f}"
    return f"{text} ({v.word}, ±{bound})"


def references(sweep: Sweep) -> list[tuple[str, dict[str, Any]]]:
    """The report's references as ``(label, criteria)``: ``report.references`` (each a mapping, its optional
    ``label`` taken out; default label: the criteria in flow style), else the one ``report.reference``. (Their
    form was checked when the sweep file was read.)"""
    listed = sweep.report.get("references")
    if listed is None:
        return [("reference", sweep.report.get("reference", DEFAULT_REFERENCE))]
    out = []
    for entry in listed:
        entry = dict(entry)
        name = str(entry.pop("label", "") or _flow(entry))
        out.append((name, entry))
    return out


def label(key: str, value: Any) -> str:
    """A table cell for a condition value."""
    if key in ("init", "init_resizer"):
        return reference_label(str(value)) if value is not None else "—"
    if key in ("in_size", "out_size"):
        return format_size(to_size(value)) if value is not None else "—"
    if key == "backbone":
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "default"
    if value is None:
        return "—"
    return str(value) if not isinstance(value, bool) else ("yes" if value else "no")


def _columns(sweep: Sweep) -> list[str]:
    """Condition keys in table order: backbone, resizer, sizes, then the others as the sweep lists them."""
    keys = [k for k in sweep.keys if k != "seed"]
    first = [k for k in ("backbone", "resizer") if k in keys]
    return first + [k for k in keys if k not in first and k not in ("in_size", "out_size")]


def _sort_key(condition: Condition, columns: list[str]) -> tuple:
    def part(value: Any) -> Any:
        n = normalise("", value)
        return (0, n) if isinstance(n, int | float) else (1, str(n))

    sizes = (
        normalise("in_size", condition.identity.get("in_size")),
        normalise("out_size", condition.identity.get("out_size")),
    )
    return (part(condition.identity.get("backbone")), part(str(condition.identity.get("out_size"))),
            *(part(condition.identity.get(k)) for k in columns if k != "backbone"), str(sizes))  # fmt: skip


def size_cell(condition: Condition) -> str:
    src, dst = condition.resolved.get("in_size"), condition.resolved.get("out_size")
    return f"{format_size(to_size(src))} → {format_size(to_size(dst))}"


def reported_metrics(sweep: Sweep, conditions: list[Condition]) -> list[str]:
    """The task's metrics, then the per-class ones the runs wrote (e.g. segmentation's ``class/ring_iou``)."""
    per_class = dict.fromkeys(k for c in conditions for m in c.metrics for k in m if k.startswith(PER_CLASS))
    return [*get_task(sweep.task).metrics, *per_class]


def table(sweep: Sweep, conditions: list[Condition]) -> str:
    """A Markdown table laid out like the paper's: one row per condition, what it ran (resizer, base resize and
    pre-resize as resolved), its metrics and one Δ column per reference."""
    spec = get_task(sweep.task)
    metrics = reported_metrics(sweep, conditions)
    first = metrics[0]
    columns = _columns(sweep)
    refs = references(sweep)
    shown = [k for k in SHOWN_KEYS if k not in columns and len({str(c.resolved.get(k)) for c in conditions}) > 1]
    extra = [k for k in METHOD_COLUMNS if k != "resizer"]
    names = [c if c != "resizer" else "resizer (as run)" for c in columns]
    if "resizer" not in columns:
        names.insert(1 if "backbone" in columns else 0, "resizer (as run)")
    deltas = [f"Δ {first} vs {name}" for name, _ in refs]
    head = [*names, *extra, "input → output", *shown, *metrics, *deltas, "MFLOPs/image (resizer)", "train images/s"]
    left = len(names) + len(extra) + 1 + len(shown)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * left + "---:|" * (len(head) - left)]
    for condition in sorted(conditions, key=lambda c: _sort_key(c, columns)):
        ran = condition_methods(condition)
        cells = [ran["resizer"] if k == "resizer" else label(k, condition.identity.get(k)) for k in columns]
        if "resizer" not in columns:
            cells.insert(1 if "backbone" in columns else 0, ran["resizer"])
        cells += [ran[k] for k in extra]
        cells.append(size_cell(condition))
        cells += [label(k, condition.resolved.get(k)) for k in shown]
        cells += [format_metric(spec.is_percent(m), condition.mean(m), condition.std(m), condition.n) for m in metrics]
        for _, criteria in refs:
            cells.append(compare(condition, reference_of(condition, conditions, criteria), first, spec))
        total, resizer = condition.mean("flops_total"), condition.mean("flops_resizer")
        cells.append(f"{total / 1e6:.1f} ({resizer / 1e6:.1f})" if total is not None else "—")
        speed = condition.mean("train_images_per_s")
        cells.append(f"{speed:.0f}" if speed is not None else "—")
        if condition.n < condition.planned:
            cells[len(names) + len(extra)] += f" ({condition.n}/{condition.planned} runs)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(sweep: Sweep, conditions: list[Condition], path: Path) -> Path | None:
    """The first metric against total MFLOPs per image, one line per resizer (and other keys), one panel per
    backbone; error bars are one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = get_task(sweep.task)
    metric = next(iter(spec.metrics))
    done = [c for c in conditions if c.mean(metric) is not None and c.mean("flops_total") is not None]
    if not done:
        return None
    panels = sorted({str(c.identity.get("backbone", "")) for c in done})
    series_keys = [k for k in _columns(sweep) if k not in ("backbone", "in_size", "out_size")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    scale = 100 if spec.is_percent(metric) else 1
    for ax, panel in zip(axes[0], panels, strict=True):
        groups: dict[str, list[Condition]] = {}
        for c in done:
            if str(c.identity.get("backbone", "")) == panel:
                name = ", ".join(label(k, c.identity.get(k)) for k in series_keys) or "runs"
                groups.setdefault(name, []).append(c)
        for name, members in sorted(groups.items()):
            members.sort(key=lambda c: c.mean("flops_total"))
            x = [c.mean("flops_total") / 1e6 for c in members]
            y = [c.mean(metric) * scale for c in members]
            err = [(c.std(metric) or 0.0) * scale for c in members]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
            for xi, yi, c in zip(x, y, members, strict=True):
                ax.annotate(size_cell(c), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("total MFLOPs per image (resizer + backbone)")
        ax.set_ylabel(f"{metric}{' (%)' if spec.is_percent(metric) else ''}")
        ax.set_title(panel or sweep.name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{sweep.name}: {metric} against FLOPs (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _csv_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def condition_rows(sweep: Sweep, conditions: list[Condition]) -> list[dict[str, Any]]:
    metrics = reported_metrics(sweep, conditions)
    first, mode = metrics[0], get_task(sweep.task).mode
    rows = []
    for c in conditions:
        row: dict[str, Any] = {
            k: format_value(k, v) if isinstance(v, dict) else label(k, v) for k, v in c.identity.items()
        }
        row |= {k: label(k, c.resolved.get(k)) for k in ("in_size", "out_size") if k not in row}
        ran = condition_methods(c)
        row |= {"resizer_as_run": ran["resizer"], "base_resize": ran["base resize"], "pre_resize": ran["pre-resize"]}
        row |= {"n": c.n, "planned": c.planned}
        for key in (
            *metrics,
            "flops_total",
            "flops_resizer",
            "flops_resizer_measured",
            "flops_backbone",
            "train_images_per_s",
            "wall_seconds",
        ):
            mean, std = c.mean(key), c.std(key)
            row[f"{key}_mean"] = "" if mean is None else round(mean, 6)
            row[f"{key}_std"] = "" if std is None else round(std, 6)
        for name, criteria in references(sweep):
            v = verdict(c, reference_of(c, conditions, criteria), first, mode)
            row[f"delta_vs_{name}"] = "" if v.diff is None else round(v.diff, 6)
            row[f"verdict_vs_{name}"] = v.word
        rows.append(row)
    return rows


def run_rows(sweep: Sweep, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for run in sweep.runs:
        metrics = RunFolder(folder / run.name).metrics() or {}
        rows.append({"run": run.name, **{k: label(k, v) for k, v in run.identity.items()},
                     "status": "finished" if metrics else "not finished", **metrics})  # fmt: skip
    return rows


def recorded_failures(folder: Path) -> dict[str, str]:
    """Run name -> ``failed: ...`` / ``blocked: ...``, as the sweep's last call recorded them."""
    path = folder / FAILURES_FILE
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def markdown(sweep: Sweep, folder: Path, conditions: list[Condition], plot_path: Path | None) -> str:
    spec = get_task(sweep.task)
    finished = sum(c.n for c in conditions)
    failures = recorded_failures(folder)
    refs = references(sweep)
    lines = [
        f"# {sweep.name}",
        "",
        f"Mirrors: {sweep.mirrors}." if sweep.mirrors else "",
        sweep.description,
        "",
        f"Command: `taskresize sweep --config {sweep.source} --output {folder.parent}`. "
        f"Report written {dt.datetime.now().isoformat(timespec='minutes')}; "
        f"{finished} of {len(sweep.runs)} runs finished.",
        "",
        metrics_note(sweep, refs),
        "",
        table(sweep, conditions),
        "",
    ]
    if plot_path is not None:
        lines += [f"![{next(iter(spec.metrics))} against FLOPs]({plot_path.relative_to(folder).as_posix()})", ""]
    if failures:
        lines += ["Runs that failed or were blocked:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()] + [""]
    pending = [r.name for r in sweep.runs if not RunFolder(folder / r.name).is_finished and r.name not in failures]
    if pending:
        lines += [f"Not finished yet ({len(pending)}): " + ", ".join(f"`{p}`" for p in pending), ""]
    return "\n".join(line for line in lines if line is not None).replace("\n\n\n", "\n\n")


def metrics_note(sweep: Sweep, refs: list[tuple[str, dict[str, Any]]]) -> str:
    """The paragraph under a report's command: what the columns mean."""
    spec = get_task(sweep.task)
    if len(refs) == 1:
        against = f"Δ: difference of means from the reference condition {_flow(refs[0][1])}"
    else:
        listed = "; ".join(f"{name}: {_flow(criteria)}" for name, criteria in refs)
        against = f"Δ: difference of means from each reference condition ({listed})"
    return (
        f"Metrics: the {sweep.task} task's validation metrics ({', '.join(spec.metrics)}; "
        f"{'lower' if spec.mode == 'min' else 'higher'} is better for {next(iter(spec.metrics))}), "
        "mean ± sample standard deviation over seeds, n = finished seeds. "
        "FLOPs per image (a multiply-add counts 2; convolutions by `torch.utils.flop_counter`, every resampling "
        "tap by formula, as `taskresize.count_flops`), resizer in brackets, the resizer's counted when the report "
        "is written (so runs of older FLOP conventions compare), the backbone's as the run measured it; "
        "train images/s measured on this machine, shared with other jobs, so compare it only roughly. "
        f"{against} (percentage points for percentages); a tie when within ±{TIE_SE:g} standard errors of the "
        "difference, no verdict with fewer than 2 seeds on either side, not measured where the sweep has no "
        "finished run of the reference. Resizer (as run), base resize (a learned resizer's own classic resize) and "
        "pre-resize (the data loader's, to the resizer's input) are read from each run's saved config.yaml: "
        "antialias = Pillow-style filtering (widened by the down-scaling factor), plain = F.interpolate's "
        "interpolation without it."
    )


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def write_report(sweep: Sweep, folder: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.csv``, ``runs.csv`` and ``plots/`` into the sweep folder; returns the paths."""

    folder = Path(folder)
    conditions = collect(sweep, folder)
    metric = next(iter(get_task(sweep.task).metrics))
    plot_path = plot(sweep, conditions, folder / "plots" / f"{metric}_vs_flops.png")
    paths = [
        atomic_write_text(folder / "report.md", markdown(sweep, folder, conditions, plot_path)),
        atomic_write_text(folder / "report.csv", _csv_text(condition_rows(sweep, conditions))),
        atomic_write_text(folder / "runs.csv", _csv_text(run_rows(sweep, folder))),
    ]
    return paths + ([plot_path] if plot_path else [])
