"""The interface every resizer module shares."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import Tensor, nn

from taskresize.resizers.fuse import fused_copy
from taskresize.sizes import Size, to_size

INITS = ("paper", "identity")  # a learned resizer's start: the paper's random init, or the classic resize it wraps


class Resizer(nn.Module):
    """A module mapping images ``(B, C, H, W)`` to ``(B, C, h, w)``.

    ``forward(x, size=None)`` resizes to ``size`` when given (it may change from call to call), else to
    ``output_size``. ``config()`` returns the keyword arguments that rebuild the module through
    ``create_resizer(resizer_name, **config())``; it is what ``save_resizer`` stores beside the weights.
    """

    resizer_name: ClassVar[str] = ""
    not_config: ClassVar[tuple[str, ...]] = ()  # arguments of __init__ that the registered name already fixes

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size: Size = to_size(output_size, what="output_size")

    def target_size(self, size: int | tuple[int, int] | None) -> Size:
        """The size a call resizes to: ``size`` if given, else ``output_size``."""
        return self.output_size if size is None else to_size(size)

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this resizer (JSON-serialisable): every argument of its ``__init__`` (the
        signature the registry checks arguments against) but those in ``not_config``, read from the attribute of
        the same name; ``output_size`` as a list."""
        config = {}
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or name in self.not_config or parameter.kind in (parameter.VAR_POSITIONAL,
                                                                                parameter.VAR_KEYWORD):  # fmt: skip
                continue
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def forward(self, x: Tensor, size: int | tuple[int, int] | None = None) -> Tensor:
        raise NotImplementedError

    def fuse(self) -> Resizer:
        """An equivalent copy for inference: eval mode, no gradients, every BatchNorm folded into the convolution
        before it (or into a per-channel affine map where no convolution precedes it).

        The copy computes what the eval-mode original computes, up to float rounding; ``self`` is unchanged. Its
        ``config()`` is the original's but its ``state_dict`` is not: save the original, fuse after loading.
        Resizers whose structure the generic folding (:func:`taskresize.resizers.fuse.fold_batchnorms`, which
        looks inside ``nn.Sequential`` containers) does not fit override this.
        """
        return fused_copy(self)
