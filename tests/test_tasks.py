"""Every registered task, through the task registry alone: a tiny train and eval of its own example run, its
metrics as it declares them, channels-last uint8 batches, and flags and reports that need no edit per task."""

import dataclasses

import pytest
import torch

from taskresize.runs import RunFolder
from taskresize.training.config import TrainConfig
from taskresize.training.registry import get_task, task_names
from taskresize.training.run import evaluate, train

TASKS = task_names()


def test_the_built_in_tasks_are_found_by_the_registry():
    assert {"classification", "iqa", "segmentation", "detection"} <= set(TASKS)


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path_factory.getbasetemp() / "task-cache"))


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_and_evaluates_its_example(task, tmp_path, cache):
    spec = get_task(task)
    assert spec.example is not None, f"task {task} declares no example run: the registry cannot test it"
    assert spec.mode in ("min", "max") and spec.metrics
    cfg = TrainConfig.from_dict({**spec.example(), "task": task, "workers": 0, "precise_bn": 1,
                                 "output": str(tmp_path / "run")})  # fmt: skip
    data = spec.data(cfg)
    images, _ = next(iter(data.train_dataloader()))
    assert images.dtype == torch.uint8 and images.is_contiguous(memory_format=torch.channels_last), task
    assert tuple(images.shape[-2:]) == cfg.input_size

    run = RunFolder(train(cfg))
    assert run.status == "finished"
    metrics = run.metrics()
    first = next(iter(spec.metrics))
    assert first in metrics and all(isinstance(metrics[k], float) for k in spec.metrics if k in metrics)
    again = evaluate(run.path)
    assert again[first] == pytest.approx(metrics[first], abs=1e-6), task  # last.ckpt is what finished


def test_every_setting_of_every_task_has_a_flag_a_help_text_and_a_yaml_key():
    import argparse

    from taskresize.commands.train import add_arguments, overrides

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {a.dest: a for a in parser._actions}
    for item in dataclasses.fields(TrainConfig):
        assert item.name in flags, f"TrainConfig.{item.name} has no flag"
        assert flags[item.name].help and len(flags[item.name].help) > 20, item.name
    default = TrainConfig()
    for task in TASKS:  # a task's defaults are TrainConfig keys: its config files and flags need nothing new
        assert set(get_task(task).defaults) <= set(default.to_dict()), task
    given = parser.parse_args(["--batch-size", "8", "--no-augment", "--crop-scale", "0.5", "1", "--out-size", "48"])
    assert overrides(given) == {"batch_size": 8, "augment": False, "crop_scale": [0.5, 1.0], "out_size": "48"}
    # the help states each default as the dataclass declares it, never restated by hand
    assert "(default 32)" in flags["batch_size"].help and "(default 224)" in flags["out_size"].help
    assert "(default on)" in flags["augment"].help and "(default 0.25 1.0)" in flags["crop_scale"].help


@pytest.mark.parametrize(
    ("resizer", "scale", "freeze_backbone"),
    [("learnable", 0.1, False), ("downsizenet", 3.0, False), ("learnable", 0.5, True), ("bilinear", 0.1, False)],
)
def test_the_resizer_learns_at_its_own_rate_and_every_trainable_parameter_once(resizer, scale, freeze_backbone):
    from taskresize.training.tasks.classification import ClassificationTask

    cfg = TrainConfig(resizer=resizer, backbone="timm:resnet10t", in_size=[48, 48], out_size=[32, 32], lr=0.02,
                      resizer_lr_scale=scale, freeze_backbone=freeze_backbone)  # fmt: skip
    task = ClassificationTask(cfg.to_dict(), num_outputs=3)
    optimizer = task.configure_optimizers()["optimizer"]
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    trainable = [p for p in task.parameters() if p.requires_grad]
    assert len(rates) == sum(len(g["params"]) for g in optimizer.param_groups) == len(trainable)
    for p in task.resizer.parameters():
        assert rates[id(p)] == pytest.approx(0.02 * scale)
    for p in task.backbone.parameters():
        assert (id(p) in rates) != freeze_backbone
        if not freeze_backbone:
            assert rates[id(p)] == 0.02


def test_frozen_backbone_batchnorm_keeps_its_statistics_while_its_affine_and_the_resizer_learn():
    from torch import nn

    from taskresize.training.tasks.classification import ClassificationTask

    cfg = TrainConfig(resizer="learnable", backbone="timm:resnet10t", in_size=[48, 48], out_size=[32, 32], lr=0.1,
                      freeze_backbone_bn=True)  # fmt: skip
    task = ClassificationTask(cfg.to_dict(), num_outputs=3).train()
    norms = [m for m in task.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = {k: v.clone() for k, v in task.state_dict().items()}
    optimizer = task.configure_optimizers()["optimizer"]
    loss = task.training_loss(torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8),
                              lambda logits: logits.logsumexp(1).mean())  # fmt: skip
    loss.backward()
    optimizer.step()
    after = task.state_dict()
    for name, module in task.backbone.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert not module.training
            for stat in ("running_mean", "running_var"):
                torch.testing.assert_close(after[f"backbone.{name}.{stat}"], before[f"backbone.{name}.{stat}"])
    assert any(not torch.equal(after[f"backbone.{n}.weight"], before[f"backbone.{n}.weight"])
               for n, m in task.backbone.named_modules() if m in norms)  # fmt: skip
    assert not torch.equal(after["resizer.stem.4.running_mean"], before["resizer.stem.4.running_mean"])
    assert task.resizer.training and all(m.training for m in task.resizer.modules())
    assert not {id(m) for m in norms} & {id(m) for m in task.trainable_batchnorms()}
    assert task.trainable_batchnorms()  # the resizer's


def test_a_run_from_pretrained_weights_starts_with_a_zero_classifier_and_says_so(tmp_path):
    from safetensors.torch import save_file

    from taskresize.backbones import create_backbone
    from taskresize.training.run import _initialise, build

    donor = create_backbone("timm:resnet10t", num_classes=1000)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, tmp_path / "w.safetensors")
    cfg = TrainConfig(
        data="builtin", backbone="timm:resnet10t", out_size=[32, 32], pretrained=str(tmp_path / "w.safetensors")
    )
    _, _, task = build(cfg)
    loaded = _initialise(task, cfg)
    assert loaded == [f"backbone <- {cfg.pretrained} (new fc.bias, fc.weight); new fc zeroed"]
    assert not task.backbone.fc.weight.any() and not task.backbone.fc.bias.any()
    torch.testing.assert_close(task.backbone.conv1[0].weight, donor.conv1[0].weight, rtol=0, atol=0)
