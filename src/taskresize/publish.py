"""Share a trained resizer on the Hugging Face Hub: its file, its config and a generated model card.

:func:`push_resizer` (``taskresize push``) takes a resizer file, a run folder or a ``compare`` output folder, writes
the three files the repository gets (:func:`prepare_push`) and uploads them with huggingface_hub:

- ``resizer.safetensors``: the weights with the config and provenance in the header, as :func:`save_resizer` wrote
  them (copied byte for byte);
- ``config.json``: the same header as plain JSON (resizer name, config, provenance, taskresize version);
- ``README.md``: the model card: ``library_name: taskresize`` and tags in its metadata, how to load it, the input
  and output sizes, the normalisation, the config, the provenance and metrics, and, for a resizer that comes from
  ``taskresize compare``, the verdict table and the controls it beat.

Loading it back is ``taskresize.load_resizer("hf-hub:ORG/NAME")`` (:mod:`taskresize.hub`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskresize.data.normalization import IMAGENET
from taskresize.errors import TaskresizeError
from taskresize.hub import PREFIX, check_repo_id
from taskresize.io import RESIZER_FILENAME, Provenance, read_resizer_header, resolve_resizer_path
from taskresize.resizers import resizer_info
from taskresize.resizers.registry import UnknownResizerError
from taskresize.sizes import to_size

CONFIG_FILENAME = "config.json"
CARD_FILENAME = "README.md"
COMPARE_FILES = ("compare.yaml", "report.md", "verdicts.json")  # what `taskresize compare` leaves in its output


class PushError(TaskresizeError):
    """A source that cannot be pushed as given; the message says what would be accepted."""


@dataclass
class CompareResult:
    """What a ``taskresize compare`` output says of one learned resizer."""

    folder: Path
    resizer: str
    winner: str | None
    verdicts: dict[str, str]  # control -> better / tie / worse (or no verdict)
    table: list[str] = field(default_factory=list)  # the report's verdict table, markdown rows


@dataclass
class PushFiles:
    """The files :func:`prepare_push` wrote, and what they came from."""

    folder: Path
    source: Path  # the resizer file
    header: dict[str, Any]
    compare: CompareResult | None

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())


def _compare_folder(path: Path) -> Path | None:
    """The ``compare`` output folder ``path`` is, or lies in (its ``best/`` or one of its runs), if any."""
    for candidate in [path, *list(path.parents)[:3]]:
        if all((candidate / name).is_file() for name in COMPARE_FILES):
            return candidate
    return None


def resolve_source(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """The resizer file of ``source`` (a resizer file, a run folder, or a ``compare`` output folder: its
    ``best/resizer.safetensors``) and the ``compare`` output it belongs to, if any."""
    path = Path(source)
    compare = _compare_folder(path.resolve()) if path.exists() else None
    if path.is_dir() and compare is not None and compare == path.resolve():
        best = path / "best" / RESIZER_FILENAME
        if not best.is_file():
            raise PushError(
                f"{path} is a compare output without best/{RESIZER_FILENAME}: no learned resizer beat every control. "
                f"Push one of its runs instead (a folder under {path / 'compare'}), and its card will say so"
            )
        return best, compare
    return resolve_resizer_path(path), compare


def read_compare(folder: Path, resizer: str) -> CompareResult:
    """The verdicts of ``resizer`` in the ``compare`` output ``folder`` and the report's verdict table."""
    try:
        data = json.loads((folder / "verdicts.json").read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    lines = (folder / "report.md").read_text().splitlines() if (folder / "report.md").is_file() else []
    start = next((i for i, line in enumerate(lines) if line.startswith("| learned resizer")), None)
    table = []
    if start is not None:
        for line in lines[start:]:
            if not line.startswith("|"):
                break
            table.append(line)
    verdicts = (data.get("verdicts") or {}).get(resizer) or {}
    return CompareResult(folder, resizer, data.get("winner"), dict(verdicts), table)


def _size(value: Any) -> str | None:
    """``H×W``, or None for a missing or unreadable size."""
    if value is None:
        return None
    try:
        h, w = to_size(value)
    except (TypeError, ValueError):
        return None
    return f"{h}×{w}"


def model_card(repo_id: str, header: dict[str, Any], compare: CompareResult | None = None) -> str:
    """The model card (``README.md``) of a resizer whose file header is ``header``, for the repository
    ``repo_id``: YAML metadata (``library_name: taskresize``, tags), then markdown."""
    name = header["name"]
    config = header.get("config") or {}
    provenance = Provenance.from_dict(header.get("provenance"))
    try:
        info = resizer_info(name)
        description = info.description
    except UnknownResizerError:
        description = ""
    tags = ["taskresize", "image-resizing", "learned-resizer", name]
    tags += [v for v in (provenance.task, provenance.backbone) if v and v not in tags]
    metadata: dict[str, Any] = {"library_name": "taskresize", "tags": tags}
    in_size, out_size = _size(provenance.in_size), _size(provenance.out_size or config.get("output_size"))
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {repo_id}",
        "",
        _summary(name, description, provenance),
        "",
        "## Use",
        "",
        "```python",
        "import taskresize",
        "",
        f'resizer = taskresize.load_resizer("{PREFIX}{repo_id}")  # an nn.Module: resizer(x, size=None)',
        f'small = taskresize.resize_image(image, "{PREFIX}{repo_id}")  # a Pillow image or a uint8 tensor',
        "```",
        "",
        "```bash",
        f"taskresize resize --resizer {PREFIX}{repo_id} photos/ --out small/",
        "```",
        "",
        f'In a torchvision pipeline: `taskresize.transforms.LearnedResize("{PREFIX}{repo_id}")`. Files are read '
        "through huggingface_hub's cache (`HF_HUB_OFFLINE=1` reads only the cache).",
        "",
        "## Sizes and normalisation",
        "",
        f"- input: {in_size + ' px (images are first resized to it, as in training)' if in_size else 'not recorded'}",
        f"- output: {out_size + ' px' if out_size else 'not recorded'} (any other size can be asked for per call)",
    ]
    if provenance.pre_resize is not None:
        aa = "antialiased" if provenance.pre_resize_antialias else "without antialias"
        lines.append(f"- pre-resize to the input size: {provenance.pre_resize}, {aa}")
    n = provenance.normalization or IMAGENET
    mean, std = (", ".join(f"{v:.2f}" for v in values) for values in (n.mean, n.std))
    lines.append(
        f"- normalisation: `(pixels - mean) / std` with mean ({mean}) and std ({std}) in 0-255 units"
        + ("" if provenance.normalization else " (not recorded: ImageNet's, which taskresize assumes)")
    )
    body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in config.items())
    lines += ["", "## Config", "", "```json", f'{{\n  "name": {json.dumps(name)},\n  "config": {{\n{body}\n  }}\n}}',
              "```", ""]  # fmt: skip
    recorded = {k: v for k, v in provenance.to_dict().items() if k != "normalization"}
    if provenance.pre_resize is None:
        recorded.pop("pre_resize_antialias", None)
    if recorded:
        lines += ["## Provenance", "", "| field | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in recorded.items()]
        lines.append("")
    if header.get("taskresize_version"):
        lines += [f"Saved by taskresize {header['taskresize_version']}.", ""]
    if compare is not None:
        lines += _compare_section(compare)
    return "\n".join(lines).rstrip() + "\n"


def _summary(name: str, description: str, provenance: Provenance) -> str:
    words = [f"A `{name}` image resizer"]
    if description:
        words[0] += f" ({description.rstrip('.')})"
    words.append("trained with taskresize")
    if provenance.data:
        words.append(f"on `{provenance.data}`")
    if provenance.task:
        words.append(f"for the task `{provenance.task}`")
    if provenance.backbone:
        words.append(f"in front of `{provenance.backbone}`")
    return words[0] + ", " + " ".join(words[1:]) + "."


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def _compare_section(compare: CompareResult) -> list[str]:
    lines = ["## Does it pay? (`taskresize compare`)", ""]
    if compare.verdicts:
        by_word: dict[str, list[str]] = {}
        for control, word in compare.verdicts.items():
            by_word.setdefault(word, []).append(control)
        parts = [f"{word} than {', '.join(controls)}" if word in ("better", "worse") else
                 f"{word}: {', '.join(controls)}" for word, controls in by_word.items()]  # fmt: skip
        lines.append(f"Against each control, `{compare.resizer}` is " + "; ".join(parts) + ".")
    if compare.winner == compare.resizer:
        lines.append("It is better than every control, at equal output size and at equal FLOPs.")
    elif compare.winner:
        lines.append(f"In the same comparison `{compare.winner}` won; this one did not beat every control.")
    else:
        lines.append("No learned resizer of that comparison beat every control: read the table before using it.")
    if compare.table:
        lines += ["", *compare.table]
    lines += ["", "Verdicts on the difference of means over seeds (a tie within two standard errors); FLOPs count a "
              "multiply-add as 2.", ""]  # fmt: skip
    return lines


def prepare_push(source: str | os.PathLike, folder: str | os.PathLike, repo_id: str, *, card: bool = True) -> PushFiles:
    """Write into ``folder`` what :func:`push_resizer` uploads: ``resizer.safetensors``, ``config.json`` and the
    model card ``README.md``.

    Args:
        source: a resizer file, a run folder, a ``compare`` output folder (its ``best/`` resizer) or a resizer
            file inside one (the card then carries the verdicts).
        folder: an existing or new folder; the three files are overwritten there.
        repo_id: ``ORG/NAME``, named in the card.
        card: write the model card (False: keep the repository's own).
    """
    check_repo_id(repo_id)
    file, compare_folder = resolve_source(source)
    header = read_resizer_header(file)
    compare = read_compare(compare_folder, header["name"]) if compare_folder is not None else None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, folder / RESIZER_FILENAME)
    (folder / CONFIG_FILENAME).write_text(json.dumps(header, indent=2) + "\n")
    if card:
        (folder / CARD_FILENAME).write_text(model_card(repo_id, header, compare))
    return PushFiles(folder, file, header, compare)


def push_resizer(
    source: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    card: bool = True,
) -> str:
    """Upload a trained resizer to the Hugging Face Hub repository ``repo_id`` (created if missing).

    Args:
        source: a resizer file, a run folder, or a ``compare`` output folder (see :func:`prepare_push`).
        repo_id: ``ORG/NAME``; load it back with ``load_resizer("hf-hub:ORG/NAME")``.
        private: create the repository private (an existing one keeps its visibility).
        token: a Hugging Face token; default huggingface_hub's (``HF_TOKEN`` or ``hf auth login``).
        revision: the branch to push to (default ``main``).
        commit_message: default ``"Upload <name> resizer with taskresize"``.
        card: upload the generated model card (False: keep the repository's own ``README.md``).

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="taskresize-push-") as tmp:
        files = prepare_push(source, tmp, repo_id, card=card)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, repo_type="model", revision=revision,
            commit_message=commit_message or f"Upload {files.header['name']} resizer with taskresize",
        )  # fmt: skip
    return str(getattr(info, "commit_url", info))
