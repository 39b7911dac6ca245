"""Backbones: torchvision and timm by name, local weights, classifier replacement, no downloads."""

import pickle

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from taskresize.backbones import (
    BackboneError,
    create_backbone,
    load_weights,
    read_state_dict,
    resolve_backbone_name,
    zero_new_classifiers,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("torchvision:resnet50", ("torchvision", "resnet50")), ("timm:mobilenetv2_100", ("timm", "mobilenetv2_100")),
     ("resnet18", ("torchvision", "resnet18")), ("resnet10t", ("timm", "resnet10t"))],
)  # fmt: skip
def test_names(name, expected):
    assert resolve_backbone_name(name) == expected


def test_unknown_names_suggest_close_ones():
    with pytest.raises(BackboneError, match="torchvision:resnet18"):
        resolve_backbone_name("resnet19")
    with pytest.raises(BackboneError, match="prefix"):
        resolve_backbone_name("keras:resnet50")


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet10t"])
def test_outputs(name):
    model = create_backbone(name, num_classes=7).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize("suffix", ["safetensors", "pth"])
def test_local_weights_load_and_the_classifier_is_replaced(tmp_path, suffix):
    donor = create_backbone("torchvision:resnet18", num_classes=1000)
    path = tmp_path / f"w.{suffix}"
    if suffix == "safetensors":
        save_file(donor.state_dict(), str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}}, path)
    model = create_backbone("torchvision:resnet18", num_classes=5, pretrained=path)
    assert torch.equal(model.conv1.weight, donor.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, donor.layer4[1].bn2.running_var)
    assert model.fc.weight.shape == (5, 512)
    same = create_backbone("torchvision:resnet18", num_classes=1000, pretrained=path)
    assert torch.equal(same.fc.weight, donor.fc.weight)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(create_backbone("torchvision:resnet18", 10).state_dict(), str(path))
    with pytest.raises(BackboneError, match="does not fit torchvision:resnet34"):
        create_backbone("torchvision:resnet34", 10, pretrained=path)


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": Payload()}))
    with pytest.raises(BackboneError, match="weights-only loading refuse"):
        read_state_dict(path)
    assert not marker.exists()


def test_timm_weights_for_another_size_are_resampled_to_the_models(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file(create_backbone("timm:vit_tiny_patch16_224", 10).state_dict(), str(path))  # 14x14 patches
    model = create_backbone("timm:vit_tiny_patch16_224", 10, pretrained=path, size=(96, 128))
    assert model.pos_embed.shape == (1, 1 + 6 * 8, 192)
    assert model(torch.randn(1, 3, 96, 128)).shape == (1, 10)


def test_weights_without_auxiliary_classifiers_leave_them_fresh(tmp_path):
    path = tmp_path / "googlenet.safetensors"
    donor = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)  # as torchvision saves it
    save_file(donor.state_dict(), str(path))
    model = create_backbone("torchvision:googlenet", 1000, pretrained=path, size=(96, 96))
    assert model.aux1 is not None and torch.equal(model.conv1.conv.weight, donor.conv1.conv.weight)
    assert load_weights(model, path)[0].startswith("aux1.")


@pytest.mark.parametrize(
    ("backbone", "head"),
    [("torchvision:resnet18", "fc"), ("torchvision:mobilenet_v3_small", "classifier.3"),
     ("timm:tf_efficientnet_lite0", "classifier"), ("timm:resnet10t", "fc")],
)  # fmt: skip
def test_a_new_classifier_from_pretrained_weights_starts_at_zero_and_nothing_else_moves(backbone, head, tmp_path):
    donor = create_backbone(backbone, num_classes=1000)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, tmp_path / "w.safetensors")
    model = create_backbone(backbone, num_classes=7)
    new = load_weights(model, tmp_path / "w.safetensors")
    assert sorted(new) == [f"{head}.bias", f"{head}.weight"]
    assert zero_new_classifiers(model, new) == [head]
    state = model.state_dict()
    assert not state[f"{head}.weight"].any() and not state[f"{head}.bias"].any()
    for key, value in donor.state_dict().items():
        if not key.startswith(f"{head}."):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_only_linear_layers_are_zeroed():
    model = torchvision.models.resnet18(num_classes=3)
    assert zero_new_classifiers(model, ["conv1.weight", "bn1.weight"]) == []
    assert model.conv1.weight.abs().sum() > 0
