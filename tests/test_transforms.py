"""taskresize.transforms: Pillow-exact and learned resizing as torchvision v2 transforms, with masks and boxes."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from taskresize import create_resizer, resize_image, save_resizer
from taskresize.io import Provenance
from taskresize.resizers.classic import resize
from taskresize.transforms import LearnedResize, Resize, output_size, resize_mask

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}  # fmt: skip


def pil_resize(pixels, size, method):
    """Pillow's resize of a uint8 (3, H, W) tensor to (h, w)."""
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize(size[::-1], PIL_FILTERS[method])
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def sample(h=97, w=131, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
    labels = torch.zeros(h, w, dtype=torch.int64)
    labels[20:60, 30:90] = 3
    labels[70:, :40] = 7
    mask = tv_tensors.Mask(labels)
    boxes = tv_tensors.BoundingBoxes([[30, 20, 90, 60], [0, 70, 40, h]], format="XYXY", canvas_size=(h, w))
    return image, mask, boxes


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "area", "lanczos", "nearest"])
def test_resize_in_compose_with_masks_and_boxes(method):
    image, mask, boxes = sample()
    before = image.clone()
    out_image, out_mask, out_boxes = v2.Compose([Resize((50, 60), method=method)])(image, mask, boxes)
    assert torch.equal(image, before)  # inputs untouched
    assert type(out_image) is tv_tensors.Image and type(out_mask) is tv_tensors.Mask
    assert type(out_boxes) is tv_tensors.BoundingBoxes and out_boxes.canvas_size == (50, 60)
    assert out_image.shape == (3, 50, 60) and out_image.dtype == torch.uint8
    assert torch.equal(out_image.as_subclass(torch.Tensor), resize(image.as_subclass(torch.Tensor), (50, 60), method))
    assert out_mask.shape == (50, 60) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) == {0, 3, 7}
    scale = torch.tensor([60 / 131, 50 / 97, 60 / 131, 50 / 97])
    assert torch.allclose(out_boxes.as_subclass(torch.Tensor).float(), boxes.as_subclass(torch.Tensor) * scale, atol=1)


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "lanczos", "area"])
@pytest.mark.parametrize("size", [(50, 60), (150, 200)])
def test_resize_is_pillow_exact_on_uint8(method, size):
    image, _, _ = sample()
    out = Resize(size, method=method)(image)
    reference = pil_resize(image.as_subclass(torch.Tensor), size, method)
    assert (out.as_subclass(torch.Tensor).int() - reference.int()).abs().max() <= 1


def test_masks_align_with_nearest_images():
    _, mask, _ = sample()
    labels = mask.as_subclass(torch.Tensor)
    for size in [(50, 60), (31, 200), (300, 17)]:
        as_image = resize(labels.to(torch.uint8)[None], size, "nearest")[0]
        assert torch.equal(resize_mask(labels, size), as_image.long())
    pil = np.asarray(Image.fromarray(labels.numpy().astype(np.uint8)).resize((60, 50), Image.Resampling.NEAREST))
    assert torch.equal(resize_mask(labels, (50, 60)), torch.from_numpy(pil.copy()).long())
    flags = torch.zeros(1, 97, 131, dtype=torch.bool)
    flags[:, 10:40, 10:40] = True
    assert resize_mask(flags, (20, 30)).dtype == torch.bool


@pytest.mark.parametrize(
    ("canvas", "size", "max_size"),
    [((97, 131), 64, None), ((131, 97), 64, None), ((97, 131), 64, 80), ((50, 50), 7, None)],
)
def test_an_int_size_is_the_shorter_side_as_in_v2_resize(canvas, size, max_size):
    image = tv_tensors.Image(torch.zeros(3, *canvas, dtype=torch.uint8))
    expected = v2.Resize(size, max_size=max_size)(image).shape[-2:]
    assert output_size(canvas, size, max_size) == tuple(expected)
    assert Resize(size, max_size=max_size)(image).shape[-2:] == expected


def test_float_pil_video_and_plain_tensors():
    image, _, _ = sample()
    pixels = image.as_subclass(torch.Tensor)
    floats = pixels.float() / 255
    out = Resize((40, 50), method="bicubic")(floats)
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    assert torch.allclose(out, resize(floats, (40, 50), "bicubic"))
    pil = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    out_pil = Resize((40, 50), method="lanczos")(pil)
    expected = pil.resize((50, 40), Image.Resampling.LANCZOS)
    assert isinstance(out_pil, Image.Image) and out_pil.size == (50, 40)
    assert np.abs(np.asarray(out_pil, dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    video = tv_tensors.Video(torch.stack([pixels, pixels.flip(-1)]))
    out_video = Resize((40, 50))(video)
    assert type(out_video) is tv_tensors.Video and out_video.shape == (2, 3, 40, 50)
    assert torch.equal(out_video[1], resize(pixels.flip(-1), (40, 50), "bilinear"))


def test_resize_refuses_bad_arguments():
    with pytest.raises(ValueError, match="lanczos"):
        Resize(32, method="lanczoz")
    with pytest.raises(ValueError, match="positive"):
        Resize((0, 32))
    image, _, _ = sample()
    with pytest.raises(ValueError, match="one size"):
        Resize(32)(image, tv_tensors.Mask(torch.zeros(10, 10)))


@pytest.fixture
def resizer_file(tmp_path):
    torch.manual_seed(0)
    m = create_resizer("learnable", output_size=(24, 32), n=8)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return save_resizer(m.eval(), tmp_path / "resizer.safetensors", provenance=Provenance(in_size=[48, 64]))


def test_learned_resize_in_compose_with_masks_and_boxes(resizer_file):
    image, mask, boxes = sample()
    transform = LearnedResize(resizer_file)
    out_image, out_mask, out_boxes = v2.Compose([transform])(image, mask, boxes)
    assert out_image.shape == (3, 24, 32) and out_image.dtype == torch.uint8
    assert torch.equal(out_image.as_subclass(torch.Tensor), resize_image(image.as_subclass(torch.Tensor), resizer_file))
    assert out_mask.shape == (24, 32) and out_boxes.canvas_size == (24, 32)
    bigger = LearnedResize(transform.resizer, size=(30, 40))(image)
    assert bigger.shape == (3, 30, 40)
    floats = image.as_subclass(torch.Tensor).float() / 255
    out = transform(floats)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    assert (out * 255 - out_image.float()).abs().max() <= 1.5  # the uint8 path rounds twice (pre-resize, end)


def test_learned_resize_from_a_hub_name(resizer_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--name"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "resizer.safetensors").write_bytes(resizer_file.read_bytes())
    image, _, _ = sample()
    assert torch.equal(LearnedResize("hf-hub:org/name")(image), LearnedResize(resizer_file)(image))


def test_learned_resize_refuses_a_classic_method():
    with pytest.raises(ValueError, match="Resize"):
        LearnedResize("bilinear")


class Pairs(Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, i):
        image, mask, _ = sample(80 + i, 100 + 3 * i, seed=i)
        return self.transform(image, mask)


def test_in_a_data_loader():
    loader = DataLoader(Pairs(v2.Compose([Resize((32, 48), method="area"), v2.ToDtype(torch.float32, scale=True)])),
                        batch_size=4)  # fmt: skip
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 48) and images.dtype == torch.float32 and masks.shape == (4, 32, 48)
