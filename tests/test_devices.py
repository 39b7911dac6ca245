"""Where a run trains and in what precision: auto resolved to the machine, emulated precisions refused."""

import pytest
import torch

from taskresize import hardware as devices
from taskresize.errors import UserError
from taskresize.hardware import (
    cpuinfo_has_bf16,
    refuse_slow_precision,
    resolve_accelerator,
    resolve_precision,
    slow_precision,
)
from taskresize.runs import RunFolder
from taskresize.training.config import load_config
from taskresize.training.run import train

from helpers import colour_folders


def test_auto_is_a_gpu_when_cuda_is_there_else_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_accelerator("auto") == "cpu" and resolve_accelerator("gpu") == "gpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_accelerator("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_accelerator("auto") == "gpu"


@pytest.mark.parametrize(("cuda", "bf16", "accelerator", "expected"), [
    (False, False, "cpu", "32-true"), (True, True, "gpu", "bf16-mixed"), (True, False, "gpu", "32-true"),
    (True, True, "cpu", "32-true"),  # a CPU run on a GPU machine: float32, never the emulated bf16
])  # fmt: skip
def test_auto_precision_is_bf16_only_on_gpus_that_have_it(monkeypatch, cuda, bf16, accelerator, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_precision("auto", accelerator) == expected
    assert resolve_precision("16-mixed", accelerator) == "16-mixed"  # what is given is kept


def test_a_cpu_without_bf16_instructions_is_refused_bf16(monkeypatch):
    assert cpuinfo_has_bf16("processor: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert not cpuinfo_has_bf16("processor: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    for precision in ("bf16-mixed", "16-mixed"):
        message = slow_precision(precision, "cpu")
        assert message and "32-true" in message and precision in message
        with pytest.raises(UserError, match="32-true"):
            refuse_slow_precision(precision, "cpu")
    assert slow_precision("32-true", "cpu") is None and slow_precision("bf16-mixed", "gpu") is None
    refuse_slow_precision("32-true", "cpu")
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: True)
    assert slow_precision("bf16-mixed", "cpu") is None
    refuse_slow_precision("bf16-mixed", "cpu")


def test_train_refuses_bf16_on_a_cpu_without_it_before_writing_anything(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    data = colour_folders(tmp_path / "data", per_class=4)
    cfg = load_config(None, {"data": str(data), "backbone": "timm:resnet10t", "out_size": 16, "epochs": 1,
                             "batch_size": 4, "workers": 0, "precision": "bf16-mixed", "accelerator": "cpu",
                             "output": str(tmp_path / "run")})  # fmt: skip
    with pytest.raises(UserError, match="without bf16 instructions"):
        train(cfg)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_run_records_where_and_in_what_precision_it_ran(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=4)
    cfg = load_config(None, {"data": str(data), "backbone": "timm:resnet10t", "out_size": 16, "epochs": 1,
                             "batch_size": 4, "workers": 0, "precise_bn": 0,
                             "output": str(tmp_path / "run")})  # fmt: skip
    assert (cfg.accelerator, cfg.precision) == ("auto", "auto")
    run = RunFolder(train(cfg))
    saved = run.config()
    assert (saved["accelerator"], saved["precision"]) == ("auto", "auto")  # as given; ran_on: as resolved
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert saved["ran_on"]["accelerator"] == expected and saved["ran_on"]["devices"] == 1
    assert saved["ran_on"]["workers"] == 0  # given; without --workers it is default_workers(1)
    assert saved["ran_on"]["precision"] == resolve_precision("auto", expected)
    assert saved["ran_on"]["retained_freed_memory"] == (expected == "cpu" and devices.retain_freed_memory())


@pytest.mark.gpu
def test_a_gpu_run_trains_in_bf16_by_default(tmp_path):
    data = colour_folders(tmp_path / "data", per_class=4)
    cfg = load_config(None, {"data": str(data), "backbone": "timm:resnet10t", "out_size": 32, "epochs": 1,
                             "batch_size": 4, "workers": 0, "output": str(tmp_path / "run"),
                             "accelerator": "gpu"})  # fmt: skip
    saved = RunFolder(train(cfg)).config()
    assert saved["ran_on"]["accelerator"] == "gpu"
    assert saved["ran_on"]["precision"] == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true")


def test_device_names_resolve_or_say_what_this_machine_has(monkeypatch):
    from taskresize.hardware import DeviceError, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    for name, words in (("cuda", "0 CUDA device"), ("cuda:1", "0 CUDA device"), ("mps", "MPS"), ("tpu", "cuda:N")):
        with pytest.raises(DeviceError, match=words):
            resolve_device(name)


def test_commands_refuse_a_missing_device_in_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from helpers import cli

    image = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (16, 12)).save(image)
    assert (
        cli("resize", "--resizer", "bicubic", image, "--output", tmp_path / "out", "--out-size", 8, "--device", "cuda")
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err and "Traceback" not in err


@pytest.mark.gpu
def test_a_learned_resizer_on_the_gpu_equals_the_cpu_within_a_grey_level(tmp_path):
    from taskresize import create_resizer
    from taskresize.inference.export import export_resizer
    from taskresize.inference.image import load_image_resizer

    module = create_resizer("learnable", output_size=24).eval()
    images = torch.randint(0, 256, (2, 3, 48, 40), dtype=torch.uint8)
    on_cpu = load_image_resizer(module, in_size=None)(images)
    on_gpu = load_image_resizer(module, in_size=None, device="cuda")
    assert on_gpu.device.type == "cuda"
    out = on_gpu(images)
    assert out.device.type == "cpu" and (out.int() - on_cpu.int()).abs().max() <= 1
    report = export_resizer(on_gpu.pixels, tmp_path / "r.onnx", "onnx", (48, 40), device="cuda")
    assert report.max_difference <= 0.05


@pytest.mark.parametrize(
    ("cores", "processes", "expected"), [(2, 1, 1), (2, 2, 0), (16, 1, 15), (16, 4, 3), (64, 1, 63), (1, 1, 0)]
)
def test_default_workers_share_the_cores_among_the_processes(monkeypatch, cores, processes, expected):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert devices.default_workers(processes) == expected


def test_sync_batchnorm_is_asked_of_lightning_only_for_several_processes(tmp_path):
    from taskresize.training.config import TrainConfig
    from taskresize.training.run import _trainer

    def layer_sync(**values):
        cfg = TrainConfig(accelerator="cpu", **values)
        return _trainer(cfg, tmp_path, [], logger=False)._accelerator_connector._layer_sync

    assert layer_sync(devices=2, sync_batchnorm=True) is not None
    assert layer_sync(devices=2) is None and layer_sync(devices=1, sync_batchnorm=True) is None


def test_compile_compiles_resizer_and_backbone_in_place(monkeypatch):
    from torch import nn

    from taskresize.training.config import TrainConfig
    from taskresize.training.tasks.classification import ClassificationTask

    compiled = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    values = {"backbone": "timm:resnet10t", "out_size": [32, 32], "resizer": "learnable"}
    task = ClassificationTask(TrainConfig(**values, compile=True).to_dict(), num_outputs=3)
    assert compiled == [type(task.resizer).__name__, type(task.backbone).__name__]
    plain = ClassificationTask(TrainConfig(**values).to_dict(), num_outputs=3)
    assert len(compiled) == 2 and set(task.state_dict()) == set(plain.state_dict())  # checkpoints unchanged


def test_precise_batchnorm_runs_in_the_training_steps_precision(monkeypatch):
    import contextlib
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from taskresize.training import callbacks

    seen = []

    @contextlib.contextmanager
    def context():
        seen.append("entered")
        yield

    monkeypatch.setattr(callbacks, "recompute_batchnorm", lambda *a: seen.append("recomputed"))
    trainer = SimpleNamespace(
        sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING), current_epoch=0,
        datamodule=SimpleNamespace(precise_bn_loader=lambda batches, epoch: []),
        strategy=SimpleNamespace(precision_plugin=SimpleNamespace(train_step_context=context)),
    )  # fmt: skip
    callbacks.PreciseBatchNorm(2).on_validation_epoch_start(trainer, SimpleNamespace(trainable_batchnorms=list))
    assert seen == ["entered", "recomputed"]
