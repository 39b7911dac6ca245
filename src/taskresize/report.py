"""The report of a sweep: ``report.md``, ``report.csv`` (one row per condition), ``runs.csv`` (one per run) and
a plot of the task's first metric against total FLOPs per image, one line per resizer (like Talebi Table 4).

A *condition* is a run's identity without its seed; its runs over seeds give mean ± sample standard deviation
(n shown). Each condition is compared with its *reference* condition (the sweep file's ``report.reference``,
default ``{resizer: bilinear, in_size: $out_size}``: bilinear at the same output size, otherwise the same):
the difference is called a tie when it is within two standard errors
(``|Δ| <= 2 * sqrt(s1²/n1 + s2²/n2)``), and cannot be judged with fewer than two seeds on either side.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .sizes import format_size, to_size
from .sweep import (
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
from .tasks import PER_CLASS, get_task

DEFAULT_REFERENCE = {"resizer": "bilinear", "in_size": "$out_size"}
PERCENT_SUFFIXES = ("error", "accuracy", "acc", "iou", "map")
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


def is_percent(metric: str) -> bool:
    """Whether ``metric`` is a fraction shown in percent: errors, accuracies, IoUs and mAPs (also ``map50``)."""
    return metric.lower().rstrip("0123456789").endswith(PERCENT_SUFFIXES)


def format_metric(metric: str, mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "—"
    if is_percent(metric):
        text = f"{mean:.1%}" + (f" ± {std * 100:.1f}" if std is not None else "")
    else:
        text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
    return f"{text} (n={n})"


def collect(sweep: Sweep, folder: Path) -> list[Condition]:
    """Group the sweep's finished runs by condition, in the order of the plan."""
    from .training.run import CONFIG_FILE, METRICS_FILE

    conditions: dict[tuple, Condition] = {}
    for run in sweep.runs:
        identity = {k: v for k, v in run.identity.items() if k != "seed"}
        key = tuple((k, normalise(k, v)) for k, v in identity.items())
        if key not in conditions:
            conditions[key] = Condition(identity, effective(run.values, f"{sweep.source}: {run.name}"))
        condition = conditions[key]
        condition.planned += 1
        run_dir = folder / run.name
        if (run_dir / METRICS_FILE).is_file():
            condition.runs.append(run.name)
            condition.metrics.append(json.loads((run_dir / METRICS_FILE).read_text()))
            config = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) if (run_dir / CONFIG_FILE).is_file() else {}
            condition.configs.append(config or {})
    return list(conditions.values())


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


def compare(a: Condition, b: Condition, metric: str, mode: str) -> str:
    """``a`` against ``b``: the difference of means, and better / worse / tie (within ``TIE_SE`` standard errors)."""
    ma, mb = a.mean(metric), b.mean(metric)
    if ma is None or mb is None:
        return "—"
    diff = ma - mb
    text = f"{diff * 100:+.1f}" if is_percent(metric) else f"{diff:+.3f}"
    sa, sb = a.std(metric), b.std(metric)
    if sa is None or sb is None:
        return f"{text} (n<2: no verdict)"
    se = math.sqrt(sa**2 / a.n + sb**2 / b.n)
    bound = f"{TIE_SE * se * 100:.1f}" if is_percent(metric) else f"{TIE_SE * se:.3f}"
    if abs(diff) <= TIE_SE * se:
        return f"{text} (tie, ±{bound})"
    better = diff < 0 if mode == "min" else diff > 0
    return f"{text} ({'better' if better else 'worse'}, ±{bound})"


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


def _size_cell(condition: Condition) -> str:
    src, dst = condition.resolved.get("in_size"), condition.resolved.get("out_size")
    return f"{format_size(to_size(src))} → {format_size(to_size(dst))}"


def reported_metrics(sweep: Sweep, conditions: list[Condition]) -> list[str]:
    """The task's metrics, then the per-class ones the runs wrote (e.g. segmentation's ``class/ring_iou``)."""
    per_class = dict.fromkeys(k for c in conditions for m in c.metrics for k in m if k.startswith(PER_CLASS))
    return [*get_task(sweep.task).metrics, *per_class]


def table(sweep: Sweep, conditions: list[Condition]) -> str:
    """A Markdown table laid out like the paper's: one row per condition."""
    spec = get_task(sweep.task)
    metrics = reported_metrics(sweep, conditions)
    first = metrics[0]
    columns = _columns(sweep)
    reference = sweep.report.get("reference", DEFAULT_REFERENCE)
    shown = [k for k in SHOWN_KEYS if k not in columns and len({str(c.resolved.get(k)) for c in conditions}) > 1]
    head = [*columns, "input → output", *shown, *metrics, f"Δ {first} vs reference", "MFLOPs/image (resizer)",
            "train images/s"]  # fmt: skip
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(columns) + "---|" * (1 + len(shown)) + "---:|" * (len(head) - len(columns) - 1 - len(shown)),
    ]
    for condition in sorted(conditions, key=lambda c: _sort_key(c, columns)):
        cells = [label(k, condition.identity.get(k)) for k in columns]
        cells.append(_size_cell(condition))
        cells += [label(k, condition.resolved.get(k)) for k in shown]
        cells += [format_metric(m, condition.mean(m), condition.std(m), condition.n) for m in metrics]
        ref = reference_of(condition, conditions, reference)
        if ref is condition:
            cells.append("reference")
        else:
            cells.append(compare(condition, ref, first, spec.mode) if ref is not None and ref.n else "—")
        total, resizer = condition.mean("flops_total"), condition.mean("flops_resizer")
        cells.append(f"{total / 1e6:.1f} ({resizer / 1e6:.1f})" if total is not None else "—")
        speed = condition.mean("train_images_per_s")
        cells.append(f"{speed:.0f}" if speed is not None else "—")
        if condition.n < condition.planned:
            cells[len(columns)] += f" ({condition.n}/{condition.planned} runs)"
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
    scale = 100 if is_percent(metric) else 1
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
                ax.annotate(_size_cell(c), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("total MFLOPs per image (resizer + backbone)")
        ax.set_ylabel(f"{metric}{' (%)' if is_percent(metric) else ''}")
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
    rows = []
    for c in conditions:
        row: dict[str, Any] = {
            k: format_value(k, v) if isinstance(v, dict) else label(k, v) for k, v in c.identity.items()
        }
        row |= {k: label(k, c.resolved.get(k)) for k in ("in_size", "out_size") if k not in row}
        row |= {"n": c.n, "planned": c.planned}
        for key in (
            *metrics,
            "flops_total",
            "flops_resizer",
            "flops_backbone",
            "train_images_per_s",
            "wall_seconds",
        ):
            mean, std = c.mean(key), c.std(key)
            row[f"{key}_mean"] = "" if mean is None else round(mean, 6)
            row[f"{key}_std"] = "" if std is None else round(std, 6)
        rows.append(row)
    return rows


def run_rows(sweep: Sweep, folder: Path) -> list[dict[str, Any]]:
    from .training.run import METRICS_FILE

    rows = []
    for run in sweep.runs:
        path = folder / run.name / METRICS_FILE
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        rows.append({"run": run.name, **{k: label(k, v) for k, v in run.identity.items()},
                     "status": "finished" if metrics else "not finished", **metrics})  # fmt: skip
    return rows


def markdown(sweep: Sweep, folder: Path, conditions: list[Condition], plot_path: Path | None) -> str:
    spec = get_task(sweep.task)
    finished = sum(c.n for c in conditions)
    failures = yaml.safe_load((folder / FAILURES_FILE).read_text()) if (folder / FAILURES_FILE).is_file() else {}
    reference = sweep.report.get("reference", DEFAULT_REFERENCE)
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
        f"Metrics: the {sweep.task} task's validation metrics ({', '.join(spec.metrics)}; "
        f"{'lower' if spec.mode == 'min' else 'higher'} is better for {next(iter(spec.metrics))}), "
        "mean ± sample standard deviation over seeds, n = finished seeds. "
        "FLOPs per image from `torch.utils.flop_counter` (a multiply-add counts 2), resizer in brackets; "
        "train images/s measured on this machine, shared with other jobs, so compare it only roughly. "
        f"Δ: difference of means from the reference condition {_flow(reference)}"
        f" (percentage points for percentages); a tie when within ±{TIE_SE:g} standard errors of the difference, "
        "no verdict with fewer than 2 seeds on either side.",
        "",
        table(sweep, conditions),
        "",
    ]
    if plot_path is not None:
        lines += [f"![{next(iter(spec.metrics))} against FLOPs]({plot_path.relative_to(folder).as_posix()})", ""]
    if failures:
        lines += ["Runs that failed or were blocked:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()] + [""]
    pending = [
        r.name for r in sweep.runs if not (folder / r.name / "metrics.json").is_file() and r.name not in failures
    ]
    if pending:
        lines += [f"Not finished yet ({len(pending)}): " + ", ".join(f"`{p}`" for p in pending), ""]
    return "\n".join(line for line in lines if line is not None).replace("\n\n\n", "\n\n")


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def write_report(sweep: Sweep, folder: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.csv``, ``runs.csv`` and ``plots/`` into the sweep folder; returns the paths."""
    from .fileio import atomic_write_text

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
