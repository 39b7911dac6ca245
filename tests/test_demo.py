"""The demo's protocol end to end, at a toy scale (the real `make demo` takes about ten minutes)."""

from taskresize.demo import DemoPlan, run_demo


def test_demo_runs_the_protocol_and_writes_table_and_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path / "cache"))
    plan = DemoPlan(output=tmp_path / "demo", in_size=48, out_size=32, baseline_epochs=1, joint_epochs=1,
                    batch_size=8, workers=0, images_per_class=3, image_size=64)  # fmt: skip
    text = run_demo(plan)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["baseline", "bilinear", "learnable", "downsizenet"]
    assert (tmp_path / "demo" / "resized.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "results.md").read_text() == text
    for name in ("learnable", "downsizenet"):
        assert (tmp_path / "demo" / name / "resizer.safetensors").is_file()
