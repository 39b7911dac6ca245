"""``make gpu-check`` runs on the GPU machines as they come: no pip, the machine's own Python with the source on
``PYTHONPATH``. Its smoke mode runs here on the CPU, so the script cannot rot between GPU runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_gpu_check_installs_nothing_and_runs_the_script_from_the_source_tree():
    dry = subprocess.run(["make", "-n", "gpu-check"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip" not in dry and ".venv" not in dry, dry
    assert "PYTHONPATH=src" in dry and "benchmarks/gpu_check.py" in dry


def test_the_gpu_check_smoke_run_on_the_cpu_writes_json_and_markdown(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OUT": str(tmp_path)}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke",
               "--resizers", "downsizenet"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "torch: " in result.stdout
    results = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [row["resizer"] for row in results["training"]] == [None, "bilinear", "downsizenet", "learnable"]
    assert results["training"][-1]["precision"].endswith("GradScaler")
    assert all(row["finite_loss"] for row in results["training"])
    assert {row["resizer"] for row in results["inference"]} >= {"bilinear", "downsizenet"}
    loader = results["loader"]  # both data paths of the training loader; decoding "on the device" is on the CPU here
    assert loader["cpu decode + PreResize (--decode-on cpu)"]["images_per_s"] > 0
    assert loader["device decode (--decode-on device)"]["images_per_s"] > 0
    assert loader["decoded on the device against Pillow (grey levels)"]["max"] == 0  # the same decoder on a CPU
    probes = results["probes"]
    assert set(probes) == {"training steps against float32 on the CPU", "uint8 plain bilinear on the device",
                           "pt2 export on the device", "torch.compile fullgraph"}  # fmt: skip
    assert all(probe["ok"] for probe in probes.values()), probes
    assert not results["errors"]
    markdown = (tmp_path / "gpu-check.md").read_text()
    assert "| downsizenet |" in markdown and "Smoke run" in markdown
    assert "| device decode (--decode-on device) (workers: " in markdown
