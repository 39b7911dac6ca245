"""taskresize: learned image resizers trained jointly with vision models, and Pillow-exact classic resizers.

The names below are imported on first use (PEP 562), so that ``import taskresize`` and the command line's
``--help`` and ``--version`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskresize.version import __version__

# public name -> the module (relative to this package) that defines it
_LAZY = {
    "resize_image": ".inference.image",
    "count_conv_weights": ".flops",
    "count_flops": ".flops",
    "count_parameters": ".flops",
    "load_resizer": ".io",
    "save_resizer": ".io",
    "push_resizer": ".publish",
    "TaskresizeError": ".errors",
    **dict.fromkeys(
        ("METHODS", "ClassicResizer", "DownsizeNet", "LearnableResizer", "MullerResizer", "Resizer",
         "ResizerArgumentError", "ResizerInfo", "SaliencySampler", "SeparableSaliencySampler",
         "StridedLearnableResizer", "UnknownResizerError", "create_resizer", "list_resizers", "register_resizer",
         "resize", "resizer_info"),
        ".resizers",
    ),
}  # fmt: skip

if TYPE_CHECKING:  # what static tools and IDEs see; at run time these come from __getattr__
    from taskresize.errors import TaskresizeError
    from taskresize.flops import count_conv_weights, count_flops, count_parameters
    from taskresize.inference.image import resize_image
    from taskresize.io import load_resizer, save_resizer
    from taskresize.publish import push_resizer
    from taskresize.resizers import (
        METHODS,
        ClassicResizer,
        DownsizeNet,
        LearnableResizer,
        MullerResizer,
        Resizer,
        ResizerArgumentError,
        ResizerInfo,
        SaliencySampler,
        SeparableSaliencySampler,
        StridedLearnableResizer,
        UnknownResizerError,
        create_resizer,
        list_resizers,
        register_resizer,
        resize,
        resizer_info,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "TaskresizeError",
    "UnknownResizerError",
    "__version__",
    "count_conv_weights",
    "count_flops",
    "count_parameters",
    "create_resizer",
    "list_resizers",
    "load_resizer",
    "push_resizer",
    "register_resizer",
    "resize",
    "resize_image",
    "resizer_info",
    "save_resizer",
]
