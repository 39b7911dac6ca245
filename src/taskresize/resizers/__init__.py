"""Resizers: classic (Pillow-exact, differentiable) and learned, behind one registry."""

from .base import Resizer
from .classic import METHODS, ClassicResizer, resize
from .downsizenet import DownsizeNet
from .learnable import LearnableResizer
from .learnable_strided import StridedLearnableResizer
from .muller import MullerResizer
from .registry import UnknownResizerError, create_resizer, list_resizers, register_resizer

__all__ = [
    "METHODS",
    "ClassicResizer",
    "DownsizeNet",
    "LearnableResizer",
    "MullerResizer",
    "Resizer",
    "StridedLearnableResizer",
    "UnknownResizerError",
    "create_resizer",
    "list_resizers",
    "register_resizer",
    "resize",
]
