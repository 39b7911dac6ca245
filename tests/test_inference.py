"""Using resizers on images: resize_image, the resize command on folders of real files, show and info."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from taskresize import create_resizer, load_resizer, resize, resize_image, save_resizer
from taskresize.data.decode import load_image
from taskresize.data.normalization import IMAGENET
from taskresize.experiments.figures import at_common_size
from taskresize.inference.files import OutputConflictError, plan_jobs, resize_files
from taskresize.inference.image import fit_size, load_image_resizer
from taskresize.inference.pixels import PixelResizer
from taskresize.training.config import load_config
from taskresize.training.run import train

from helpers import cli, colour_folders
from imaging import synthetic_image

NORMALIZATION = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 50.0, 40.0]}


def trained_like(name="learnable", seed=0, **kwargs):
    """A resizer with random weights and BatchNorm statistics away from their defaults, in eval mode."""
    torch.manual_seed(seed)
    m = create_resizer(name, **kwargs)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 3, 40, 40))
    return m.eval()


@pytest.fixture(scope="module")
def resizer_file(tmp_path_factory):
    """A learned resizer file with provenance: trained on 40 px inputs, 16x24 outputs, its own normalisation."""
    path = tmp_path_factory.mktemp("resizer") / "r.safetensors"
    provenance = {"in_size": [40, 40], "out_size": [16, 24], "normalization": NORMALIZATION, "backbone": "x"}
    return save_resizer(trained_like(output_size=(16, 24)), path, provenance=provenance)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run folder: one epoch of the learnable resizer on a tiny generated class-folder set."""
    root = tmp_path_factory.mktemp("run")
    data = colour_folders(root / "data", per_class=3, size=24)
    cfg = load_config(None, {"data": str(data), "output": str(root / "run"), "resizer": "learnable", "in_size": 32,
                             "out_size": 16, "epochs": 1, "batch_size": 3, "workers": 0, "lr": 0.01,
                             "precise_bn": 1, "backbone": "timm:resnet10t"})  # fmt: skip
    return train(cfg), data


def write_images(folder, count=5, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = 30 + 7 * i, 50 - 3 * i
        Image.fromarray(synthetic_image(h, w, seed=seed + i)).save(folder / f"img{i}.png")
    return folder


def digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def read(path):
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def size_of(path):
    with Image.open(path) as image:
        return image.size, image.mode


# ---- the Python API --------------------------------------------------------------------------------------------


def test_resize_image_returns_the_kind_it_was_given(resizer_file):
    array = synthetic_image(50, 70)
    out = resize_image(Image.fromarray(array).convert("RGBA"), resizer_file)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (24, 16)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    single = resize_image(tensor, resizer_file)
    assert single.dtype == torch.uint8 and single.shape == (3, 16, 24)
    assert torch.equal(single, torch.from_numpy(np.array(out)).permute(2, 0, 1))
    batch = resize_image(torch.stack([tensor, tensor.flip(-1)]), resizer_file, size=(10, 12))
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 10, 12)
    floats = resize_image(tensor.double() / 255, resizer_file, in_size=None)
    assert floats.dtype == torch.float64 and floats.shape == (3, 16, 24)
    assert floats.min() >= 0 and floats.max() <= 1
    rounded = resize_image(tensor, resizer_file, in_size=None)
    assert (floats * 255 - rounded.double()).abs().max() <= 0.5 + 1e-3  # the same pixels before rounding


def test_a_file_brings_its_normalisation_and_training_input_size(resizer_file):
    image = torch.from_numpy(synthetic_image(64, 48, seed=3)).permute(2, 0, 1)
    module = load_resizer(resizer_file)
    pre = resize(image, (40, 40), "bilinear", antialias=True)  # the training data loader's pre-resize
    expected = resize_image(pre, module, normalization=NORMALIZATION)
    assert torch.equal(resize_image(image, resizer_file), expected)
    by_hand = module((pre[None].float() - torch.tensor(NORMALIZATION["mean"]).view(1, 3, 1, 1))
                     / torch.tensor(NORMALIZATION["std"]).view(1, 3, 1, 1))  # fmt: skip
    by_hand = by_hand * torch.tensor(NORMALIZATION["std"]).view(1, 3, 1, 1) + torch.tensor(NORMALIZATION["mean"]).view(
        1, 3, 1, 1
    )
    assert (by_hand.detach()[0].round().clamp(0, 255) - expected.float()).abs().max() <= 1
    # without a file, ImageNet's normalisation and no pre-resize
    direct = resize_image(image, module)
    assert direct.shape == (3, 16, 24) and not torch.equal(direct, expected)


def test_default_normalisation_is_imagenets_and_the_one_training_uses():
    from torchvision.models import ResNet18_Weights

    from taskresize.training.config import TrainConfig
    from taskresize.training.tasks.classification import ClassificationTask

    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()  # torchvision's own record of the statistics
    assert pytest.approx([v * 255 for v in preset.mean]) == IMAGENET.mean
    assert pytest.approx([v * 255 for v in preset.std]) == IMAGENET.std
    task = ClassificationTask(TrainConfig(out_size=[32, 32], backbone="timm:resnet10t").to_dict(), num_outputs=3)
    assert task.normalization() == IMAGENET
    pixels = PixelResizer(create_resizer("learnable", output_size=8))
    assert pixels.normalization == IMAGENET and pixels.mean.flatten().tolist() == pytest.approx(IMAGENET.mean)


@pytest.mark.parametrize("method", ["bicubic", "lanczos", "area", "bilinear", "nearest"])
def test_a_classic_method_is_exactly_taskresize_resize_in_uint8(method):
    image = torch.from_numpy(synthetic_image(45, 61, seed=1)).permute(2, 0, 1)
    assert torch.equal(resize_image(image, method, (20, 33)), resize(image, (20, 33), method, antialias=True))


def test_fit_size_is_pillows_contain():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w, bh, bw = (int(v) for v in rng.integers(1, 400, 4))
        expected = ImageOps.contain(Image.new("L", (w, h)), (bw, bh)).size[::-1]
        assert fit_size((h, w), (bh, bw)) == tuple(max(1, v) for v in expected), (h, w, bh, bw)
    assert fit_size((1000, 1), (10, 10)) == (10, 1)  # never 0 px


def test_a_run_folder_brings_its_pre_resize_method(tmp_path):
    save_resizer(trained_like(output_size=8), tmp_path / "resizer.safetensors", provenance={"in_size": [20, 20]})
    (tmp_path / "config.yaml").write_text("pre_resize: bicubic\npre_resize_antialias: false\n")
    loaded = load_image_resizer(tmp_path)
    assert loaded.pre_resize == ("bicubic", False) and loaded.in_size == (20, 20)
    assert load_image_resizer(tmp_path / "resizer.safetensors").pre_resize == ("bicubic", False)
    image = torch.from_numpy(synthetic_image(33, 41)).permute(2, 0, 1)
    pre = resize(image, (20, 20), "bicubic", antialias=False)
    assert torch.equal(resize_image(image, tmp_path), resize_image(pre, tmp_path, in_size=None))


def test_unknown_resizer_names_the_choices_and_a_method_needs_a_size():
    with pytest.raises(ValueError, match="bicubic"):
        load_image_resizer("bicubik")
    with pytest.raises(ValueError, match="needs a size"):
        resize_image(torch.zeros(3, 8, 8, dtype=torch.uint8), "bicubic")


# ---- the resize command ----------------------------------------------------------------------------------------


def test_round_trip_trained_run_cli_equals_in_process(run, tmp_path):
    run_dir, data = run
    before = digest(data)
    out = tmp_path / "out"
    assert cli("resize", "--resizer", run_dir, data, "--output", out, "--batch-size", 1) == 0
    sources = sorted(p for p in data.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == [
        p.relative_to(data).with_suffix(".png") for p in sources
    ]
    for source in sources:
        with Image.open(source) as image:
            expected = resize_image(image, run_dir)
        assert expected.size == (16, 16)
        assert np.array_equal(read(out / source.relative_to(data).with_suffix(".png")).permute(1, 2, 0).numpy(),
                              np.array(expected)), source  # fmt: skip
    # batched (and decoded in a worker process): float rounding may move a pixel by one grey level, no more
    batched = tmp_path / "batched"
    assert cli("resize", "--resizer", run_dir, data, "--output", batched, "--batch-size", 4, "--workers", 1) == 0
    for path in out.rglob("*.png"):
        assert (read(path).int() - read(batched / path.relative_to(out)).int()).abs().max() <= 1
    assert digest(data) == before


@pytest.mark.parametrize("engine", ["onnxruntime", "compile"])
def test_other_engines_give_the_same_images_within_one_grey_level(engine, run, tmp_path, capsys):
    run_dir, data = run
    outputs = {}
    for kind in ("torch", engine):
        outputs[kind] = tmp_path / kind
        assert cli("resize", "--resizer", run_dir, data, "--output", outputs[kind], "--batch-size", 4,
                   "--engine", kind) == 0  # fmt: skip
    assert f"(run by {engine})" in capsys.readouterr().err  # the engine was used, not silently replaced by torch
    written = sorted(outputs["torch"].rglob("*.png"))
    assert written and len(written) == len(list(outputs[engine].rglob("*.png")))
    for path in written:
        assert (read(path).int() - read(outputs[engine] / path.relative_to(outputs["torch"])).int()).abs().max() <= 1


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine 'tensorrt' is not one of torch, compile, onnxruntime"):
        load_image_resizer("bicubic", engine="tensorrt")


def make_odd_files(root):
    """Nested folders with every kind of file the resize command meets; returns (good, bad) relative paths."""
    rng = np.random.default_rng(0)
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    (root / "c").mkdir()
    rgb = synthetic_image(30, 40)
    Image.fromarray(rgb).save(root / "plain.png")
    rgba = np.concatenate([rgb, rng.integers(0, 256, (30, 40, 1), dtype=np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(root / "a" / "rgba.png")
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(root / "a" / "palette.png", transparency=0)
    Image.fromarray(rng.integers(0, 65536, (30, 40), dtype=np.uint16)).save(deep / "sixteen.png")
    Image.fromarray(rgb).convert("CMYK").save(deep / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: stored 30x40 (h x w) shows as 40x30
    Image.fromarray(rgb).save(root / "c" / "rotated.jpg", exif=exif)
    Image.fromarray(rgb).save(root / "c" / "photo.webp")
    whole = (root / "plain.png").read_bytes()
    (root / "c" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "c" / "empty.png").write_bytes(b"")
    (deep / "text.jpg").write_text("this is not a JPEG\n")
    (root / "notes.txt").write_text("not an image, and not named like one\n")
    good = ["plain.png", "a/rgba.png", "a/palette.png", "a/b/sixteen.png", "a/b/cmyk.jpg", "c/rotated.jpg",
            "c/photo.webp"]  # fmt: skip
    bad = ["c/truncated.png", "c/empty.png", "a/b/text.jpg"]
    return good, bad


@pytest.mark.parametrize("resizer", ["learned", "lanczos"])
def test_odd_files_good_ones_written_bad_ones_reported(resizer, resizer_file, tmp_path, capsys):
    root = tmp_path / "in"
    good, bad = make_odd_files(root)
    before = digest(root)
    out = tmp_path / "out"
    spec = resizer_file if resizer == "learned" else resizer
    assert cli("resize", "--resizer", spec, root, "--output", out, "--out-size", "12x20", "--format", "jpg") == 1
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(str(p.rsplit(".", 1)[0]) + ".jpg" for p in good)
    captured = capsys.readouterr()
    assert "skipped 3 files" in captured.out and "ignored 1 file" in captured.out
    for name in bad:  # told once, as it happens
        assert str(root / name) not in captured.out and captured.err.count(str(root / name)) == 1
    assert "empty file" in captured.err and "truncated" in captured.err
    for name in good:
        assert size_of(out / (name.rsplit(".", 1)[0] + ".jpg")) == ((20, 12), "RGB"), name
    assert digest(root) == before  # inputs byte for byte unchanged


def test_exif_orientation_and_keep_aspect(tmp_path):
    root = tmp_path / "in"
    make_odd_files(root)
    out = tmp_path / "out"
    assert cli("resize", "--resizer", "bicubic", root / "c" / "rotated.jpg", root / "plain.png", "--output", out,
               "--out-size", 20, "--keep-aspect") == 0  # fmt: skip
    assert size_of(out / "rotated.png")[0] == (15, 20)  # displayed 30 wide, 40 high: fits 20 high
    assert size_of(out / "plain.png")[0] == (20, 15)
    expected = resize(load_image(root / "c" / "rotated.jpg"), (20, 15), "bicubic", antialias=True)
    assert torch.equal(read(out / "rotated.png"), expected)


def test_classic_cli_output_is_exactly_taskresize_resize(tmp_path):
    folder = write_images(tmp_path / "in")
    out = tmp_path / "out"
    assert cli("resize", "--resizer", "lanczos", folder, "--output", out, "--out-size", "17x23", "--workers", 1) == 0
    for path in folder.iterdir():
        expected = resize(load_image(path), (17, 23), "lanczos", antialias=True)
        assert torch.equal(read(out / path.name), expected)


def test_learned_keep_aspect_pre_resizes_and_resizes_inside_both_boxes(resizer_file, tmp_path):
    image = synthetic_image(60, 90, seed=5)
    Image.fromarray(image).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    assert cli("resize", "--resizer", resizer_file, tmp_path / "wide.png", "--output", out, "--keep-aspect") == 0
    got = read(out / "wide.png")
    assert got.shape == (3, 16, 24)  # fit_size((60, 90), (16, 24))
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    pre = resize(tensor, fit_size((60, 90), (40, 40)), "bilinear", antialias=True)  # (27, 40)
    assert pre.shape[-2:] == (27, 40)
    assert torch.equal(got, resize_image(pre, resizer_file, (16, 24), in_size=None))


def test_never_overwrites_an_input(tmp_path, capsys):
    folder = write_images(tmp_path / "in")
    Image.fromarray(synthetic_image(20, 20)).save(folder / "extra.jpg")
    before = digest(folder)
    assert cli("resize", "--resizer", "bicubic", folder, "--output", folder, "--out-size", 10) == 2
    assert "is the input folder" in capsys.readouterr().err
    assert cli("resize", "--resizer", "bicubic", folder, "--output", folder, "--out-size", 10, "--format", "jpg") == 2
    assert cli("resize", "--resizer", "bicubic", folder / "img0.png", "--output", folder, "--out-size", 10) == 2
    err = capsys.readouterr().err
    assert "would overwrite the input" in err and "--format" not in err
    assert digest(folder) == before


def test_out_inside_an_input_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    # formerly, another format into the input folder wrote copies beside the originals, and a folder
    # inside it became a new "class" of the tree it reads
    folder = write_images(tmp_path / "in")
    (folder / "sub").mkdir()
    Image.fromarray(synthetic_image(20, 20)).save(folder / "sub" / "deep.png")
    before = digest(folder)
    for out, fmt in [(folder, "jpg"), (folder / "small", "webp"), (folder / "sub", "png"), (folder / "a" / "b", "jpg")]:
        assert cli("resize", "--resizer", "bicubic", folder, "--output", out, "--out-size", 10, "--format", fmt) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "input folder" in err and str(out) in err and "Traceback" not in err
        assert "--format" not in err  # another format is no way out of writing into the inputs
    assert digest(folder) == before and not (folder / "small").exists() and not (folder / "a").exists()
    # a folder beside the input, and a file given by name into a folder of its own, are fine
    assert cli("resize", "--resizer", "bicubic", folder, "--output", tmp_path / "in-small", "--out-size", 10) == 0
    assert (
        cli("resize", "--resizer", "bicubic", folder / "img0.png", "--output", tmp_path / "one", "--out-size", 10) == 0
    )


def test_unwritable_out_is_refused_before_any_image_is_decoded(tmp_path, capsys, monkeypatch):
    # formerly, every image was decoded and reported twice before "wrote 0 images"
    import taskresize.inference.files as files

    folder = write_images(tmp_path / "in", count=3)
    (tmp_path / "file").write_text("a file")
    decoded = []
    monkeypatch.setattr(files, "load_image", lambda *a, **k: decoded.append(a) or load_image(*a, **k))
    proc = ["/proc/taskresize-test"] if Path("/proc/self").is_dir() else []  # Linux: no folders can be made there
    for out in (tmp_path / "file", tmp_path / "file" / "below", *proc):
        assert cli("resize", "--resizer", "bicubic", folder, "--output", out, "--out-size", 10) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--output {out}" in err and "Traceback" not in err
    assert decoded == []
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert cli("resize", "--resizer", "bicubic", folder, "--output", locked, "--out-size", 10) == 2
        assert "not writable" in capsys.readouterr().err and decoded == []


def test_two_inputs_for_one_output_are_refused(tmp_path):
    folder = write_images(tmp_path / "in", count=1)
    jobs, _ = plan_jobs([folder, folder / "img0.png"], tmp_path / "out", "webp")  # the same file twice: once
    assert len(jobs) == 1
    Image.fromarray(synthetic_image(20, 20)).save(folder / "img0.jpg")
    with pytest.raises(OutputConflictError, match="both be written"):
        plan_jobs([folder], tmp_path / "out", "png")


def test_in_size_none_skips_the_pre_resize_and_max_pixels_skips_large_files(resizer_file, tmp_path, capsys):
    folder = write_images(tmp_path / "in", count=2)
    out = tmp_path / "out"
    assert cli("resize", "--resizer", resizer_file, folder, "--output", out, "--in-size", "none") == 0
    for path in folder.iterdir():
        assert torch.equal(read(out / path.name), resize_image(load_image(path), resizer_file, in_size=None))
    assert cli("resize", "--resizer", resizer_file, folder, "--output", tmp_path / "o2", "--max-pixels", 1000) == 1
    assert "skipped 2 files" in capsys.readouterr().out and not (tmp_path / "o2").exists()


def test_user_errors_are_one_line(tmp_path, capsys):
    folder = write_images(tmp_path / "in", count=1)
    assert cli("resize", "--resizer", "bicubic", folder, "--output", tmp_path / "o") == 2  # no --size
    assert cli("resize", "--resizer", "nonsense", folder, "--output", tmp_path / "o", "--out-size", 8) == 2
    assert cli("resize", "--resizer", "bicubic", tmp_path / "missing", "--output", tmp_path / "o", "--out-size", 8) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("taskresize resize: error:") for line in err)


# ---- show and info ---------------------------------------------------------------------------------------------


def test_info_on_a_run_folder(run, capsys):
    run_dir, _ = run
    assert cli("info", run_dir, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    module = load_resizer(run_dir)
    assert info["resizer"] == "learnable" and info["config"] == module.config()
    assert info["parameters"] == sum(p.numel() for p in module.parameters())
    assert info["flops_at"] == {"in_size": [32, 32], "out_size": [16, 16], "from_provenance": True}
    assert info["flops"] == json.loads((run_dir / "metrics.json").read_text())["flops_resizer"]
    assert info["provenance"]["backbone"] == "timm:resnet10t" and "date" in info["provenance"]
    assert info["metrics"]["epochs"] == 1
    assert cli("info", run_dir) == 0
    text = capsys.readouterr().out
    assert "learnable (LearnableResizer)" in text and "metrics.json:" in text and "backbone: timm:resnet10t" in text


def test_info_without_provenance_counts_flops_at_the_output_size(tmp_path, capsys):
    path = save_resizer(create_resizer("muller", output_size=(12, 20)), tmp_path / "m.safetensors")
    assert cli("info", path) == 0
    text = capsys.readouterr().out
    assert "at 12x20 -> 12x20 (no training input size recorded" in text and "provenance:  none recorded" in text


def test_info_refuses_a_non_resizer(tmp_path, capsys):
    (tmp_path / "x.safetensors").write_bytes(b"nonsense")
    assert cli("info", tmp_path / "x.safetensors") == 2
    assert "x.safetensors" in capsys.readouterr().err


def test_show_writes_a_figure(resizer_file, tmp_path):
    for i in range(2):
        Image.fromarray(synthetic_image(50 + 10 * i, 60, seed=i)).save(tmp_path / f"{i}.png")
    out = tmp_path / "fig.png"
    assert cli("show", "--resizer", resizer_file, tmp_path / "0.png", tmp_path / "1.png", "--output", out) == 0
    (width, height), _ = size_of(out)
    assert width / height == pytest.approx(4 / 2)  # input, bicubic, learned, difference; two rows


def test_figures_never_shrink_a_panel_of_an_up_scaling_resizer():
    small = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)  # the input of a x4 up-scaler
    large = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)  # its output
    shown_input, shown_output = at_common_size([small, large])
    assert torch.equal(shown_output, large)  # every output pixel drawn
    assert torch.equal(shown_input, small.repeat_interleave(4, -1).repeat_interleave(4, -2))  # blocks of 4 x 4
    assert [b.shape for b in at_common_size([large, small])] == [large.shape] * 2  # down-scaling: the input's size


def test_batches_of_files_keep_to_a_pixel_budget(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(synthetic_image(40, 30, seed=i)).save(folder / f"{i}.png")
    resizer = load_image_resizer(create_resizer("learnable", output_size=8), in_size=None)
    sizes = []
    finish = resizer.finish
    resizer.finish = lambda batch, out: sizes.append(len(batch)) or finish(batch, out)
    jobs, _ = plan_jobs([folder], tmp_path / "out", "png")
    summary = resize_files(jobs, resizer, batch_size=100, batch_pixels=3 * 40 * 30, progress=False)
    assert summary.written == 7 and sizes == [3, 3, 1]
    sizes.clear()
    resize_files(jobs, resizer, batch_size=100, batch_pixels=100, progress=False)  # one image over the budget alone
    assert sizes == [1] * 7
