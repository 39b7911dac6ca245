"""Does a learned resizer pay on this data? One grid, written as a sweep file and run by the sweep machinery.

For output size S (the backbone's input), classic resizer C (the task's default: bilinear, bicubic for IQA), each
learned resizer R and each seed (the papers' protocol, with the controls a careful reader asks for):

- ``baseline``: the backbone trained on C-resized images at S (``epochs``);
- ``tune``: from that baseline, ``tune_epochs`` more epochs with R fed ``in_scale x S`` and producing S;
- ``control``: from the same baseline, for the same epochs, classic resizers from the learned resizers' input
  to S: plain bilinear (the papers' baseline), antialiased bilinear and antialiased area (and antialiased C if it
  is none of these): what the extra epochs alone buy, and what a classic filter makes of the same input;
- ``flops``: from the same baseline, for the same epochs, C from the same input to the **FLOP-matched size** S':
  the size at which the backbone alone costs nearest to what R + backbone cost at S
  (:func:`taskresize.flops.flop_matched_size`; one run per distinct S').

The report (``OUTPUT/report.md``) gives each learned resizer a verdict (better / tie / worse, the sweep report's
tie rule on mean ± std over seeds) against each control at equal output size and against C at equal FLOPs; a
figure of what the best learned resizer does; and when one is better than every control, exports it to
``OUTPUT/best/`` (safetensors, and ONNX checked against PyTorch). With fewer than two finished seeds per condition
it gives no verdict and says that it cannot conclude.

Files: ``OUTPUT/compare.yaml`` (the sweep file: ``taskresize sweep --config OUTPUT/compare.yaml --output OUTPUT``
re-runs or extends it, and writes the sweep's own report into ``OUTPUT/compare/`` and this one again),
``OUTPUT/compare/`` (the runs), ``OUTPUT/report.md`` (the one report of a comparison), ``OUTPUT/resized.png``,
``OUTPUT/best/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from taskresize.data.builtin.classification import builtin_dataset
from taskresize.data.builtin.small_objects import small_objects_root
from taskresize.data.decode import load_image
from taskresize.data.formats.folders import train_val_folders
from taskresize.data.normalization import IMAGENET
from taskresize.data.split import SPLIT_SEED
from taskresize.errors import UserError, did_you_mean
from taskresize.experiments.figures import comparison_figure
from taskresize.experiments.sweep.plan import Sweep, expand, matches
from taskresize.experiments.sweep.report import (
    Condition,
    collect,
    condition_methods,
    format_metric,
    size_cell,
    table,
    verdict,
)
from taskresize.experiments.sweep.run import run_sweep
from taskresize.fileio import atomic_write_text
from taskresize.flops import flop_matched_size
from taskresize.inference.export import ExportError, export_resizer
from taskresize.inference.image import load_image_resizer
from taskresize.resizers import list_resizers
from taskresize.resizers.classic import resize
from taskresize.resizers.registry import resizer_factory, resizer_info
from taskresize.runs import RunFolder
from taskresize.sizes import format_size, to_size
from taskresize.training.config import ConfigError, TrainConfig, with_task_defaults
from taskresize.training.registry import get_task

SWEEP_NAME = "compare"
SWEEP_FILE = "compare.yaml"
TUNED_STAGES = ("tune", "control", "flops")
# the resizer's rate joined to a pretrained backbone: at the paper's single rate an identity-initialised resizer
# wrecked the fine-tuned Lite0 (docs/results.md, "Fine-tuning from pretrained weights: the recipe")
PRETRAINED_RESIZER_LR_SCALE = 0.001
# the equal-output-size controls: (label, resizer, resizer_args)
CONTROLS = (
    ("bilinear (plain)", "bilinear", {"antialias": False}),
    ("bilinear (antialias)", "bilinear", {"antialias": True}),
    ("area (antialias)", "area", {"antialias": True}),
)


@dataclass
class CompareSettings:
    """What ``taskresize compare`` compares (see the module docstring).

    Attributes:
        data: the user's data (a folder, table file, or ``builtin``).
        backbone: the model (``torchvision:NAME``, ``timm:NAME``).
        out_size: S, the backbone's input size (N or HxW).
        resizers: the learned resizers to try.
        in_scale: their input size is ``in_scale x S``.
        seeds: runs of each condition, seeds 0..seeds-1.
        epochs: the baseline's epochs (default TrainConfig's).
        tune_epochs: the epochs every other run trains from the baseline.
        tune_lr: their learning rate (default: TrainConfig's rule for initialised runs).
        task: the task (default: classification, or the ``train`` settings').
        pretrained: the baseline's backbone weights.
        train: any other TrainConfig settings, shared by every run (``--config FILE``).
    """

    data: str
    backbone: str
    out_size: Any
    resizers: Sequence[str] = field(default_factory=lambda: list_resizers(learned=True))
    in_scale: float = 2.0
    seeds: int = 3
    epochs: int | None = None
    tune_epochs: int = 5
    tune_lr: float | None = None
    task: str | None = None
    pretrained: str | None = None
    train: dict[str, Any] = field(default_factory=dict)


def _check(settings: CompareSettings) -> tuple[dict[str, Any], tuple[int, int], tuple[int, int], str]:
    """The runs' shared values, S, the learned resizers' input size and the classic resizer; user errors raised."""
    known = set(list_resizers())
    unknown = [r for r in settings.resizers if r not in known]
    if not settings.resizers or unknown:
        hints = "".join(did_you_mean(r, list_resizers(learned=True)) for r in unknown)
        raise UserError(f"--resizers: unknown {', '.join(unknown) or '(none given)'}.{hints} Learned resizers: "
                        f"{', '.join(list_resizers(learned=True))}")  # fmt: skip
    classic = [r for r in settings.resizers if not resizer_info(r).learned]
    if classic:
        raise UserError(f"--resizers: {', '.join(classic)} is classic; give learned resizers (the classic controls "
                        "are part of the grid): e.g. learnable,downsizenet")  # fmt: skip
    if settings.seeds < 1 or settings.tune_epochs < 1 or (settings.epochs is not None and settings.epochs < 1):
        raise UserError("--seeds, --epochs and --tune-epochs must be 1 or more")
    if not settings.in_scale > 0:
        raise UserError(f"--in-scale {settings.in_scale}: must be positive (the learned resizers' input size is "
                        "in-scale x out-size)")  # fmt: skip
    fixed = {"data": settings.data, "backbone": settings.backbone, "out_size": settings.out_size}
    fixed |= {k: v for k, v in (("task", settings.task), ("pretrained", settings.pretrained),
                                ("epochs", settings.epochs)) if v is not None}  # fmt: skip
    clash = sorted(set(settings.train) & {"resizer", "resizer_args", "in_size", "init", "seed", "output"})
    if clash:
        raise UserError(f"--config sets {', '.join(clash)}: compare chooses these for each run; leave them out")
    base = {**settings.train, **fixed}
    try:
        cfg = TrainConfig.from_dict(base, source="compare")
    except ConfigError as error:
        raise UserError(str(error)) from None
    if not cfg.data.startswith("builtin") and not Path(cfg.data).exists():
        raise UserError(f"--data {cfg.data}: no such folder or file")
    out = tuple(cfg.out_size)
    scaled = (round(out[0] * settings.in_scale), round(out[1] * settings.in_scale))
    resizer = with_task_defaults({"task": cfg.task}).get("resizer", TrainConfig.resizer)
    base["task"] = cfg.task
    for key in ("data", "images", "pretrained"):  # paths made absolute: the sweep file works from any folder
        value = base.get(key)
        if isinstance(value, str) and Path(value).exists():
            base[key] = str(Path(value).resolve())
    return base, out, scaled, resizer


def backbone_flops(base: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, int]]:
    """A function from run values (resizer, sizes) to the task's FLOPs per image (``resizer``, ``backbone``) as its
    runs count them; the data is read once (for the number of classes), weights are never loaded."""
    cfg = TrainConfig.from_dict({**base, "pretrained": None}, source="compare")
    spec = get_task(cfg.task)
    kwargs = spec.data(cfg).module_kwargs()

    def flops(values: dict[str, Any]) -> dict[str, int]:
        run = TrainConfig.from_dict({**base, "pretrained": None, **values}, source="compare")
        module = spec.module(run.to_dict() | {"input_normalization": IMAGENET.to_dict()}, **kwargs)
        return module.flops()

    return flops


def compare_spec(settings: CompareSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The sweep file of the comparison (see the module docstring); counts FLOPs to find the matched sizes."""
    base, out, scaled, classic = _check(settings)
    flops = backbone_flops(base)
    matched: dict[str, tuple[int, int]] = {}
    for name in settings.resizers:
        cost = flops({"resizer": name, "in_size": list(scaled), "out_size": list(out)})
        target = cost["resizer"] + cost["backbone"]
        size = flop_matched_size(
            lambda s: flops({"resizer": classic, "in_size": list(s), "out_size": list(s)})["backbone"], target, out
        )
        matched[name] = size
        log(f"{name}: {cost['resizer'] / 1e6:.1f} + {cost['backbone'] / 1e6:.1f} MFLOPs/image at "
            f"{format_size(scaled)} -> {format_size(out)}; the backbone alone costs nearest that at "
            f"{format_size(size)}")  # fmt: skip
    seeds = list(range(settings.seeds))
    s = format_size(out)
    controls = list(CONTROLS)
    if classic not in ("bilinear", "area"):
        controls.append((f"{classic} (antialias)", classic, {"antialias": True}))
    grids: list[dict[str, Any]] = [
        {"stage": ["baseline"], "resizer": [classic], "resizer_args": [{}], "in_size": [s], "out_size": [s],
         "seed": seeds},
        {"stage": ["tune"], "resizer": list(settings.resizers), "resizer_args": [{}], "in_size": [format_size(scaled)],
         "out_size": [s], "seed": seeds},
    ]  # fmt: skip
    # the controls resize the learned resizers' input (in_scale x S), so that only the resizer differs (at S -> S
    # every classic resizer would be the identity, after the same pre-resize of the loader)
    source = format_size(scaled)
    for _, resizer, args in controls:
        grids.append({"stage": ["control"], "resizer": [resizer], "resizer_args": [args], "in_size": [source],
                      "out_size": [s], "seed": seeds})  # fmt: skip
    for size in dict.fromkeys(m for m in matched.values() if m != out):
        down = size[0] <= scaled[0] and size[1] <= scaled[1]  # else the loader pre-resizes to it
        grids.append({"stage": ["flops"], "resizer": [classic], "resizer_args": [{"antialias": True}],
                      "in_size": [source if down else format_size(size)], "out_size": [format_size(size)],
                      "seed": seeds})  # fmt: skip
    tuned: dict[str, Any] = {"init": "@{stage: baseline, seed: $seed}", "epochs": settings.tune_epochs}
    if settings.tune_lr is not None:
        tuned["lr"] = settings.tune_lr
    own_rates = []  # resizers that state their own rate beside a pretrained backbone (the samplers)
    if settings.pretrained is not None and "resizer_lr_scale" not in settings.train:
        tuned["resizer_lr_scale"] = PRETRAINED_RESIZER_LR_SCALE
        for name in settings.resizers:
            scale = getattr(resizer_factory(name), "pretrained_lr_scale", None)
            if scale is not None:
                own_rates.append({"match": {"resizer": name}, "set": {"resizer_lr_scale": scale}})
    references = [
        {"label": label, "stage": "control", "resizer": resizer, "resizer_args": args, "in_size": source}
        for label, resizer, args in controls
    ]
    return {
        "name": SWEEP_NAME,
        "mirrors": "Talebi & Milanfar 2021's two-phase protocol with equal-size and FLOP-matched classic controls",
        "description": (
            f"Written by taskresize compare: {settings.backbone} at {s}, learned resizers from "
            f"{format_size(scaled)} ({', '.join(settings.resizers)}), {settings.seeds} seed(s). Matched sizes: "
            + ", ".join(f"{k}: {format_size(v)}" for k, v in matched.items()) + "."
        ),
        "base": base,
        "grid": grids,
        "overrides": [*({"match": {"stage": stage}, "set": tuned} for stage in TUNED_STAGES), *own_rates],
        "report": {"references": references},
        "compare": {"classic": classic, "controls": [label for label, _, _ in controls],
                    "matched": {k: format_size(v) for k, v in matched.items()}},
    }  # fmt: skip


def write_compare_file(spec: dict[str, Any], output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `taskresize compare`; `taskresize sweep --config THIS --output FOLDER` re-runs or extends "
              "it (its compare section is for compare's report).\n")  # fmt: skip
    return atomic_write_text(output / SWEEP_FILE, header + yaml.safe_dump(spec, sort_keys=False, width=110))


def read_compare_file(output: Path) -> dict[str, Any]:
    return yaml.safe_load((output / SWEEP_FILE).read_text())


@dataclass
class Outcome:
    """What :func:`run_compare` found."""

    report: Path
    verdicts: dict[str, dict[str, str]]  # learned resizer -> control label -> better / tie / worse / ...
    winner: str | None
    best: Path | None  # OUTPUT/best/ when one won
    figure: Path | None
    states: dict[str, str]  # run name -> the sweep's outcome


def run_compare(
    settings: CompareSettings, output: str | Path, log: Callable[[str], None] = print, **execution: Any
) -> Outcome:
    """Write the comparison's sweep file into ``output``, run it (``execution``: ``run_sweep``'s ``workers``,
    ``ray``, ``ray_options``), and write the report; finished runs of an earlier call are kept."""
    output = Path(output)
    spec = compare_spec(settings, log)
    if (output / SWEEP_FILE).is_file():
        before = read_compare_file(output)
        if before.get("base", {}).get("data") != spec["base"]["data"]:
            raise UserError(f"{output} holds a comparison of {before['base'].get('data')}: give another --output")
    path = write_compare_file(spec, output)
    sweep = expand(spec, source=str(path))
    log(f"{len(sweep.runs)} runs: {path} (taskresize sweep --config {path} --output {output} runs it too)")
    states = run_sweep(sweep, output, log=log, report=False, **execution)  # one report: the comparison's
    return write_compare_report(spec, sweep, output, states, log)


def _condition(conditions: list[Condition], **criteria: Any) -> Condition | None:
    return next((c for c in conditions if matches(criteria, c.identity)), None)


def _cell(v, percent: bool) -> str:
    if v.diff is None:
        return v.word
    scale = 100 if percent else 1
    text = f"{v.diff * scale:+.1f}" if percent else f"{v.diff:+.3f}"
    if v.bound is None:
        return f"{v.word} ({text})"
    bound = f"{v.bound * scale:.1f}" if percent else f"{v.bound:.3f}"
    return f"**{v.word}** ({text} ± {bound})"


def write_compare_report(
    spec: dict[str, Any], sweep: Sweep, output: Path, states: dict[str, str], log: Callable[[str], None] = print
) -> Outcome:
    """``OUTPUT/report.md``: the verdicts, the figure, the export of a winner (see the module docstring)."""
    folder = output / sweep.name
    task = get_task(sweep.task)
    metric = next(iter(task.metrics))
    percent = task.is_percent(metric)
    conditions = collect(sweep, folder)
    info = spec["compare"]
    base = spec["base"]
    out = to_size(base["out_size"])
    s = format_size(out)
    candidates = [*CONTROLS, (f"{info['classic']} (antialias)", info["classic"], {"antialias": True})]
    controls = {
        label: _condition(conditions, stage="control", resizer=resizer, resizer_args=args, out_size=s)
        for label, resizer, args in candidates
        if label in info["controls"]
    }
    learned = [c for c in conditions if c.identity.get("stage") == "tune"]
    learned_in = format_size(to_size(_learned_in(sweep)))
    flops_label = f"{info['classic']} at equal FLOPs"
    verdicts: dict[str, dict[str, str]] = {}
    head = ["learned resizer", "input → output", metric, "MFLOPs/image (resizer)",
            *(f"vs {label}, {learned_in} → {s}" for label in controls), f"vs {flops_label}"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for condition in learned:
        name = str(condition.identity["resizer"])
        matched = info["matched"].get(name)
        flop_control = (
            _condition(conditions, stage="flops", out_size=matched)
            if matched and to_size(matched) != out
            else controls.get(f"{info['classic']} (antialias)")
        )
        against = {**controls, flops_label: flop_control}
        found = {label: verdict(condition, other, metric, task.mode) for label, other in against.items()}
        verdicts[name] = {label: v.word for label, v in found.items()}
        total, own = condition.mean("flops_total"), condition.mean("flops_resizer")
        cost = f"{total / 1e6:.1f} ({own / 1e6:.1f})" if total is not None else "—"
        cells = [name, f"{format_size(to_size(condition.resolved['in_size']))} → {s}",
                 _metric(condition, metric, percent), cost]  # fmt: skip
        cells += [_cell(v, percent) for v in found.values()]
        if flop_control is not None and matched and to_size(matched) != out:
            cells[-1] += f" ({size_cell(flop_control)})"
        else:
            cells[-1] += f" (at {s}: the nearest size)"
        rows.append("| " + " | ".join(cells) + " |")
    winners = [n for n, vs in verdicts.items() if vs and all(word == "better" for word in vs.values())]
    by_name = {str(c.identity["resizer"]): c for c in learned}
    best_of = min if task.mode == "min" else max
    measured = [n for n in by_name if by_name[n].mean(metric) is not None]
    best = best_of(measured, key=lambda n: by_name[n].mean(metric)) if measured else None
    winner = best_of(winners, key=lambda n: by_name[n].mean(metric)) if winners else None

    figure = None
    run_of = {str(c.identity["resizer"]): c.runs[0] for c in learned if c.runs}
    if best in run_of:  # the best first, then the others
        shown = [best, *(n for n in run_of if n != best)]
        try:
            figure = resizer_figure(folder, [run_of[n] for n in shown], output / "resized.png",
                                    labels=[f"{best} (best)", *shown[1:]])  # fmt: skip
        except Exception as error:  # a figure is a bonus: data it cannot read (tables, VOC) leaves the report whole
            log(f"no figure: {type(error).__name__}: {error}")
    exported, export_note = None, ""
    if winner is not None:
        exported, export_note = export_best(folder / run_of[winner], output / "best", log)

    word = "lower" if task.mode == "min" else "higher"
    lines = [
        f"# Does a learned resizer pay on `{base['data']}`?",
        "",
        f"{base['backbone']} at {s} px; learned resizers and classic controls fed {learned_in} px images; "
        f"{max((c.n for c in conditions), default=0)} seed(s) per condition; task {sweep.task}, metric {metric} "
        f"({word} is better). Each learned resizer and each control trains "
        f"{_epochs(sweep, 'tune')} epoch(s) from the same baseline ({info['classic']} at {s}, "
        f"{_epochs(sweep, 'baseline')} epoch(s)). Verdicts: better / tie / worse on the difference of means over "
        "seeds, a tie when within two standard errors of the difference (Δ ± that bound, percentage points for "
        "percentages), no verdict with fewer than 2 seeds. FLOPs per image (a multiply-add counts 2, "
        "`taskresize.count_flops`), resizer in brackets. Equal FLOPs: the classic resizer at the size where the "
        "backbone alone costs nearest to what the learned resizer and the backbone cost together ("
        + ", ".join(f"{k}: {v}" for k, v in info["matched"].items())
        + ").",
        "",
        *rows,
        "",
        f"Report written {dt.datetime.now().isoformat(timespec='minutes')}; "
        f"{sum(c.n for c in conditions)} of {len(sweep.runs)} runs finished. "
        f"Command: `taskresize sweep --config {output / SWEEP_FILE} --output {output}` re-runs the grid.",
        "",
    ]
    ran = [c for c in conditions if c.n]  # a condition left out (sweep --only) reads "not measured"
    seeds = min((c.n for c in ran), default=0)
    if winner:
        lines += [f"**{winner}** is better than every control, at equal output size and at equal FLOPs.", ""]
    elif seeds < 2:
        lines += [f"No conclusion: a verdict needs 2 or more finished seeds per condition, and "
                  f"{'some condition has' if ran else 'there are'} {seeds if ran else 'none'}. Run the "
                  "same command with --seeds 2 or more (finished runs are kept and reused).", ""]  # fmt: skip
    else:
        lines += ["No learned resizer is better than every control: on this data and at these settings, keep the "
                  "best classic resizer of the table below (a tie costs the learned resizer's FLOPs for nothing).",
                  ""]  # fmt: skip
    unrun = [f"{condition_methods(c)['resizer']} ({c.identity['stage']}, {size_cell(c)})" for c in conditions
             if not c.n]  # fmt: skip
    if unrun:
        lines += [f"Not measured (no finished run; verdicts against them read \"not measured\"): {', '.join(unrun)}.",
                  ""]  # fmt: skip
    if export_note:
        lines += [export_note, ""]
    if figure is not None:
        lines += [f"![What {best} does]({figure.relative_to(output).as_posix()})", ""]
    lines += ["## Every condition", "", table(sweep, conditions), ""]
    pending = [name for name, state in states.items() if state.startswith(("failed", "blocked", "interrupted"))]
    if pending:
        lines += [f"Runs that failed or were blocked ({len(pending)}): " + ", ".join(f"`{p}`" for p in pending), ""]
    report = atomic_write_text(output / "report.md", "\n".join(lines))
    atomic_write_text(output / "verdicts.json", json.dumps({"winner": winner, "verdicts": verdicts}, indent=2))
    return Outcome(report, verdicts, winner, exported, figure, states)


def _metric(condition: Condition, metric: str, percent: bool) -> str:
    return format_metric(percent, condition.mean(metric), condition.std(metric), condition.n)


def _learned_in(sweep: Sweep) -> Any:
    return next(r.values["in_size"] for r in sweep.runs if r.values.get("stage") == "tune")


def _epochs(sweep: Sweep, stage: str) -> Any:
    run = next(r for r in sweep.runs if r.values.get("stage") == stage)
    return run.values.get("epochs", TrainConfig.epochs)


def export_best(run_dir: Path, best: Path, log: Callable[[str], None] = print) -> tuple[Path, str]:
    """Copy the winner's resizer file to ``best/resizer.safetensors`` and export it to ``best/resizer.onnx``
    (checked against PyTorch with ONNX Runtime); returns the folder and a note for the report."""
    best.mkdir(parents=True, exist_ok=True)
    shutil.copy2(RunFolder(run_dir).resizer_file, best / "resizer.safetensors")
    resizer = load_image_resizer(best / "resizer.safetensors")
    header = resizer.header or {}
    metadata = {"resizer": header.get("name"), "config": header.get("config"),
                "input": "float32 pixels in [0, 255]", "provenance": header.get("provenance", {})}  # fmt: skip
    use = (f"Use it: `taskresize resize --resizer {best / 'resizer.safetensors'} IMAGES --out OUT`, or in Python "
           f"`taskresize.resize_image(image, \"{best / 'resizer.safetensors'}\")`.")  # fmt: skip
    try:
        report = export_resizer(resizer.pixels, best / "resizer.onnx", "onnx", resizer.in_size, metadata=metadata)
    except (ExportError, ImportError) as error:
        log(f"ONNX export of {run_dir.name} failed: {error}")
        return best, f"Exported to `{best}/resizer.safetensors`; ONNX export failed: {error}. {use}"
    worst = max(d for _, d in report.checks)
    log(f"exported {best / 'resizer.safetensors'} and {report.path} (ONNX Runtime vs PyTorch: at most {worst:.2g})")
    return best, (f"Exported to `{best}/resizer.safetensors` and `{report.path}` (ONNX Runtime within {worst:.2g} "
                  f"of PyTorch on random inputs). {use}")  # fmt: skip


def resizer_figure(folder: Path, runs: list[str], path: Path, labels: list[str] | None = None, count: int = 4) -> Path:
    """Validation images of different classes at the learned resizers' input size, and what bilinear and each
    learned resizer (run folders ``folder/<run>``) make of them at the output size (classification data)."""
    config = RunFolder(folder / runs[0]).config()
    data = str(config["data"])
    root = builtin_dataset() if data == "builtin" else small_objects_root(data, "classification") or Path(data)
    classes, _, val = train_val_folders(root, config["val_split"], SPLIT_SEED)
    picked = [next(s for s in val if s.label == c) for c in range(0, len(classes), max(1, len(classes) // count))]
    picked = picked[:count]
    resizers = {label: load_image_resizer(folder / run) for label, run in zip(labels or runs, runs, strict=True)}
    first = next(iter(resizers.values()))
    in_size, out = first.in_size, tuple(config["out_size"])
    images = torch.stack([resize(load_image(s.path), in_size, *first.pre_resize) for s in picked])
    columns = {"bilinear": lambda x: resize(x, out, "bilinear")}
    for name, resizer in resizers.items():
        columns[name] = lambda x, resizer=resizer: resizer.finish(x, out)
    rows = ", ".join(classes[s.label] for s in picked)
    title = f"{Path(str(config['data'])).name}, {in_size[0]} -> {out[0]} px (rows: {rows})"
    return comparison_figure(images, columns, path, reference="bilinear", title=title)


def settings_from(values: dict[str, Any], source: str) -> CompareSettings:
    """:class:`CompareSettings` from a mapping (the demo's file); unknown keys are refused."""
    known = {f.name for f in dataclasses.fields(CompareSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return CompareSettings(**values)
