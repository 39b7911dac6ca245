"""Resizers on the Hugging Face Hub: loading ``hf-hub:`` names from a cache the tests build (offline), and
everything ``push`` sends up to the upload call (huggingface_hub's upload mocked: nothing reaches the Hub)."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi, scan_cache_dir

from taskresize import create_resizer, load_resizer, resize_image, save_resizer
from taskresize.commands import push as push_command
from taskresize.commands.export import default_output
from taskresize.hub import HubError, hub_file, parse_hub_name
from taskresize.inference.image import load_image_resizer
from taskresize.io import Provenance, read_resizer_header
from taskresize.publish import PushError, model_card, prepare_push, push_resizer
from taskresize.training.config import TrainConfig

from helpers import cli

REPO = "someorg/some-resizer"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"
PROVENANCE = Provenance(
    task="classification", backbone="resnet18", data="flowers/", in_size=[64, 64], out_size=[32, 32],
    pre_resize="bilinear", metrics={"top1_error": 0.25, "flops_total": 1.5e8},
)  # fmt: skip


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache as $HF_HOME/hub, offline."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf" / "hub"


def trained(seed=0):
    torch.manual_seed(seed)
    m = create_resizer("learnable", output_size=32, n=8)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    with torch.no_grad():
        m.train()(torch.randn(2, 3, 64, 64))
    return m.eval()


def cache_resizer(cache: Path, module, repo=REPO, commit=COMMIT, branch="main") -> Path:
    """``module`` as ``repo``'s resizer.safetensors at ``commit`` in huggingface_hub's cache layout."""
    base = cache / ("models--" + repo.replace("/", "--"))
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / branch).write_text(commit)
    return save_resizer(module, snapshot / "resizer.safetensors", provenance=PROVENANCE)


def test_parse_hub_names():
    assert parse_hub_name("hf-hub:org/name") == ("org/name", None)
    assert parse_hub_name("hf-hub:org/name.v2@abc") == ("org/name.v2", "abc")
    for bad in ("hf-hub:name", "hf-hub:org/name@", "hf-hub:/x", "hf-hub:a/b/c"):
        with pytest.raises(HubError, match="hf-hub:ORG/NAME"):
            parse_hub_name(bad)


def test_load_resizer_by_hub_name_from_an_offline_cache(hf_cache):
    m = trained()
    cache_resizer(hf_cache, m)
    assert [r.repo_id for r in scan_cache_dir(hf_cache).repos] == [REPO]  # a cache huggingface_hub recognises
    loaded = load_resizer(f"hf-hub:{REPO}")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    assert read_resizer_header(f"hf-hub:{REPO}")["provenance"]["backbone"] == "resnet18"


def test_a_revision_picks_its_snapshot(hf_cache):
    first, second = trained(0), trained(1)
    cache_resizer(hf_cache, first)
    cache_resizer(hf_cache, second, commit=OTHER, branch="v2")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_resizer(f"hf-hub:{REPO}")(x), first(x))
        assert torch.equal(load_resizer(f"hf-hub:{REPO}@v2")(x), second(x))
        assert torch.equal(load_resizer(f"hf-hub:{REPO}@{OTHER}")(x), second(x))


def test_hf_hub_cache_overrides_hf_home(hf_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    cache_resizer(tmp_path / "elsewhere", trained())
    assert hub_file(f"hf-hub:{REPO}") == tmp_path / "elsewhere" / f"models--{REPO.replace('/', '--')}" / (
        f"snapshots/{COMMIT}/resizer.safetensors"
    )


def test_missing_offline_is_one_line_naming_the_cache(hf_cache):
    with pytest.raises(HubError) as caught:
        load_resizer("hf-hub:someorg/not-cached")
    message = str(caught.value)
    assert "\n" not in message
    assert str(hf_cache / "models--someorg--not-cached") in message and "HF_HUB_OFFLINE=1" in message


def test_download_failure_is_one_line_naming_the_cache(hf_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.is_offline_mode", lambda: False)

    def fail(*args, **kwargs):
        raise OSError("Network is unreachable\nsecond line")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fail)
    with pytest.raises(HubError) as caught:
        hub_file("hf-hub:someorg/not-cached")
    message = str(caught.value)
    assert "\n" not in message and "Network is unreachable" in message and str(hf_cache) in message


def test_hub_names_in_image_resizing_and_training(hf_cache):
    m = trained()
    cache_resizer(hf_cache, m)
    resizer = load_image_resizer(f"hf-hub:{REPO}")
    assert resizer.in_size == (64, 64) and resizer.pre_resize[0] == "bilinear"
    image = torch.randint(0, 256, (3, 80, 90), dtype=torch.uint8)
    assert torch.equal(resize_image(image, f"hf-hub:{REPO}"), resize_image(image, resizer))
    cfg = TrainConfig(init_resizer=f"hf-hub:{REPO}")
    cfg.resolve_paths("/somewhere")
    assert cfg.init_resizer == f"hf-hub:{REPO}"
    assert default_output(f"hf-hub:{REPO}@v2", "onnx") == Path("some-resizer.onnx")


def test_hub_names_on_the_command_line(hf_cache, tmp_path, capsys):
    cache_resizer(hf_cache, trained())
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    Image.new("RGB", (90, 70), (200, 30, 10)).save(photos / "a.png")
    assert cli("info", f"hf-hub:{REPO}", "--json") == 0
    assert json.loads(capsys.readouterr().out)["resizer"] == "learnable"
    assert cli("resize", "--resizer", f"hf-hub:{REPO}", photos, "--out", tmp_path / "small", "--device", "cpu") == 0
    with Image.open(tmp_path / "small" / "a.png") as small:
        assert small.size == (32, 32)
    capsys.readouterr()
    assert cli("info", "hf-hub:someorg/not-cached") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models--someorg--not-cached" in err


# ---- push: the files and card it would send


def run_folder(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"resizer": "learnable"}))
    save_resizer(trained(), run / "resizer.safetensors", provenance=PROVENANCE)
    return run


def compare_output(tmp_path) -> Path:
    """A `taskresize compare` output as it writes it: compare.yaml, report.md, verdicts.json, best/, compare/."""
    out = tmp_path / "cmp"
    (out / "best").mkdir(parents=True)
    (out / "compare.yaml").write_text("name: compare\n")
    (out / "report.md").write_text(
        "# Does a learned resizer pay on `flowers/`?\n\nSome words.\n\n"
        "| learned resizer | input → output | top1_error | MFLOPs/image (resizer) | vs bilinear (plain) |\n"
        "|---|---|---:|---:|---:|\n"
        "| learnable | 64×64 → 32×32 | 25.0 ± 1.0 | 150.0 (40.0) | better (-3.0 ± 1.2) |\n\n"
        "**learnable** is better than every control.\n"
    )
    verdicts = {"learnable": {"bilinear (plain)": "better", "area (antialias)": "better", "bilinear at equal FLOPs":
                              "better"}}  # fmt: skip
    (out / "verdicts.json").write_text(json.dumps({"winner": "learnable", "verdicts": verdicts}))
    save_resizer(trained(), out / "best" / "resizer.safetensors", provenance=PROVENANCE)
    return out


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_prepare_push_from_a_run_folder(tmp_path):
    run = run_folder(tmp_path)
    files = prepare_push(run, tmp_path / "up", REPO)
    assert [p.name for p in files.files] == ["README.md", "config.json", "resizer.safetensors"]
    assert (tmp_path / "up" / "resizer.safetensors").read_bytes() == (run / "resizer.safetensors").read_bytes()
    config = json.loads((tmp_path / "up" / "config.json").read_text())
    assert config["name"] == "learnable" and config["config"]["n"] == 8
    card = (tmp_path / "up" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "taskresize"
    assert {"taskresize", "learnable", "classification", "resnet18"} <= set(meta["tags"])
    assert f'load_resizer("hf-hub:{REPO}")' in card and f"--resizer hf-hub:{REPO}" in card
    assert "64×64" in card and "32×32" in card  # input and output sizes
    assert "normalisation" in card and "116.28" in card  # ImageNet's mean, 0-255 units (the default provenance)
    assert '"n": 8' in card and "top1_error" in card and "flowers/" in card
    assert "Does it pay" not in card


def test_prepare_push_from_a_compare_output_carries_the_verdicts(tmp_path):
    out = compare_output(tmp_path)
    for source in (out, out / "best" / "resizer.safetensors"):
        files = prepare_push(source, tmp_path / "up", REPO)
        assert files.compare is not None and files.compare.winner == "learnable"
        card = (tmp_path / "up" / "README.md").read_text()
        assert "better than bilinear (plain), area (antialias), bilinear at equal FLOPs" in card
        assert "| learnable | 64×64 → 32×32 | 25.0 ± 1.0 |" in card and "better than every control" in card


def test_a_compare_output_without_a_winner_is_refused_by_name(tmp_path):
    out = compare_output(tmp_path)
    shutil.rmtree(out / "best")
    with pytest.raises(PushError, match="no learned resizer beat every control"):
        prepare_push(out, tmp_path / "up", REPO)


def test_model_card_without_provenance():
    header = {"name": "muller", "config": {"output_size": [32, 32]}, "provenance": {}}
    card = model_card(REPO, header)
    assert front_matter(card)["library_name"] == "taskresize" and "32×32" in card and "not recorded" in card


@pytest.fixture
def uploads(monkeypatch):
    """HfApi's create_repo and upload_folder replaced: what they were called with, and the folder's files."""
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload_folder"] = (repo_id, kwargs)
        calls["files"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        return argparse.Namespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_resizer_sends_the_three_files(tmp_path, uploads):
    run = run_folder(tmp_path)
    url = push_resizer(run, REPO, private=True)
    assert url == f"https://huggingface.co/{REPO}/commit/abc"
    assert uploads["create_repo"] == (REPO, {"private": True, "exist_ok": True, "repo_type": "model"})
    repo, kwargs = uploads["upload_folder"]
    assert repo == REPO and kwargs["repo_type"] == "model" and "learnable" in kwargs["commit_message"]
    assert sorted(uploads["files"]) == ["README.md", "config.json", "resizer.safetensors"]
    assert uploads["files"]["resizer.safetensors"] == (run / "resizer.safetensors").read_bytes()
    assert b"library_name: taskresize" in uploads["files"]["README.md"]


def test_push_refuses_a_bad_repository_before_any_call(tmp_path, uploads):
    with pytest.raises(HubError, match="ORG/NAME"):
        push_resizer(run_folder(tmp_path), "no-org")
    assert uploads == {}


def push_args(*argv):
    parser = argparse.ArgumentParser()
    push_command.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_push_command(tmp_path, uploads, capsys):
    run = run_folder(tmp_path)
    assert push_command.run(push_args(run, "--repo", REPO, "--message", "first")) == 0
    assert uploads["upload_folder"][1]["commit_message"] == "first"
    assert f"hf-hub:{REPO}" in capsys.readouterr().out
    uploads.clear()
    preview = tmp_path / "preview"
    assert push_command.run(push_args(run, "--repo", REPO, "--dry-run", "--output", preview, "--no-card")) == 0
    assert uploads == {} and sorted(p.name for p in preview.iterdir()) == ["config.json", "resizer.safetensors"]
    assert "would upload" in capsys.readouterr().out
    assert push_command.run(push_args(run, "--repo", REPO, "--output", tmp_path / "kept")) == 0
    assert sorted(uploads["files"]) == sorted(p.name for p in (tmp_path / "kept").iterdir())


def test_push_through_the_command_line(tmp_path, uploads, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("push", run_folder(tmp_path), "--repo", REPO, "--dry-run") == 0
    assert (tmp_path / "push-some-resizer" / "README.md").is_file() and uploads == {}
    assert cli("push", tmp_path / "missing", "--repo", REPO) == 2
    assert "missing does not exist" in capsys.readouterr().err
