"""Image-quality tables: images with a distribution of human ratings over the scores 1..10.

Three layouts are read (see :func:`read_score_table`):

* **AVA.txt** (Murray et al. 2012), space separated, no header: index, image id, the vote counts for the scores
  1..10, two semantic tag ids and a challenge id. The image of id ``N`` is ``N.jpg``.
* **Vote-count CSV** with a header holding ``path`` and ``1`` ... ``10`` (vote counts, any non-negative numbers).
* **Mean-score CSV** with a header holding ``path`` and ``mean_score`` (1..10), optionally ``std``. The target
  histogram is a discretised Gaussian over 1..10 (:func:`gaussian_histogram`) whose mean is exactly ``mean_score``
  and whose spread is ``std`` (default :data:`DEFAULT_STD`, about the average standard deviation of AVA's votes).

A CSV may also have a ``split`` column (``train`` or ``val``) that fixes the split; other columns are ignored.
Image paths are relative to the table's folder, or to ``images`` when given; absolute paths stay as they are.
Every row is checked as it is read: a malformed one raises :class:`TableError` naming the file, line and column.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from taskresize.data.split import validation_count
from taskresize.errors import DataError

SCORES = 10  # ratings 1..10
SCORE_VALUES = np.arange(1, SCORES + 1, dtype=np.float64)
DEFAULT_STD = 1.4  # spread of the histogram made from a mean score when the table has no std
VOTE_COLUMNS = tuple(str(k) for k in range(1, SCORES + 1))
SPLITS = ("train", "val")
AVA_COLUMNS = 15  # index, image id, 10 vote counts, 2 tag ids, challenge id
LAYOUTS = (
    "AVA.txt (index, image id, 10 vote counts, 2 tags, challenge id; space separated), "
    "a CSV with header path,1,2,...,10 (vote counts), or a CSV with header path,mean_score[,std]"
)


class TableError(DataError):
    """A score table that cannot be used; the message names the file, and the line and column if a row is bad."""


@dataclass
class ScoreTable:
    """Images and their score distributions.

    Attributes:
        source: the table file.
        paths: image files, resolved.
        histograms: ``(N, 10)`` float64, each row a distribution over the scores 1..10 (sums to 1).
        splits: ``"train"`` or ``"val"`` per row when the table has a ``split`` column, else ``None``.
        lines: the table line of each row (for messages).
    """

    source: Path
    paths: list[str]
    histograms: np.ndarray
    splits: list[str] | None = None
    lines: list[int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: slice) -> ScoreTable:
        """The rows of a slice (e.g. one process's shard, ``table[rank::world]``) as a table."""
        return self.subset(range(len(self))[rows])

    @property
    def means(self) -> np.ndarray:
        """Mean scores ``(N,)``: ``sum_k k * q_k``."""
        return self.histograms @ SCORE_VALUES

    def subset(self, indices: list[int] | np.ndarray) -> ScoreTable:
        indices = [int(i) for i in indices]

        def pick(values: list | None) -> list | None:
            return [values[i] for i in indices] if values is not None else None

        return ScoreTable(self.source, pick(self.paths), self.histograms[indices], pick(self.splits), pick(self.lines))


def gaussian_histogram(mean: float, std: float = DEFAULT_STD) -> np.ndarray:
    """A distribution over the scores 1..10 with mean ``mean``, shaped like a Gaussian of spread ``std``.

    ``p_k ∝ exp(-(k - mu)^2 / (2 std^2))``, with the centre ``mu`` chosen (by bisection) so that ``sum_k k p_k``
    equals ``mean`` exactly; near the ends of the scale ``mu`` moves outwards, since the histogram is cut at 1 and
    10, and its standard deviation is then smaller than ``std``.

    Args:
        mean: the mean score, in [1, 10].
        std: the Gaussian's spread, positive.

    Returns:
        ``(10,)`` float64, summing to 1.
    """
    if not 1.0 <= mean <= SCORES or not std > 0:
        raise ValueError(f"mean {mean} must be in [1, {SCORES}] and std {std} positive")

    def histogram(mu: float) -> np.ndarray:
        log_w = -((SCORE_VALUES - mu) ** 2) / (2 * std**2)
        w = np.exp(log_w - log_w.max())
        return w / w.sum()

    low, high = mean - 50 * std - SCORES, mean + 50 * std + SCORES
    for _ in range(64):  # the bracket shrinks below float64 resolution
        mid = (low + high) / 2
        if histogram(mid) @ SCORE_VALUES < mean:
            low = mid
        else:
            high = mid
    return histogram((low + high) / 2)


def read_score_table(
    path: str | os.PathLike, images: str | os.PathLike | None = None, check_files: bool = True
) -> ScoreTable:
    """Read a score table in any of the three layouts (told apart by the first line: a CSV header has ``path``).

    Args:
        path: the table file.
        images: the folder image paths are relative to (default: the table's folder).
        check_files: raise if any listed image file is missing.

    Raises:
        TableError: the file is missing or empty, the header is not one of the layouts, a row is malformed
            (file, line and column in the message), or images are missing.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a file"
        raise TableError(f"{path} is {what}: pass a score table, one of {LAYOUTS}")
    base = Path(images) if images is not None else path.parent
    if images is not None and not base.is_dir():
        raise TableError(f"--images {base} is not a folder (it should hold the images listed in {path})")
    with path.open(newline="", encoding="utf-8-sig") as f:
        first = next((line for line in f if line.strip()), None)
    if first is None:
        raise TableError(f"{path} is empty: expected {LAYOUTS}")
    if "path" in (field.strip().strip('"').lower() for field in first.split(",")):
        table = _read_csv(path, base)
    elif "," in first:
        raise TableError(f"{path}, line 1: a CSV needs a header with a 'path' column; expected {LAYOUTS}")
    else:
        table = _read_ava(path, base)
    if not table.paths:
        raise TableError(f"{path} has a header but no rows")
    if check_files:
        _check_files(table, base)
    return table


def _fail(path: Path, line: int, column: int, name: str, message: str) -> TableError:
    return TableError(f"{path}, line {line}, column {column} ({name}): {message}")


def _number(path: Path, line: int, column: int, name: str, text: str, check: Callable[[float], bool], want: str):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and check(value)):
        raise _fail(path, line, column, name, f"{text.strip()!r} is not {want}")
    return value


def _read_ava(path: Path, base: Path) -> ScoreTable:
    ids, votes, lines = [], [], []
    with path.open(encoding="utf-8-sig") as f:
        for line_no, text in enumerate(f, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) != AVA_COLUMNS:
                column = min(len(fields), AVA_COLUMNS) + 1
                raise _fail(
                    path, line_no, column, "AVA layout",
                    f"found {len(fields)} columns, expected {AVA_COLUMNS}: index, image id, 10 vote counts, "
                    "2 tag ids, challenge id (or use a CSV with header path,1,...,10)",
                )  # fmt: skip
            ids.append(fields[1])
            votes.append(fields[2 : 2 + SCORES])
            lines.append(line_no)

    def checked(row: int) -> list[float]:  # raises at the row's first bad count
        return [
            _number(path, lines[row], 3 + k, f"votes for {k + 1}", votes[row][k],
                    lambda v: v >= 0 and v == int(v), "a non-negative integer")
            for k in range(SCORES)
        ]  # fmt: skip

    try:  # all rows at once (AVA has 255,530); on a bad value, find the first one row by row
        counts = np.array(votes, dtype=np.float64).reshape(-1, SCORES)
    except ValueError:
        counts = np.array([checked(row) for row in range(len(votes))], dtype=np.float64).reshape(-1, SCORES)
    for row in np.flatnonzero(~(np.isfinite(counts) & (counts >= 0) & (counts == np.round(counts))).all(1)):
        checked(row)
    totals = counts.sum(1)
    empty = np.flatnonzero(totals <= 0)
    if len(empty):
        raise _fail(path, lines[empty[0]], 3, "votes for 1..10", "columns 3-12 sum to 0")
    prefix = os.path.join(base, "")  # plain strings: a Path per row costs seconds on AVA
    paths = [f"{prefix}{image_id}.jpg" for image_id in ids]
    return ScoreTable(path, paths, counts / totals[:, None], None, lines)


def _read_csv(path: Path, base: Path) -> ScoreTable:
    paths, histograms, splits, lines = [], [], [], []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [name.strip().lower() for name in next(reader)]
        while not any(header):  # blank lines before the header
            header = [name.strip().lower() for name in next(reader)]
        duplicates = sorted({n for n in header if header.count(n) > 1 and n})
        if duplicates:
            raise TableError(f"{path}, line {reader.line_num}: header repeats column(s) {', '.join(duplicates)}")
        col = {name: i for i, name in enumerate(header)}
        vote_cols = [col[k] for k in VOTE_COLUMNS if k in col]
        if vote_cols and len(vote_cols) != SCORES:
            missing = [k for k in VOTE_COLUMNS if k not in col]
            raise TableError(f"{path}, line {reader.line_num}: header lacks vote column(s) {', '.join(missing)}")
        if not vote_cols and "mean_score" not in col:
            raise TableError(f"{path}, line {reader.line_num}: header {','.join(header)} has neither the vote "
                             f"columns 1,...,10 nor mean_score; expected {LAYOUTS}")  # fmt: skip

        def cell(row: list[str], name: str) -> str:
            return row[col[name]].strip()

        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                column = min(len(row), len(header)) + 1
                what = header[column - 1] if column <= len(header) else "after the last"
                raise _fail(path, line, column, what, f"found {len(row)} columns, the header has {len(header)}")
            if not cell(row, "path"):
                raise _fail(path, line, col["path"] + 1, "path", "empty")
            if vote_cols:
                votes = [
                    _number(path, line, c + 1, header[c], row[c], lambda v: v >= 0, "a non-negative number")
                    for c in vote_cols
                ]
                if sum(votes) <= 0:
                    raise _fail(path, line, vote_cols[0] + 1, "1..10", "the vote counts sum to 0")
                histogram = np.asarray(votes, dtype=np.float64) / sum(votes)
            else:
                mean = _number(path, line, col["mean_score"] + 1, "mean_score", cell(row, "mean_score"),
                               lambda v: 1 <= v <= SCORES, f"a number from 1 to {SCORES}")  # fmt: skip
                std = DEFAULT_STD
                if "std" in col and cell(row, "std"):
                    std = _number(path, line, col["std"] + 1, "std", cell(row, "std"), lambda v: v > 0,
                                  "a positive number")  # fmt: skip
                histogram = gaussian_histogram(mean, std)
            if "split" in col:
                split = cell(row, "split").lower()
                if split not in SPLITS:
                    raise _fail(path, line, col["split"] + 1, "split", f"{split!r} is not one of {', '.join(SPLITS)}")
                splits.append(split)
            paths.append(os.path.join(base, cell(row, "path")))  # an absolute path stays as it is
            histograms.append(histogram)
            lines.append(line)
    histograms = np.asarray(histograms, dtype=np.float64).reshape(-1, SCORES)
    return ScoreTable(path, paths, histograms, splits if "split" in col else None, lines)


def _check_files(table: ScoreTable, base: Path) -> None:
    missing = [(line, p) for line, p in zip(table.lines or [0] * len(table), table.paths, strict=True)
               if not os.path.isfile(p)]  # fmt: skip
    if missing:
        examples = "; ".join(f"line {line}: {p}" for line, p in missing[:3])
        raise TableError(
            f"{table.source}: {len(missing)} of {len(table)} listed images are missing ({examples}); paths are "
            f"relative to {base} (the table's folder, or --images DIR)"
        )


def split_table(table: ScoreTable, val_fraction: float, seed: int) -> tuple[ScoreTable, ScoreTable]:
    """``(train, val)``: by the table's ``split`` column if it has one, else a seeded random split.

    The random split holds out ``round(N * val_fraction)`` rows (at least one, and at least one stays for
    training) and depends only on ``seed`` and the table's order.

    Raises:
        TableError: fewer than two rows, or a ``split`` column without any ``train`` or any ``val`` row.
    """
    if table.splits is not None:
        parts = {s: [i for i, v in enumerate(table.splits) if v == s] for s in SPLITS}
        empty = [s for s in SPLITS if not parts[s]]
        if empty:
            raise TableError(f"{table.source}: the split column has no {' or '.join(empty)} rows")
        return table.subset(parts["train"]), table.subset(parts["val"])
    if len(table) < 2:
        raise TableError(f"{table.source} has {len(table)} row(s): at least 2 are needed for training and validation")
    order = np.random.default_rng(seed).permutation(len(table))
    n_val = validation_count(len(table), val_fraction)
    return table.subset(np.sort(order[n_val:])), table.subset(np.sort(order[:n_val]))


class ScoreDataset(Dataset):
    """Yields ``(image, histogram)``: ``transform(path)`` (uint8 ``(3, h, w)``), optionally flipped left-right at
    random, and the score distribution as float32 ``(10,)``."""

    def __init__(self, table: ScoreTable, transform: Callable[[str], torch.Tensor], flip: bool = False) -> None:
        self.paths = table.paths
        self.histograms = torch.from_numpy(table.histograms.astype(np.float32))
        self.transform = transform
        self.flip = flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.transform(self.paths[index])
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.histograms[index]
