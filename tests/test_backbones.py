"""Backbones: torchvision and timm by name, local weights, classifier replacement, no downloads."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from taskresize.backbones import BackboneError, create_backbone, read_state_dict, resolve_backbone_name


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


def test_hub_weights_are_not_downloaded():
    with pytest.raises(BackboneError, match="Nothing is downloaded"):
        create_backbone("torchvision:resnet18", 10, pretrained="DEFAULT")


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
