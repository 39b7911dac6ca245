"""Configuration: defaults, YAML, flags, validation."""

import pytest

from taskresize.commands.train import overrides
from taskresize.training.config import ConfigError, TrainConfig, load_config


def test_defaults_are_the_papers_recipe():
    cfg = TrainConfig()
    assert (cfg.momentum, cfg.lr_decay, cfg.lr_decay_epochs, cfg.label_smoothing) == (0.9, 0.94, 2, 0.1)
    assert TrainConfig(batch_size=128).learning_rate == 0.05  # the paper's, at its batch size
    assert TrainConfig(batch_size=128, init="runs/x").learning_rate == 0.005
    assert cfg.batch_size == 32 and cfg.learning_rate == 0.0125  # linearly scaled
    assert TrainConfig(init="runs/x", lr=0.1).learning_rate == 0.1
    assert TrainConfig(pretrained="efficientnet-lite0").learning_rate == 0.01  # measured: docs/results.md
    assert TrainConfig(pretrained="efficientnet-lite0", init="runs/x").learning_rate == 0.005 * 32 / 128
    assert TrainConfig(out_size=64).input_size == (64, 64)
    assert TrainConfig(out_size=64, in_size="128x96").to_dict()["in_size"] == [128, 96]


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("resizer: learnable\nepochs: 3\nout-size: 64\nresizer_args: {n: 8}\n")
    cfg = load_config(path, {"epochs": 5})
    assert (cfg.resizer, cfg.epochs, cfg.out_size, cfg.resizer_args) == ("learnable", 5, [64, 64], {"n": 8})


@pytest.mark.parametrize(
    ("values", "message"),
    [({"epocs": 3}, "Did you mean 'epochs'"), ({"epochs": 0}, "positive integer"), ({"out_size": "224x"}, "size"),
     ({"val_split": 1.5}, "between 0 and 1"), ({"precision": "fp8"}, "32-true"), ({"accelerator": "tpu"}, "cpu, gpu"),
     ({"crop_scale": [0.5, 0.1]}, "min")],
)  # fmt: skip
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_bad_yaml(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_resizer_args_flag_must_be_a_json_object():
    import argparse

    assert overrides(argparse.Namespace(resizer_args='{"n": 8}'))["resizer_args"] == {"n": 8}
    with pytest.raises(ConfigError, match="JSON"):
        overrides(argparse.Namespace(resizer_args="{n: 8}"))


@pytest.mark.parametrize(("key", "value"), [("lr", float("inf")), ("lr", float("nan")), ("weight_decay", float("inf"))])
def test_learning_rate_and_weight_decay_must_be_finite(key, value):
    from taskresize.training.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=key):
        TrainConfig(**{key: value})


def test_the_default_learning_rate_scales_with_the_global_batch(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    one = TrainConfig(batch_size=32)
    assert one.learning_rate == pytest.approx(0.05 * 32 / 128)
    four = TrainConfig(batch_size=32, devices=2, num_nodes=2)
    assert four.global_batch_size == 128 and four.learning_rate == pytest.approx(0.05)
    assert TrainConfig(batch_size=32, devices=4, lr=0.1).learning_rate == 0.1  # a given rate is kept
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's launch: its world size counts
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert TrainConfig(batch_size=16).learning_rate == pytest.approx(0.05)
