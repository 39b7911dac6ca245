"""What the benchmarks ran on, for the line above their tables: CPU model, the vector and matrix extensions that
decide which kernels run (bf16 among them), cores, and the library versions."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

import taskresize

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


def cpu_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`FLAGS` it has (Linux ``/proc/cpuinfo``; elsewhere unknown)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    have = set(fields.get("flags", "").split())
    return fields.get("model name", platform.machine()), [f for f in FLAGS if f in have]


def describe() -> str:
    model, flags = cpu_flags()
    return (
        f"{model}, {torch.get_num_threads()} threads, CPU flags: {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}; "
        f"taskresize {taskresize.__version__}, torch {torch.__version__}"
    )
