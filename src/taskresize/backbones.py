"""Vision backbones from torchvision or timm, randomly initialised or loaded from a local weights file.

Nothing is downloaded: weights come from a file (safetensors, or a ``.pth``/``.pt``/``.ckpt`` state dict loaded
with ``weights_only=True``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch
import torchvision
from torch import nn

from .fileio import UnsafeFileError, torch_load_weights_only


class BackboneError(ValueError):
    """An unknown backbone or weights that do not fit it; the message says what would be accepted."""


def _torchvision_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def resolve_backbone_name(name: str) -> tuple[str, str]:
    """``"torchvision:resnet50"``, ``"timm:mobilenetv2_100"`` or a bare name (torchvision first, then timm).

    Returns ``(library, model_name)``.
    """
    library, _, model = name.rpartition(":")
    listings = {"torchvision": _torchvision_names, "timm": _timm_names}
    if library and library not in listings:
        raise BackboneError(f"backbone {name!r}: the prefix must be 'torchvision:' or 'timm:'")
    close = []
    for lib in [library] if library else list(listings):
        available = listings[lib]()
        if model in available:
            return lib, model
        close += [f"{lib}:{n}" for n in difflib.get_close_matches(model, available, n=3, cutoff=0.6)]
    hint = f" Did you mean {', '.join(close[:4])}?" if close else ""
    raise BackboneError(
        f"unknown backbone {name!r}.{hint} Use any torchvision classification model ('torchvision:resnet50') "
        "or timm model ('timm:mobilenetv2_100')"
    )


def create_backbone(name: str, num_classes: int, pretrained: str | os.PathLike | None = None) -> nn.Module:
    """Build a classification backbone.

    Args:
        name: ``torchvision:<model>``, ``timm:<model>`` or a bare model name.
        num_classes: outputs of the classifier.
        pretrained: a local weights file. When its classifier has another number of classes, the classifier
            is left freshly initialised and everything else is loaded.

    Raises:
        BackboneError: unknown name, weights requested from a hub, or a weights file that does not fit.
    """
    library, model_name = resolve_backbone_name(name)
    if pretrained is not None and not Path(pretrained).is_file():
        raise BackboneError(
            f"pretrained weights {str(pretrained)!r} are not a file. Nothing is downloaded at run time: save the "
            "weights on a machine with network access (e.g. torch.save(torchvision.models.resnet50(weights="
            "'DEFAULT').state_dict(), 'resnet50.pth')) and pass that file's path"
        )
    if library == "torchvision":
        model = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes)
    else:
        import timm

        model = timm.create_model(model_name, pretrained=False, num_classes=num_classes)
    if pretrained is not None:
        load_weights(model, pretrained, what=name)
    return model


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a pickled checkpoint (``weights_only=True``: no code runs).

    Common wrappers are unpacked: ``{"state_dict": ...}`` (Lightning), ``{"model": ...}``, ``module.`` prefixes.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch_load_weights_only(path)
        except UnsafeFileError as error:
            raise BackboneError(str(error)) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: nn.Module, path: str | os.PathLike, what: str = "the model") -> list[str]:
    """Load a weights file into ``model``; parameters whose shape differs (the classifier) are left as they are.

    Returns:
        The names of the parameters that were not loaded because their shape differs.

    Raises:
        BackboneError: the file has parameters the model lacks, or lacks any beyond those of different shape.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    missing = sorted(set(own) - set(state))
    if unexpected or missing or len(mismatched) > 2:
        details = "; ".join(
            f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (
                ("unknown to the model", unexpected),
                ("missing", missing),
                ("of another shape", mismatched),
            )
            if keys
        )
        raise BackboneError(f"{path} does not fit {what} ({details})")
    model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    return mismatched
