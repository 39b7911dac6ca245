"""Hub weights (``pretrained="default"``, torchvision weights names, timm tags) from local caches, offline."""

from __future__ import annotations

import json
import os

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from taskresize.backbones import create_backbone, pretrained_normalization
from taskresize.data.normalization import IMAGENET, Normalization
from taskresize.errors import BackboneError

TIMM_MODEL = "test_resnet"  # timm's tiny test network (0.5M parameters), weights timm/test_resnet.r160_in1k
TV_MODEL = "mobilenet_v3_small"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def recognisable(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of the same names and shapes whose values tell each tensor apart (index + 0.001 * position)."""
    out = {}
    for i, (key, value) in enumerate(state.items()):
        if value.is_floating_point():
            out[key] = i + 0.001 * torch.arange(value.numel(), dtype=value.dtype).reshape(value.shape)
        else:
            out[key] = torch.full_like(value, i)
    return out


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache as $HF_HOME/hub, offline; torch hub's cache under $TORCH_HOME, empty too."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf" / "hub"


def fill_hf_cache(cache, hub_id: str, state: dict[str, torch.Tensor]) -> None:
    """``state`` as the hub's ``model.safetensors`` of ``hub_id``, in huggingface_hub's cache layout."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text(json.dumps({"architecture": TIMM_MODEL, "num_classes": 1000}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


@pytest.mark.parametrize("pretrained", ["default", "test_resnet.r160_in1k", "r160_in1k"])
def test_timm_weights_come_from_the_hf_cache_offline(hf_cache, pretrained):
    cfg = timm.get_pretrained_cfg(TIMM_MODEL)
    assert cfg.hf_hub_id == "timm/test_resnet.r160_in1k"
    state = recognisable(timm.create_model(TIMM_MODEL, pretrained=False).state_dict())
    fill_hf_cache(hf_cache, cfg.hf_hub_id, state)
    model = create_backbone(f"timm:{TIMM_MODEL}", 1000, pretrained=pretrained)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key in [*list(state)[:3], "fc.weight", "fc.bias"]:
        assert torch.equal(loaded[key], state[key]), key


def test_timm_weights_of_another_class_count_keep_a_fresh_classifier(hf_cache):
    state = recognisable(timm.create_model(TIMM_MODEL, pretrained=False).state_dict())
    fill_hf_cache(hf_cache, timm.get_pretrained_cfg(TIMM_MODEL).hf_hub_id, state)
    model = create_backbone(f"timm:{TIMM_MODEL}", 7, pretrained="default")
    loaded = model.state_dict()
    assert loaded["fc.weight"].shape == (7, state["fc.weight"].shape[1])
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_torchvision_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the cached file is enough: no request is made
    weights = torchvision.models.get_model_weights(TV_MODEL)["IMAGENET1K_V1"]
    state = recognisable(torchvision.models.get_model(TV_MODEL, weights=None).state_dict())
    # torch hub checks the hash prefix of the name (-047dcff4) only on download, not for a cached file
    cached = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(weights.url)
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    model = create_backbone(f"torchvision:{TV_MODEL}", 1000, pretrained="IMAGENET1K_V1")
    loaded = model.state_dict()
    for key in [*list(state)[:3], "classifier.3.weight"]:
        assert torch.equal(loaded[key], state[key]), key
    fewer = create_backbone(f"torchvision:{TV_MODEL}", 5, pretrained="DEFAULT").state_dict()
    assert fewer["classifier.3.weight"].shape[0] == 5
    assert torch.equal(fewer["classifier.0.weight"], state["classifier.0.weight"])


@pytest.mark.parametrize(
    ("backbone", "pretrained", "where"),
    [
        (f"timm:{TIMM_MODEL}", "default", "models--timm--test_resnet.r160_in1k"),
        (f"torchvision:{TV_MODEL}", "IMAGENET1K_V1", "mobilenet_v3_small-047dcff4.pth"),
    ],
)
def test_offline_with_an_empty_cache_is_one_clear_error(hf_cache, backbone, pretrained, where):
    with pytest.raises(BackboneError) as caught:
        create_backbone(backbone, 10, pretrained=pretrained)
    message = str(caught.value)
    assert "\n" not in message
    assert where in message and str(hf_cache.parent.parent) in message
    assert "HF_HUB_OFFLINE=1" in message and "--pretrained PATH" in message


def test_unknown_hub_weights_are_refused_with_close_names():
    with pytest.raises(BackboneError, match="IMAGENET1K_V1"):
        create_backbone(f"torchvision:{TV_MODEL}", 10, pretrained="IMAGENET1K_V3")
    with pytest.raises(BackboneError, match=r"test_resnet\.r160_in1k"):
        create_backbone(f"timm:{TIMM_MODEL}", 10, pretrained="resnet50.a1_in1k")


def test_pretrained_normalization(tmp_path):
    cfg = timm.get_pretrained_cfg(TIMM_MODEL)
    timm_norm = pretrained_normalization(f"timm:{TIMM_MODEL}", "default")
    assert timm_norm == Normalization.from_unit(cfg.mean, cfg.std)
    assert timm_norm.mean == pytest.approx((127.5,) * 3)
    transforms = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    tv_norm = pretrained_normalization("torchvision:resnet18", "IMAGENET1K_V1")
    assert tv_norm == Normalization.from_unit(transforms.mean, transforms.std)
    assert tv_norm.mean == pytest.approx(IMAGENET.mean)
    lite = pretrained_normalization("timm:tf_efficientnet_lite0", "efficientnet-lite0")
    assert lite.mean == pytest.approx((127.5,) * 3) and lite.std == pytest.approx((127.5,) * 3)
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"")
    assert pretrained_normalization("torchvision:resnet18", path) is None
    assert pretrained_normalization("torchvision:resnet18", None) is None
