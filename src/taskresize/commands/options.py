"""What several commands share: one vocabulary of flags, value checks that run before any heavy import, renamed
flags kept as hidden aliases, and the freed-memory choice of the commands that run models.

The vocabulary: ``--output`` is what a command writes; ``--in-size`` / ``--out-size`` are the resizer's input and
output sizes (N or HxW); ``--workers`` is always data-loading (decoding) processes; ``--jobs`` is runs at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

# Old spellings, kept for one release: accepted, hidden from --help, and answered with a line that names the new one.
# Per command: old flag -> new flag.
RENAMED: dict[str, dict[str, str]] = {
    "resize": {"--out": "--output", "--size": "--out-size"},
    "show": {"--out": "--output", "--size": "--out-size"},
    "export": {"--input-size": "--in-size", "--size": "--out-size"},
    "sweep": {"--workers": "--jobs"},
    "compare": {"--workers": "--jobs"},
    "demo": {"--workers": "--jobs"},
}

RETAIN_FLAG = "--no-retain-freed-memory"
RETAIN_HELP = (
    "leave the C library's memory allocator as it is. By default, on a CPU, freed memory is kept for reuse (the "
    "process then holds its peak memory, and large tensors are not faulted in anew on every call: faster); "
    "TASKRESIZE_RETAIN_FREED_MEMORY=0 does the same as this flag"
)


def renamed_flags(command: str | None, argv: list[str], warn: Callable[[str], None] | None = None) -> list[str]:
    """``argv`` with the old spellings of ``command``'s flags replaced by the new ones (``--out x`` and
    ``--out=x`` alike, up to a ``--``), each one announced once through ``warn`` (default: a line on stderr)."""
    table = RENAMED.get(command or "", {})
    if not table:
        return argv
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    result, told = [], set()
    for i, arg in enumerate(argv):
        if arg == "--":
            return result + argv[i:]
        flag, eq, value = arg.partition("=")
        if flag in table:
            new = table[flag]
            if flag not in told:
                told.add(flag)
                warn(f"taskresize {command}: warning: {flag} is now {new}; {flag} still works in this release only")
            arg = new + eq + value
        result.append(arg)
    return result


def retain_freed_memory_unless(args: argparse.Namespace, on_cpu: bool = True) -> bool:
    """Apply the command's freed-memory choice: with ``--no-retain-freed-memory``, set
    ``TASKRESIZE_RETAIN_FREED_MEMORY=0`` for this process and the ones it starts; else, where the work runs on a
    CPU (``on_cpu``), have freed memory kept for reuse (:func:`taskresize.hardware.retain_freed_memory`).
    Returns whether it was done."""
    from taskresize.hardware import RETAIN_FREED_MEMORY, retain_freed_memory

    if getattr(args, "no_retain_freed_memory", False):
        os.environ[RETAIN_FREED_MEMORY] = "0"
        return False
    return on_cpu and retain_freed_memory()


def add_retain_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(RETAIN_FLAG, action="store_true", help=RETAIN_HELP)


# argparse types: a wrong value is refused by argparse itself (exit 2, one line) before any heavy import.


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive integer (1 or more)")
    return int(value)


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or a positive integer")
    return int(value)


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number")
    return float(value)


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or a positive number")
    return float(value)


def fraction(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number between 0 and 1")
    return float(value)


def quality(text: str) -> int:
    value = _number(text, int)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give a value from 1 to 100")
    return int(value)


def size(text: str) -> str:
    """A size N or HxW, checked here and kept as typed (the commands parse it with :func:`taskresize.sizes.to_size`)."""
    from taskresize.sizes import to_size

    try:
        to_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: use N (square, e.g. 224) or HxW (e.g. 160x224)"
        ) from None
    return text


def size_or_none(text: str) -> str:
    return text if text.strip().lower() == "none" else size(text)


def total_memory() -> int | None:
    """This machine's physical memory in bytes, if the system says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
