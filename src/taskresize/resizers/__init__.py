"""Resizers: classic (Pillow-exact, differentiable) and learned, behind one registry."""

from taskresize.resizers.base import Resizer
from taskresize.resizers.classic import METHODS, ClassicResizer, resize
from taskresize.resizers.downsizenet import DownsizeNet
from taskresize.resizers.learnable import LearnableResizer
from taskresize.resizers.learnable_strided import StridedLearnableResizer
from taskresize.resizers.muller import MullerResizer
from taskresize.resizers.registry import (
    ResizerArgumentError,
    ResizerInfo,
    UnknownResizerError,
    create_resizer,
    list_resizers,
    register_resizer,
    resizer_info,
)
from taskresize.resizers.saliency import SaliencySampler, SeparableSaliencySampler

__all__ = [
    "METHODS",
    "ClassicResizer",
    "DownsizeNet",
    "LearnableResizer",
    "MullerResizer",
    "Resizer",
    "ResizerArgumentError",
    "ResizerInfo",
    "SaliencySampler",
    "SeparableSaliencySampler",
    "StridedLearnableResizer",
    "UnknownResizerError",
    "create_resizer",
    "list_resizers",
    "register_resizer",
    "resize",
    "resizer_info",
]
