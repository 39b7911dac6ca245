"""BatchNorm folding (Resizer.fuse) and exports to ONNX, torch.export (pt2) and TorchScript, checked independently."""

import json
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from taskresize import create_resizer, list_resizers, load_resizer, save_resizer
from taskresize.data.normalization import Normalization
from taskresize.inference.export import ExportError, export_resizer
from taskresize.inference.pixels import PixelResizer
from taskresize.resizers import ClassicResizer
from taskresize.resizers.fuse import ChannelAffine, fold_batchnorms, fold_conv_bn

from helpers import cli

NORMALIZATION = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 50.0, 40.0]}
LEARNED = [name for name in list_resizers() if not isinstance(create_resizer(name), ClassicResizer)]


def count(module, kind):
    return sum(isinstance(m, kind) for m in module.modules())


def trained_like(name, seed=0, **kwargs):
    """Random weights, and BatchNorm statistics and affine parameters far from their defaults, in eval mode."""
    torch.manual_seed(seed)
    m = create_resizer(name, **kwargs)
    for p in m.parameters():
        nn.init.normal_(p, std=0.2)
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 3, 40, 48) * 2 + 0.5)
    return m.eval()


# ---- fuse ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LEARNED)
def test_fuse_is_equivalent_and_removes_every_batchnorm(name):
    m = trained_like(name, output_size=(20, 30))
    state = {k: v.clone() for k, v in m.state_dict().items()}
    fused = m.fuse()
    x = torch.randn(3, 3, 50, 60)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), m(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused(x, (33, 17)), m(x, (33, 17)), rtol=1e-5, atol=1e-5)
    assert count(fused, nn.BatchNorm2d) == 0
    assert count(fused, nn.Conv2d) == count(m, nn.Conv2d)  # folded into convolutions, none added or removed
    assert isinstance(fused, type(m)) and fused.config() == m.config()
    assert not fused.training and not any(p.requires_grad for p in fused.parameters())
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())  # the original is untouched


def test_fuse_of_the_learnable_resizer_folds_into_convolutions_where_it_can():
    m = trained_like("learnable", r=2)
    assert count(m, nn.BatchNorm2d) == 1 + 2 * 2 + 1  # stem, two per residual block, merge
    fused = m.fuse()
    # the stem's BatchNorm follows a LeakyReLU: it becomes a per-channel affine map; the others fold into convs
    assert count(fused, ChannelAffine) == 1 and count(fused, nn.BatchNorm2d) == 0
    assert all(block.body[0].bias is not None and block.body[2].bias is not None for block in fused.blocks)
    assert fused.merge[0].bias is not None and len(fused.merge) == 1
    assert sum(p.numel() for p in fused.parameters()) < sum(p.numel() for p in m.parameters())


def test_fold_conv_bn_handles_missing_bias_and_negative_scale():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.0, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_mean.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.1)
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        expected = model(x)
        single = fold_conv_bn(conv, bn)
        torch.testing.assert_close(single(x), bn(conv(x)), rtol=1e-5, atol=1e-6)
        folded = fold_batchnorms(model)
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-6)
    assert [type(m) for m in folded] == [nn.Conv2d, nn.ReLU, ChannelAffine]


def test_batchnorm_without_running_statistics_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorms(model)


# ---- exports ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resizer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "r.safetensors"
    provenance = {"in_size": [40, 48], "out_size": [16, 24], "normalization": NORMALIZATION}
    return save_resizer(trained_like("learnable", output_size=(16, 24)), path, provenance=provenance)


def pixels(shape, seed=7):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 255


def reference_model(resizer_file):
    """The saved resizer on pixels, unfused, in eager PyTorch."""
    return PixelResizer(load_resizer(resizer_file), Normalization.from_dict(NORMALIZATION), fuse=False)


@pytest.mark.slow
def test_onnx_static_matches_onnxruntime_and_fixes_the_input_size(resizer_file, tmp_path, capsys):
    path = tmp_path / "r.onnx"
    assert cli("export", "--resizer", resizer_file, "--format", "onnx", "--output", path) == 0
    assert "largest absolute difference" in capsys.readouterr().out
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["normalization"]) == NORMALIZATION and meta["resizer"] == "learnable"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = reference_model(resizer_file)
    for batch in (1, 4):  # the batch size is free
        x = pixels((batch, 3, 40, 48))
        with torch.no_grad():
            expected = reference(x).numpy()
        got = session.run(None, {"pixels": x.numpy()})[0]
        assert got.shape == (batch, 3, 16, 24)
        np.testing.assert_allclose(got, expected, atol=0.02)
    with pytest.raises(Exception, match="dimensions"):  # another input size: refused, not silently wrong
        session.run(None, {"pixels": pixels((1, 3, 41, 48)).numpy()})


@pytest.mark.slow
def test_onnx_dynamic_accepts_other_input_sizes(resizer_file, tmp_path, capsys):
    path = tmp_path / "r.onnx"
    assert cli("export", "--resizer", resizer_file, "--format", "onnx", "--dynamic", "--output", path,
               "--out-size", "12x20") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("largest absolute difference") == 2  # checked at two input sizes
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [d for d in session.get_inputs()[0].shape] == ["batch", 3, "height", "width"]
    reference = reference_model(resizer_file)
    for shape in ((1, 3, 40, 48), (2, 3, 23, 71), (1, 3, 96, 31)):
        x = pixels(shape)
        with torch.no_grad():
            expected = reference(x, (12, 20)).numpy()
        np.testing.assert_allclose(session.run(None, {"pixels": x.numpy()})[0], expected, atol=0.02)


@pytest.mark.slow
def test_pt2_dynamic_and_torchscript_static(resizer_file, tmp_path):
    reference = reference_model(resizer_file)
    assert cli("export", "--resizer", resizer_file, "--format", "pt2", "--dynamic", "--output", tmp_path / "r.pt2") == 0
    program = torch.export.load(str(tmp_path / "r.pt2")).module()
    x = pixels((2, 3, 29, 53))
    with torch.no_grad():
        torch.testing.assert_close(program(x), reference(x), rtol=0, atol=1e-3)
    assert cli("export", "--resizer", resizer_file, "--format", "torchscript", "--output", tmp_path / "r.pt") == 0
    with zipfile.ZipFile(tmp_path / "r.pt") as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/taskresize.json"))
        assert json.loads(archive.read(name))["resizer"] == "learnable"
    with pytest.warns(FutureWarning, match="deprecated"):  # torch 2.14 deprecates TorchScript: say so
        traced = torch.jit.load(str(tmp_path / "r.pt"))
    x = pixels((1, 3, 40, 48))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), reference(x), rtol=0, atol=1e-3)


@pytest.mark.slow
def test_a_dynamic_export_that_does_not_generalise_is_not_written(tmp_path):
    # area without antialias is adaptive average pooling: the ONNX export bakes in the example's kernel size
    model = PixelResizer(create_resizer("area", output_size=(8, 12), antialias=False))
    path = tmp_path / "area.onnx"
    with pytest.raises(ExportError, match="does not generalise"):
        export_resizer(model, path, "onnx", (40, 48), dynamic=True)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    report = export_resizer(model, path, "onnx", (40, 48))  # at a fixed input size it is exact
    assert path.is_file() and report.max_difference < 1e-3


def test_an_export_that_fails_is_a_one_line_error(tmp_path, capsys):
    lanczos = save_resizer(
        create_resizer("learnable", interpolation="lanczos", output_size=8), tmp_path / "l.safetensors"
    )
    code = cli("export", "--resizer", lanczos, "--format", "pt2", "--dynamic", "--in-size", 20)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "without --dynamic" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.safetensors"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["learnable", "downsizenet", "muller"])
def test_dynamic_onnx_of_each_learned_resizer_matches_eager(name, tmp_path):
    model = PixelResizer(trained_like(name, output_size=(8, 12)))
    report = export_resizer(model, tmp_path / f"{name}.onnx", "onnx", (30, 26), dynamic=True)
    assert report.max_difference < 1e-2  # pixels 0-255


def test_export_needs_an_input_size_when_the_file_records_none(tmp_path, capsys):
    path = save_resizer(create_resizer("muller", output_size=8), tmp_path / "m.safetensors")
    assert cli("export", "--resizer", path) == 2
    assert "--in-size" in capsys.readouterr().err


@pytest.mark.slow
def test_lanczos_exports_at_a_fixed_size_and_downsizenet_traces_without_warnings(tmp_path):
    # warnings are errors here: the tracers' warnings about what might not generalise are silenced, the check decides
    lanczos = PixelResizer(trained_like("learnable", interpolation="lanczos", output_size=(8, 12)))
    report = export_resizer(lanczos, tmp_path / "l.pt2", "pt2", (30, 26))
    assert report.max_difference < 1e-3
    downsizenet = PixelResizer(trained_like("downsizenet", output_size=(8, 12)))
    report = export_resizer(downsizenet, tmp_path / "d.pt", "torchscript", (30, 26), dynamic=True)
    assert len(report.checks) == 2 and report.max_difference < 1e-3
