"""Run configuration: defaults, then a YAML file, then command-line flags (flags win). Saved as config.yaml."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskresize.data.decode import DEFAULT_MAX_PIXELS
from taskresize.errors import TaskresizeError, did_you_mean
from taskresize.fileio import atomic_write_text
from taskresize.sizes import to_size
from taskresize.training.registry import get_task

PAPER_BATCH_SIZE = 128  # Talebi & Milanfar's batch size at 224 px, where their learning rates apply
ACCELERATORS = ("auto", "cpu", "gpu", "mps")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")  # auto: see training.devices.resolve_precision
DECODE_ON = ("cpu", "device")
BACKBONE_LIBRARIES = ("torchvision", "timm")
PATH_KEYS = ("data", "images", "pretrained", "init", "init_resizer", "output")  # resolved against the working folder
# Keys config.yaml holds beside the settings: a record of the run, not settings (from_dict ignores them).
RECORD_KEYS = ("paths_as_given", "lr_default", "resumed", "ran_on", "input_normalization")
# Settings a resumed run may change (they change how it runs, not what it computes per epoch).
RESUMABLE = (
    "epochs",
    "batch_size",
    "workers",
    "decode_on",
    "precise_bn",
    "accelerator",
    "devices",
    "num_nodes",
    "strict",
    "compile",
)


class ConfigError(TaskresizeError):
    """A configuration value that cannot work; the message names the key, the value and what is accepted."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's recipe where the paper has one."""

    task: str = "classification"
    """What the resizer is trained for: a registered task (docs/guides/tasks.md lists them)."""
    data: str = "builtin"
    """The task's data: a folder or table file, or 'builtin' (the task's synthetic offline set)."""
    images: str | None = None
    """Folder the image paths of a --data table file are relative to (tasks that read tables)."""
    val_split: float = 0.2
    """Fraction held out for validation when the data has no split of its own (train/ and val/, a split column)."""
    resizer: str = "bilinear"
    """Resizer name: bilinear, learnable, learnable-strided, downsizenet, muller, ... (taskresize list)."""
    resizer_args: dict[str, Any] = field(default_factory=dict)
    """The resizer's arguments as JSON, e.g. '{"n": 32, "r": 2}' (taskresize list shows them)."""
    backbone: str = "torchvision:resnet18"
    """The model behind the resizer: torchvision:NAME, timm:NAME or a bare name."""
    pretrained: str | None = None
    """Backbone weights: a local file (safetensors or .pth), packaged weights (efficientnet-lite0), or hub weights:
    default, a torchvision weights name (IMAGENET1K_V2) or a timm tag (resnet50.a1_in1k), fetched into TORCH_HOME /
    HF_HOME (with HF_HUB_OFFLINE=1: from the cache only). The task then normalises as those weights were trained."""
    in_size: list[int] | None = None
    """The resizer's input size, N or HxW: the data loader pre-resizes to it (default: the output size)."""
    out_size: list[int] = field(default_factory=lambda: [224, 224])
    """The model's input size, N or HxW: what the resizer produces."""
    pre_resize: str = "bilinear"
    """Classic method of the data loader's pre-resize to the input size."""
    pre_resize_antialias: bool = True
    """Antialias the pre-resize (Pillow's algorithm)."""
    augment: bool = True
    """Random resized crop and horizontal flip before the pre-resize."""
    crop_scale: list[float] = field(default_factory=lambda: [0.25, 1.0])
    """The random resized crop's range of areas, MIN MAX (fractions of the image)."""
    epochs: int = 10
    """Training epochs."""
    batch_size: int = 32
    """Images per batch, per process: the global batch is this times devices times num_nodes."""
    lr: float | None = None
    """Learning rate (default: the paper's 0.05 at a batch of 128, or 0.005 when initialised from a run; 0.04 from
    --pretrained weights; scaled linearly to the global batch, batch_size x devices x num_nodes)."""
    resizer_lr_scale: float = 1.0
    """The resizer's learning rate as a multiple of --lr (the paper: 1, one rate for both). Joined to a trained
    backbone, 0.001 kept an identity resizer stable where 1 wrecked it (docs/results.md, "Fine-tuning from
    pretrained weights")."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """Weight decay (the paper gives none)."""
    lr_decay: float = 0.94
    """Multiply the learning rate by this every --lr-decay-epochs epochs."""
    lr_decay_epochs: int = 2
    """Epochs between learning-rate decays."""
    label_smoothing: float = 0.1
    """Label smoothing of the classification loss."""
    seed: int = 0
    """Random seed (the train/validation split does not depend on it)."""
    init: str | None = None
    """A run folder whose backbone (and resizer, if of the same kind) initialise this run."""
    init_resizer: str | None = None
    """A resizer file, run folder or hub name (hf-hub:ORG/NAME) whose resizer initialises this one."""
    freeze_backbone: bool = False
    """Train only the resizer."""
    freeze_resizer: bool = False
    """Keep the resizer fixed."""
    freeze_backbone_bn: bool = False
    """Keep the backbone's BatchNorm statistics as loaded (eval mode; their scale and shift still learn). For tiny
    batches; with Lite0 at batch 32 it cost 12 points (docs/results.md, "Fine-tuning from pretrained weights")."""
    precise_bn: int = 4096
    """Training images, augmented as in training, that BatchNorm statistics are recomputed from before each
    validation (0: off); a smaller training set is passed over several times, each pass augmented anew. A few
    batches' draw moved a validation metric by points (docs/results.md, "Precise BatchNorm")."""
    workers: int | None = None
    """Data-loading worker processes per training process (default: this machine's cores per process less one)."""
    decode_on: str = "cpu"
    """Where JPEG files are decoded: cpu (by the data-loading workers, with Pillow) or device (the workers only read
    the files and draw the augmentation; the training device decodes each batch with torchvision's decode_jpeg,
    then crops, pre-resizes and flips there). device pays on a CUDA GPU (nvJPEG), where the CPU cores cannot
    decode as fast as the GPU trains; elsewhere the training process decodes on the CPU, slower than the workers.
    Other files (PNG, CMYK JPEGs, ...) are decoded by the workers either way. Classification only, with
    pre_resize bilinear, bicubic or nearest and no distortion; pixels differ slightly from cpu's (JPEGs decoded
    whole, never at Pillow's reduced scale; a float32 resize; on a GPU, nvJPEG's decoder; docs/guides/gpus.md)."""
    accelerator: str = "auto"
    """Where to train: auto (a GPU if there is one), cpu, gpu or mps."""
    devices: int = 1
    """Devices (processes) per node for data-parallel training; under torchrun, its --nproc_per_node."""
    num_nodes: int = 1
    """Machines of a multi-node run; under torchrun, its --nnodes."""
    compile: bool = False
    """torch.compile the resizer and the backbone for training (docs/results.md measures when it pays; compiling
    takes tens of seconds to minutes first)."""
    sync_batchnorm: bool = False
    """Synchronise BatchNorm statistics across processes in data-parallel training (off: each process normalises
    by its own batch, as one device would at that batch size)."""
    precision: str = "auto"
    """Numeric precision: auto (bf16-mixed on GPUs that support it, else 32-true), 32-true, bf16-mixed, 16-mixed."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Refuse images with more pixels (decompression bombs)."""
    strict: bool = False
    """Stop on unreadable or too-small images instead of skipping and reporting them."""
    output: str | None = None
    """The run folder (default runs/DATE-RESIZER-INtoOUT)."""
    distortion: str = "none"
    """Degrade every image as in Talebi Table 9: none, downscale4, noise0.1 or jpeg10 (classification)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field, so that a run stops before anything is written; raises :class:`ConfigError` naming the
        key, the value and what is accepted."""

        def fail(key: str, message: str) -> None:
            raise ConfigError(f"{key} = {getattr(self, key)!r}: {message}")

        # the resizers import torch: not at module level, so that `taskresize train --help` stays fast
        from taskresize.resizers.classic import METHODS
        from taskresize.resizers.registry import ResizerArgumentError, UnknownResizerError, check_resizer_args

        if not isinstance(self.task, str):
            fail("task", "must be a task name")
        try:
            get_task(self.task)
        except ValueError as error:
            raise ConfigError(f"task: {error}") from None
        try:
            self.out_size = list(to_size(self.out_size, what="out_size"))
            self.in_size = list(to_size(self.in_size, what="in_size")) if self.in_size is not None else None
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
        for item in dataclasses.fields(self):  # every value has its declared type (YAML can hold anything)
            if not _has_type(getattr(self, item.name), str(item.type)):
                fail(item.name, f"must be {_type_words(str(item.type))}")
        try:  # the name, and every argument by its declared type and range, before anything is written
            check_resizer_args(self.resizer, self.resizer_args, set_elsewhere={"output_size": "out_size (--out-size)"})
        except (ResizerArgumentError, UnknownResizerError) as error:
            raise ConfigError(str(error)) from None
        for key in ("data", "backbone"):
            if not getattr(self, key).strip():
                fail(key, "must not be empty")
        library, colon, model = self.backbone.rpartition(":")
        if colon and (library not in BACKBONE_LIBRARIES or not model):
            fail("backbone", "must be torchvision:NAME, timm:NAME or a bare model name (e.g. torchvision:resnet18)")
        for key in ("epochs", "batch_size", "lr_decay_epochs", "devices", "num_nodes", "max_pixels"):
            if getattr(self, key) < 1:
                fail(key, "must be a positive integer")
        for key in ("workers", "precise_bn", "seed"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                fail(key, "must be a non-negative integer")
        if not 0.0 < self.val_split < 1.0:
            fail("val_split", "must be between 0 and 1")
        if self.lr is not None and not 0 < self.lr < math.inf:
            fail("lr", "must be a positive finite number")
        if not 0 < self.resizer_lr_scale < math.inf:
            fail("resizer_lr_scale", "must be a positive finite number")
        if not 0.0 <= self.momentum < 1.0:
            fail("momentum", "must be in [0, 1)")
        if not 0 <= self.weight_decay < math.inf:
            fail("weight_decay", "must be zero or a positive finite number")
        if not 0.0 < self.lr_decay <= 1.0:
            fail("lr_decay", "must be in (0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            fail("label_smoothing", "must be in [0, 1)")
        if (
            len(self.crop_scale) != 2
            or not all(_has_type(v, "float") for v in self.crop_scale)
            or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1
        ):
            fail("crop_scale", "must be [min, max] with 0 < min <= max <= 1")
        if self.pre_resize not in METHODS:
            fail("pre_resize", f"must be one of {', '.join(METHODS)}.{did_you_mean(self.pre_resize, METHODS)}")
        if self.precision not in PRECISIONS:
            fail("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.accelerator not in ACCELERATORS:
            fail("accelerator", f"must be one of {', '.join(ACCELERATORS)}")
        if self.decode_on not in DECODE_ON:
            fail("decode_on", f"must be one of {', '.join(DECODE_ON)}")
        from taskresize.data.transforms import DISTORTIONS  # imports torch: not at module level, so --help stays fast

        if self.distortion not in DISTORTIONS:
            fail("distortion", f"must be one of {', '.join(DISTORTIONS)}")
        if self.decode_on == "device":
            from taskresize.data.device_decode import DEVICE_PRE_RESIZE

            if self.pre_resize not in DEVICE_PRE_RESIZE:
                fail("pre_resize", f"with decode_on = 'device' must be one of {', '.join(DEVICE_PRE_RESIZE)} (the "
                     "device's kernels; area and lanczos: decode_on cpu)")  # fmt: skip
            if self.distortion != "none":
                fail("distortion", "must be none with decode_on = 'device' (distortions act on images the workers "
                     "decoded: decode_on cpu)")  # fmt: skip

    def resolve_paths(self, base: str | os.PathLike, keys: tuple[str, ...] = PATH_KEYS) -> dict[str, str]:
        """Make the path settings absolute, relative ones taken from ``base`` (the working directory of the run),
        so a run folder works from anywhere; built-in data names stay as they are. Returns the relative values as
        they were given, by key."""
        given = {}
        for key in keys:
            value = getattr(self, key)
            if value is None or Path(value).is_absolute():
                continue
            if key == "data" and value.startswith("builtin") and not (Path(base) / value).exists():
                continue
            if key == "pretrained" and os.sep not in value and not (Path(base) / value).exists():
                continue  # a name of packaged or hub weights (efficientnet-lite0, default, IMAGENET1K_V2)
            if key == "init_resizer" and value.startswith("hf-hub:"):
                continue  # a resizer on the Hugging Face Hub
            given[key] = value
            setattr(self, key, os.path.normpath(Path(base).absolute() / Path(value).expanduser()))
        return given

    @property
    def input_size(self) -> tuple[int, int]:
        """The resizer's input size (``in_size``, defaulting to ``out_size``)."""
        return tuple(self.in_size or self.out_size)  # type: ignore[return-value]

    @property
    def learning_rate(self) -> float:
        """``lr``, or at batch 128, scaled linearly to the global batch (:attr:`global_batch_size`; unscaled, 0.05
        diverges at small batches, and scaled by the batch of one process, N devices trained at 1/N of the rate):
        the paper's 0.05 from scratch and 0.005 for its second phase (``init``, ``init_resizer``), and 0.04 for
        ``pretrained`` weights taken to a new task (0.01 at batch 32: the paper's fine-tuning rate learned too
        little there, docs/results.md, "Fine-tuning from pretrained weights")."""
        if self.lr is not None:
            return self.lr
        if self.init is not None or self.init_resizer is not None:
            rate = 0.005
        else:
            rate = 0.04 if self.pretrained is not None else 0.05
        return rate * self.global_batch_size / PAPER_BATCH_SIZE

    @property
    def global_batch_size(self) -> int:
        """Images per optimiser step over every process: ``batch_size`` times the processes of a data-parallel run
        (``devices`` x ``num_nodes``, or torchrun's ``WORLD_SIZE`` when launched by it)."""
        processes = os.environ.get("WORLD_SIZE") if "LOCAL_WORLD_SIZE" in os.environ else None
        return self.batch_size * (int(processes) if processes else self.devices * self.num_nodes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, resolved values (``lr`` and ``in_size`` filled in), as written to config.yaml."""
        values = dataclasses.asdict(self)
        values["lr"] = self.learning_rate
        values["in_size"] = list(self.input_size)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from plain values (keys may use dashes), completed with the task's defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k.replace("-", "_"): v for k, v in values.items()}
        values = with_task_defaults({k: v for k, v in values.items() if k not in RECORD_KEYS})
        unknown = sorted(set(values) - known)
        if unknown:
            hints = "".join(did_you_mean(u, known) for u in unknown)
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}.{hints} Known keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**values)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None


def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """Each field's docstring (the string literal under it in the class body): the one text of its help."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        text = after.value.value if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) else None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(text, str):
            docs[node.target.id] = " ".join(text.split())
    return docs


def _has_type(value: Any, annotation: str) -> bool:
    """Whether ``value`` fits a field's annotation (``int``, ``float | None``, ``list[int]``, ...): numbers are not
    booleans, a float field takes an int, a list field a list or tuple (its items are checked where it is used)."""
    for option in (part.strip() for part in annotation.split("|")):
        if option == "None" and value is None:
            return True
        if isinstance(value, bool):
            if option == "bool":
                return True
            continue
        if option == "str" and isinstance(value, str):
            return True
        if option == "int" and isinstance(value, int):
            return True
        if option == "float" and isinstance(value, int | float):
            return True
        if option.startswith("list[") and isinstance(value, list | tuple):
            return True
        if option.startswith("dict[") and isinstance(value, dict):
            return True
    return False


def _type_words(annotation: str) -> str:
    words = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false", "None": "null"}
    options = [part.strip() for part in annotation.split("|")]
    return " or ".join(
        words.get(o, "a list" if o.startswith("list[") else "a mapping" if o.startswith("dict[") else o)
        for o in options
    )


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    return values


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- overrides (the command-line flags that were given)."""
    values = read_yaml(path) if path is not None else {}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update(overrides or {})
    return TrainConfig.from_dict(values, source=str(path) if path else "config")


def with_task_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` completed with the defaults of its task (see ``TaskSpec.defaults``); given values win."""
    try:
        spec = get_task(values.get("task", TrainConfig.task))
    except ValueError as error:
        raise ConfigError(f"task: {error}") from None
    return {**spec.defaults, **values}


def write_yaml(path: str | os.PathLike, values: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))


def parse_json_mapping(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f'{what} {text!r} is not JSON ({error.msg}); e.g. \'{{"n": 32, "r": 2}}\'') from None
    if not isinstance(value, dict):
        raise ConfigError(f'{what} {text!r} must be a JSON object, e.g. \'{{"n": 32, "r": 2}}\'')
    return value
