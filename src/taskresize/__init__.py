"""taskresize: learned image resizers trained jointly with vision models, and Pillow-exact classic resizers."""

from importlib.metadata import PackageNotFoundError, version

from .deploy import resize_image
from .flops import count_conv_weights, count_flops, count_parameters
from .io import load_resizer, save_resizer
from .resizers import (
    METHODS,
    ClassicResizer,
    DownsizeNet,
    LearnableResizer,
    MullerResizer,
    Resizer,
    UnknownResizerError,
    create_resizer,
    list_resizers,
    register_resizer,
    resize,
)

try:
    __version__ = version("taskresize")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "METHODS",
    "ClassicResizer",
    "DownsizeNet",
    "LearnableResizer",
    "MullerResizer",
    "Resizer",
    "UnknownResizerError",
    "__version__",
    "count_conv_weights",
    "count_flops",
    "count_parameters",
    "create_resizer",
    "list_resizers",
    "load_resizer",
    "register_resizer",
    "resize",
    "resize_image",
    "save_resizer",
]
