"""RunFolder: the one place that knows a run folder's files and its status."""

import json

from taskresize.runs import RunFolder


def test_status_follows_the_files_a_run_writes(tmp_path):
    run = RunFolder(tmp_path / "r")
    assert run.status == "pending" and run.config() == {} and run.metrics() is None and run.checkpoints == []
    run.path.mkdir()
    run.config_file.write_text("task: classification\nout_size: [32, 32]\n")
    assert run.status == "started" and run.config() == {"task": "classification", "out_size": [32, 32]}
    (run / RunFolder.BEST).write_bytes(b"x")
    (run / RunFolder.LAST).write_bytes(b"x")
    assert run.checkpoints == [run.checkpoint(), run.checkpoint(RunFolder.BEST)]
    run.metrics_file.write_text("{not json")
    assert run.status == "finished" and run.metrics() is None  # unreadable: no metrics, but the run did finish
    run.metrics_file.write_text(json.dumps({"top1_error": 0.5}))
    assert run.metrics() == {"top1_error": 0.5}
    run.config_file.write_text("- a list\n")
    assert run.config() == {}


def test_a_resizer_file_knows_its_run_folder(tmp_path):
    run = RunFolder(tmp_path)
    assert RunFolder.of_resizer_file(run.resizer_file) is None  # no config.yaml: not a run
    run.config_file.write_text("{}\n")
    assert RunFolder.of_resizer_file(run.resizer_file) == run
    assert RunFolder.of_resizer_file(tmp_path / "other.safetensors") is None
