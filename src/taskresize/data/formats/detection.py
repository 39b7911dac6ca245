"""Object detection data: the Pascal VOC layout or a COCO JSON file, and the uint8 letterbox path.

Boxes are kept as continuous pixel coordinates ``(x1, y1, x2, y2)``: the image spans ``[0, W] x [0, H]`` and
pixel ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``. VOC's 1-based inclusive indices become
``(xmin - 1, ymin - 1, xmax, ymax)``; COCO's ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)``.

**Letterbox.** Batches must stack, so every image goes to the resizer's fixed input size keeping its aspect
ratio: it is scaled to fit (``s = min(h_in / H, w_in / W)``, new size ``round(H s) x round(W s)``) with a classic
resizer and padded at the bottom and right with the ImageNet mean colour (zero after normalisation). A box maps
with the exact per-axis factors of that resize, ``x * round(W s) / W`` and ``y * round(H s) / H``; the padding
moves nothing. The resizer then maps the whole input to the output size, and boxes scale by ``out / in`` per axis.
:func:`boxes_to_input` and :func:`boxes_to_original` are the two directions.
"""

from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from taskresize.data.decode import DEFAULT_MAX_PIXELS, load_image
from taskresize.data.formats.segmentation import find_image, read_classes_file, read_id_list
from taskresize.data.normalization import IMAGENET
from taskresize.data.split import validation_count
from taskresize.data.transforms import flip_coin, plain
from taskresize.errors import DataError
from taskresize.resizers.classic import resize
from taskresize.sizes import Size

VOC_DETECTION_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
PAD_COLOUR = tuple(round(v) for v in IMAGENET.mean)  # (124, 116, 104): zero after the task's normalisation


@dataclass(frozen=True)
class DetSample:
    """One image and its objects. ``boxes`` are continuous ``(x1, y1, x2, y2)`` in the image's pixels; ``labels``
    are 1..K (0 is the detectors' background); ``difficult`` objects (VOC difficult, COCO crowd) are not trained
    on and are ignored by the metric."""

    image: str
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[int, ...]
    difficult: tuple[bool, ...]


@dataclass
class DetectionSplits:
    root: Path
    classes: list[str]  # class names; label k is classes[k - 1]
    train: list[DetSample]
    val: list[DetSample]


def _number(node: ET.Element, tag: str, path: Path) -> float:
    text = node.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{path}: <{tag}> is {text!r}, expected a number") from None


def read_voc_objects(path: Path) -> list[tuple[str, tuple[float, float, float, float], bool]]:
    """``(name, (x1, y1, x2, y2), difficult)`` of each ``<object>`` in a VOC annotation file."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: every listed image needs Annotations/<id>.xml") from None
    except ET.ParseError as error:
        raise DataError(f"{path}: not valid XML ({error})") from None
    objects = []
    for number, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise DataError(f"{path}: object {number} needs a <name> and a <bndbox>")
        xmin, ymin, xmax, ymax = (_number(box, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise DataError(
                f"{path}: object {number} ({name}) has xmax < xmin or ymax < ymin: {xmin, ymin, xmax, ymax}"
            )
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((name, (xmin - 1, ymin - 1, xmax, ymax), difficult))
    return objects


def scan_voc_detection(root: str | os.PathLike) -> DetectionSplits:
    """``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` and ``ImageSets/Main/{train,val}.txt``.

    Classes: ``classes.txt`` if present; else VOC's 20 if every name found is one of them; else the names found,
    sorted.
    """
    root = Path(root)
    found: dict[str, list[tuple[str, list]]] = {}
    for split in ("train", "val"):
        entries = []
        for stem in read_id_list(root / "ImageSets" / "Main" / f"{split}.txt"):
            image = find_image(root / "JPEGImages", stem)
            if image is None:
                raise DataError(f"{root / 'JPEGImages'} has no image {stem}.jpg (listed in ImageSets/Main/{split}.txt)")
            entries.append((str(image), read_voc_objects(root / "Annotations" / f"{stem}.xml")))
        found[split] = entries
    names = {name for entries in found.values() for _, objects in entries for name, _, _ in objects}
    classes = read_classes_file(root / "classes.txt")
    if classes is None:
        classes = list(VOC_DETECTION_CLASSES) if names <= set(VOC_DETECTION_CLASSES) else sorted(names)
    index = {name: k + 1 for k, name in enumerate(classes)}
    unknown = sorted(names - set(index))
    if unknown:
        raise DataError(f"{root}: annotations name classes {unknown} that {root / 'classes.txt'} does not list")

    def sample(image: str, objects: list) -> DetSample:
        boxes = tuple(box for _, box, _ in objects)
        return DetSample(image, boxes, tuple(index[n] for n, _, _ in objects), tuple(d for _, _, d in objects))

    splits = {split: [sample(image, objects) for image, objects in entries] for split, entries in found.items()}
    return DetectionSplits(root, classes, splits["train"], splits["val"])


def read_coco(path: str | os.PathLike, images: str | os.PathLike | None) -> tuple[list[str], list[DetSample]]:
    """The categories (sorted by id, labelled 1..K) and the images of a COCO instances JSON file.

    Crowd annotations become ``difficult``; boxes of zero width or height are dropped.
    """
    path = Path(path)
    if images is None:
        raise DataError(f"--data {path} is a COCO JSON file: pass the folder its images are in with --images DIR")
    folder = Path(images)
    if not folder.is_dir():
        raise DataError(f"--images {folder} is not a folder")
    try:
        data = json.loads(path.read_text())
        categories = sorted(data["categories"], key=lambda c: c["id"])
        label = {c["id"]: k + 1 for k, c in enumerate(categories)}
        by_image: dict[Any, list[dict]] = {im["id"]: [] for im in data["images"]}
        for ann in data.get("annotations", []):
            by_image[ann["image_id"]].append(ann)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable JSON file ({error})") from None
    except (KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not a COCO instances file (needs 'images', 'categories' and 'annotations'; {error!r})"
        ) from None
    samples = []
    for image in sorted(data["images"], key=lambda im: im["file_name"]):
        boxes, labels, crowd = [], [], []
        for ann in by_image[image["id"]]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w <= 0 or h <= 0:
                continue
            if ann["category_id"] not in label:
                raise DataError(f"{path}: annotation {ann.get('id')} has category {ann['category_id']}, not listed")
            boxes.append((x, y, x + w, y + h))
            labels.append(label[ann["category_id"]])
            crowd.append(bool(ann.get("iscrowd", 0)))
        samples.append(DetSample(str(folder / image["file_name"]), tuple(boxes), tuple(labels), tuple(crowd)))
    return [str(c["name"]) for c in categories], samples


def scan_detection(
    data: str | os.PathLike, images: str | os.PathLike | None, val_fraction: float, seed: int
) -> DetectionSplits:
    """A VOC folder, or a COCO JSON file (with its images folder) split at random by ``val_fraction``."""
    data = Path(data)
    if data.is_dir():
        if not (data / "Annotations").is_dir():
            raise DataError(
                f"{data} is not the VOC detection layout (Annotations/, JPEGImages/, ImageSets/Main/): pass such a "
                "folder, or a COCO instances .json with --images DIR"
            )
        return scan_voc_detection(data)
    if not data.is_file():
        raise DataError(f"--data {data} does not exist: pass a VOC folder or a COCO instances .json file")
    classes, samples = read_coco(data, images)
    if len(samples) < 2:
        raise DataError(f"{data} lists {len(samples)} image(s); a train/validation split needs at least 2")
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    n_val = validation_count(len(shuffled), val_fraction)
    return DetectionSplits(data, classes, shuffled[n_val:], shuffled[:n_val])


def letterbox_size(height: int, width: int, size: Size) -> Size:
    """The size an ``height x width`` image is scaled to so that it fits ``size`` with its aspect ratio."""
    scale = min(size[0] / height, size[1] / width)
    return min(size[0], max(1, round(height * scale))), min(size[1], max(1, round(width * scale)))


def boxes_to_input(boxes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Boxes ``(N, 4)`` from the original image to the letterboxed input; ``scale`` is ``(sx, sy)``."""
    return boxes * scale.to(boxes.dtype).repeat(2)


def boxes_to_original(boxes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`boxes_to_input`."""
    return boxes / scale.to(boxes.dtype).repeat(2)


@dataclass
class LetterboxResize:
    """``DetSample -> (uint8 (3, h, w), target)``: decode, optionally flip, scale to fit ``size``, pad.

    The flip is torchvision v2's ``horizontal_flip`` on a ``tv_tensors.Image`` and its ``BoundingBoxes``
    (``x -> W - x``; boxes are not clipped); the scaling is :func:`taskresize.resize`.

    ``target`` holds ``boxes`` float32 ``(N, 4)`` in the input frame, ``labels`` int64 ``(N,)``, ``iscrowd``
    int64 ``(N,)`` (difficult objects) and ``scale`` float64 ``(sx, sy)`` from the original image to the input.
    """

    size: Size
    method: str = "bilinear"
    antialias: bool = True
    augment: bool = False  # horizontal flip
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, sample: DetSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = load_image(sample.image, max_pixels=self.max_pixels)
        boxes = torch.tensor(sample.boxes, dtype=torch.float64).reshape(-1, 4)
        image, boxes, scale = self.apply(image, boxes)
        return image, {
            "boxes": boxes.float(),
            "labels": torch.tensor(sample.labels, dtype=torch.int64),
            "iscrowd": torch.tensor(sample.difficult, dtype=torch.int64),
            "scale": scale,
        }

    def apply(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Letterbox a uint8 ``(3, H, W)`` image and its boxes ``(N, 4)``; returns the image, the boxes in the input
        frame and ``scale`` ``(sx, sy)``."""
        height, width = image.shape[-2:]
        if self.augment and flip_coin():
            image = plain(F.horizontal_flip(tv_tensors.Image(image)))
            boxes = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width), clamping_mode=None)
            boxes = plain(F.horizontal_flip(boxes))
        new_h, new_w = letterbox_size(height, width, self.size)
        scale = torch.tensor([new_w / width, new_h / height], dtype=torch.float64)
        canvas = torch.tensor(PAD_COLOUR, dtype=torch.uint8).view(3, 1, 1).repeat(1, *self.size)
        canvas[:, :new_h, :new_w] = resize(image, (new_h, new_w), self.method, self.antialias)
        return canvas, boxes_to_input(boxes, scale), scale


class DetectionDataset(Dataset):
    """Yields ``(image uint8 (3, h, w), target dict)`` through a :class:`LetterboxResize`."""

    def __init__(self, samples: Sequence[DetSample], transform: LetterboxResize) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.transform(self.samples[index])
