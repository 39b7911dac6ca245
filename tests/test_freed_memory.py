"""glibc's malloc told to keep what CPU training frees (hardware.retain_freed_memory): its effect on the page faults
of training steps, when it is left alone, and that no resizer asks for it (only the commands do)."""

import os
import subprocess
import sys

import pytest
import torch

import taskresize as tr
from taskresize import hardware

# A learnable resizer's training steps at 256 -> 64 on a CPU, its 16-channel maps under glibc's 32 MB mmap ceiling: the
# minor page faults of each step.
FAULTS_PER_STEP = """
import resource, torch, taskresize as tr
from taskresize.hardware import retain_freed_memory
retained = retain_freed_memory()  # as the commands do on a CPU
torch.set_num_threads(1)
torch.manual_seed(0)
resizer, x = tr.create_resizer("learnable", output_size=64), torch.rand(4, 3, 256, 256)
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    resizer(x).square().mean().backward()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(retained)
"""


def _faults(**env: str) -> tuple[list[int], bool]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != hardware.RETAIN_FREED_MEMORY}
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], env=clean | env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    return [int(n) for n in out[:-1]], out[-1] == "True"


@pytest.mark.skipif(not hardware.uses_glibc(), reason="glibc's malloc only")
def test_training_steps_reuse_the_memory_glibc_would_have_given_back():
    faults, retained = _faults()
    default, left_alone = _faults(**{hardware.RETAIN_FREED_MEMORY: "0"})
    assert retained and not left_alone
    # after two steps' warm-up: tens of thousands of faults a step by default (8 MB maps, 4 kB pages), few or none
    assert 2 * sum(faults[2:]) <= sum(default[2:]) and sum(default[2:]) > 4 * 2048, (faults, default)


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(hardware.ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(hardware.os, "confstr", lambda name: "glibc 2.36")
    for name in (*hardware._USER_MALLOC_SETTINGS, "GLIBC_TUNABLES", hardware.RETAIN_FREED_MEMORY):
        monkeypatch.delenv(name, raising=False)
    hardware.retain_freed_memory.cache_clear()
    yield fake
    hardware.retain_freed_memory.cache_clear()


def test_the_mapping_and_trim_thresholds_are_set_once(libc):
    assert hardware.retain_freed_memory() and hardware.retain_freed_memory()
    assert libc.calls == [(-3, 32 << 20), (-1, 2**31 - 1)]  # M_MMAP_THRESHOLD first, then M_TRIM_THRESHOLD


@pytest.mark.parametrize(("name", "value"), [
    (hardware.RETAIN_FREED_MEMORY, "0"), ("MALLOC_TRIM_THRESHOLD_", "1000000"), ("MALLOC_MMAP_THRESHOLD_", "65536"),
    ("MALLOC_TOP_PAD_", "0"), ("MALLOC_MMAP_MAX_", "0"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1"),
])  # fmt: skip
def test_an_opt_out_or_the_users_own_malloc_settings_leave_it_alone(libc, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert not hardware.retain_freed_memory() and libc.calls == []


def test_other_c_libraries_are_left_alone(libc, monkeypatch):
    def no_such_name(name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(hardware.os, "confstr", no_such_name)
    assert not hardware.retain_freed_memory() and libc.calls == []


@pytest.mark.parametrize("name", tr.list_resizers())
def test_no_resizer_changes_malloc_settings(libc, name):
    resizer = tr.create_resizer(name, output_size=16)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        resizer.eval()(x)
    y = resizer.train()(x)
    if y.requires_grad:
        y.sum().backward()
    assert libc.calls == []
