"""What this machine computes on: ``auto`` accelerators, devices and precisions resolved to what it has, and a
refusal where a precision would be many times slower than float32 (bf16 autocast on a CPU without bf16
instructions; docs/results.md has the measurements); and glibc's malloc told to keep what CPU training frees."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import torch

from taskresize.errors import TaskresizeError, UserError

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bf16 arithmetic


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


class DeviceError(TaskresizeError):
    """A device this machine does not have, or no device name at all."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``--device`` of the commands that run a model: ``auto`` (the first CUDA GPU, else Apple's MPS, else the
    CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        DeviceError: an unknown name, or a device this machine does not have (the message says which it has).
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device({"gpu": "cuda", "mps": "mps"}.get(resolve_accelerator("auto"), "cpu"))
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"--device {device!r}: use one of {', '.join(DEVICES)}") from None
    if chosen.type == "cuda" and not (torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()):
        raise DeviceError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); use cpu")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {device}: MPS is not available here; use cpu")
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {device!r}: use one of {', '.join(DEVICES)}")
    return chosen


def default_workers(processes: int = 1) -> int:
    """Data-loading workers per training process when none are given: the cores this process may use, shared
    among the ``processes`` on this machine, less one for the training process itself. No cap: a GPU trains
    more images a second than a few cores decode and pre-resize (``make gpu-check`` measures both)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cores // max(1, processes) - 1)


def resolve_accelerator(accelerator: str) -> str:
    """``auto``: ``gpu`` when CUDA is available, else ``mps`` on Apple silicon, else ``cpu``."""
    if accelerator != "auto":
        return accelerator
    if torch.cuda.is_available():
        return "gpu"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpuinfo_has_bf16(cpuinfo: str) -> bool:
    """Whether the ``flags`` line of a ``/proc/cpuinfo`` text names AVX512-BF16 or AMX-BF16."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in CPU_BF16_FLAGS)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); without, bf16 autocast emulates it."""
    try:
        return cpuinfo_has_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: torch's own capability probe, where it has one
        probe = getattr(torch.backends, "mkldnn", None)
        return bool(getattr(probe, "is_bf16_supported", lambda: False)())


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: ``bf16-mixed`` on a GPU that supports bf16, else ``32-true`` (also on every CPU: float32 is never
    the slow choice there). ``accelerator`` is a resolved one (:func:`resolve_accelerator`)."""
    if precision != "auto":
        return precision
    if accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def slow_precision(precision: str, accelerator: str) -> str | None:
    """Why ``precision`` would be many times slower than float32 on this machine, or None where it is not."""
    if accelerator == "cpu" and precision.startswith(("bf16", "16")) and not cpu_has_bf16():
        kind = "bf16" if precision.startswith("bf16") else "float16"
        return (
            f"--precision {precision} on a CPU without bf16 instructions ({' / '.join(CPU_BF16_FLAGS)} absent): "
            f"{kind} autocast is emulated there, many times slower than float32 (docs/results.md, Performance); "
            "use --precision 32-true, the default on CPUs"
        )
    return None


def refuse_slow_precision(precision: str, accelerator: str) -> None:
    """Raise :class:`UserError` where ``precision`` would be emulated on this CPU (see :func:`slow_precision`)."""
    reason = slow_precision(precision, accelerator)
    if reason:
        raise UserError(reason)


# glibc's malloc hands the free memory at the top of its heap back to the system once more than its trim threshold
# lies there (by default it follows the largest block freed, up to 64 MB). CPU training frees and allocates the
# same tensors every step -- a learned resizer's input-resolution maps, kept for the backward pass, are hundreds of
# MB per batch -- so each step faulted its pages in afresh, at about the cost of the convolutions that fill them.
# PyTorch's CPU allocator keeps nothing itself (its CUDA one caches). Fault counts and step times with and without:
# benchmarks/alternatives.py.
RETAIN_FREED_MEMORY = "TASKRESIZE_RETAIN_FREED_MEMORY"  # "0": leave glibc's malloc as it is
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # blocks above are mapped and unmapped each time: glibc's own ceiling on 64-bit
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (a C int): in effect, never trim
_USER_MALLOC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def uses_glibc() -> bool:
    """Whether this process runs on GNU libc."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # a name this C library does not know
        return False


@functools.cache
def retain_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of returning it to the system (see above); whether
    it was done. The process then holds on to its peak memory, as it would under CUDA's caching allocator.

    Left alone where ``TASKRESIZE_RETAIN_FREED_MEMORY=0``, where the user set glibc's malloc variables
    (``MALLOC_*_`` or ``GLIBC_TUNABLES=glibc.malloc...``: theirs are kept), and where the C library is not glibc.
    It changes the whole process and cannot be undone, so no library call makes it: the commands that run models
    on a CPU do (each with a flag to leave malloc alone), and an application of the user's may call it itself.
    """
    opted_out = os.environ.get(RETAIN_FREED_MEMORY, "1") == "0"
    users_own = any(name in os.environ for name in _USER_MALLOC_SETTINGS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    if opted_out or users_own or not uses_glibc():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # the mapping threshold first: setting either one stops glibc adjusting both itself
    return mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
