"""Image sizes: one parser for the library (ints and tuples) and the command line (``224`` or ``160x224``)."""

from __future__ import annotations

from collections.abc import Sequence

Size = tuple[int, int]


def to_size(size: int | str | Sequence[int], *, what: str = "size") -> Size:
    """Normalise a size to ``(height, width)``.

    Args:
        size: ``N`` (square), ``(H, W)``, or a string ``"N"`` / ``"HxW"`` (as typed on the command line).
        what: what the size is for, used in the error message.

    Raises:
        ValueError: the size is malformed or not positive; the message shows what is accepted.
    """
    if isinstance(size, str):
        text = size.strip().lower()
        parts = text.split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{what} {size!r} is not a size: use N (square, e.g. 224) or HxW (e.g. 160x224)")
        values = [int(p) for p in parts]
    elif isinstance(size, bool):
        raise ValueError(f"{what} {size!r} is not a size: use an int N or a pair (H, W)")
    elif isinstance(size, int):
        values = [size]
    else:
        try:
            values = [int(v) for v in size]
        except (TypeError, ValueError):
            raise ValueError(f"{what} {size!r} is not a size: use an int N or a pair (H, W)") from None
        if len(values) != 2 or any(int(v) != v for v in size):
            raise ValueError(f"{what} {size!r} is not a size: use an int N or a pair (H, W)")
    if len(values) == 1:
        values = values * 2
    if min(values) <= 0:
        raise ValueError(f"{what} {size!r} must be positive: use N or HxW with N, H, W >= 1")
    return values[0], values[1]


def format_size(size: Size) -> str:
    """``(160, 224)`` -> ``"160x224"``; square sizes print as one number."""
    h, w = size
    return str(h) if h == w else f"{h}x{w}"
