"""Saving and loading resizers: safetensors + JSON config, no pickle."""

import json
import pickle

import pytest
import torch
from safetensors import safe_open

from taskresize import create_resizer, list_resizers, load_resizer, save_resizer
from taskresize.io import ResizerFileError, read_resizer_header


def trained_like(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(20, 30))
    m.train()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    with torch.no_grad():
        m(torch.randn(4, 3, 50, 60))  # moves BatchNorm running statistics away from their defaults
    return m.eval()


@pytest.mark.parametrize("name", list_resizers())
def test_round_trip(name, tmp_path):
    m = trained_like(name)
    path = save_resizer(m, tmp_path / f"{name}.safetensors", provenance={"backbone": "resnet18"})
    loaded = load_resizer(path)
    assert type(loaded) is type(m) and loaded.config() == m.config() and not loaded.training
    x = torch.randn(2, 3, 50, 60)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    header = read_resizer_header(path)
    assert header["name"] == name and header["provenance"] == {"backbone": "resnet18"}


def test_header_is_plain_json_in_safetensors_metadata(tmp_path):
    path = save_resizer(create_resizer("learnable", n=8, r=2), tmp_path / "r.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["taskresize"])
    assert header["config"]["n"] == 8 and header["config"]["r"] == 2


def test_run_folder_resolves_to_its_resizer(tmp_path):
    save_resizer(create_resizer("muller"), tmp_path / "resizer.safetensors")
    assert load_resizer(tmp_path).resizer_name == "muller"


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ResizerFileError, match=r"evil\.safetensors"):
        load_resizer(path)
    assert not marker.exists()


def test_missing_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(ResizerFileError, match="does not exist"):
        load_resizer(tmp_path / "nope.safetensors")
    with pytest.raises(ResizerFileError, match=r"without resizer\.safetensors"):
        load_resizer(tmp_path)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ResizerFileError, match="without a taskresize header"):
        load_resizer(tmp_path / "plain.safetensors")


def test_a_fused_copy_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="fuse"):
        save_resizer(trained_like("learnable").fuse(), tmp_path / "fused.safetensors")


def test_provenance_round_trips_through_the_flat_json_a_resizer_file_holds(tmp_path):
    from taskresize.data.normalization import IMAGENET
    from taskresize.io import Provenance, read_resizer_header

    flat = {"top1_error": 0.25, "flops_total": 1234, "task": "classification", "backbone": "timm:resnet10t",
            "in_size": [64, 64], "out_size": [32, 32], "pre_resize": "area", "pre_resize_antialias": False,
            "normalization": IMAGENET.to_dict(), "run": "runs/x", "date": "2026-12-02T00:00:00",
            "newer_key": "kept", "a_flag": True}  # fmt: skip
    provenance = Provenance.from_dict(flat)
    assert provenance.normalization == IMAGENET and provenance.pre_resize == "area"
    assert provenance.metrics == {"top1_error": 0.25, "flops_total": 1234}
    assert provenance.extra == {"newer_key": "kept", "a_flag": True}
    assert provenance.to_dict() == flat
    path = save_resizer(create_resizer("learnable", output_size=8), tmp_path / "r.safetensors", provenance)
    assert Provenance.from_dict(read_resizer_header(path)["provenance"]) == provenance
    assert Provenance.from_dict(None) == Provenance() and Provenance().to_dict() == {"pre_resize_antialias": True}
