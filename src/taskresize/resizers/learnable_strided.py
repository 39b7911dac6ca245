"""A cheaper Talebi–Milanfar resizer: the full-resolution stem runs at a stride (beyond the paper).

In the paper's resizer the 7x7 and 1x1 stem convolutions run at the *input* resolution and their features are
then resized to the output: at 256 -> 64 px that stem is 80% of the resizer's FLOPs. Here the same stem is applied
with a stride ``s`` (the largest integer down-scaling factor, at most ``max_stride``) so it produces features
directly at about the output resolution. Its 7x7 kernels still see the full-resolution input over the same
receptive field; they are sampled every ``s`` pixels instead of every pixel, a learned anti-aliasing filter in
place of a dense one. The architecture and the parameters are the paper's (Table 2's counts hold, and weights
transfer between the two), and with ``s = 1`` (down-scaling by less than 2, or up-scaling) it is the paper's
resizer exactly.
"""

from __future__ import annotations

import math
from typing import Annotated

from taskresize.resizers.base import INITS
from taskresize.resizers.classic import METHODS
from taskresize.resizers.learnable import LearnableResizer
from taskresize.resizers.registry import OneOf, OutputSize, Range, register_resizer


@register_resizer("learnable-strided")
class StridedLearnableResizer(LearnableResizer):
    """:class:`LearnableResizer` whose stem runs at stride ``min(max_stride, floor(in / out))``.

    Args:
        output_size: as :class:`LearnableResizer`, and so are ``n``, ``r``, ``interpolation``, ``antialias``,
            ``init``, ``in_channels`` and ``checkpoint``.
        max_stride: largest stride of the 7x7 stem (4 keeps neighbouring 7x7 windows overlapping).
    """

    def __init__(
        self,
        output_size: OutputSize = (224, 224),
        n: Annotated[int, Range(ge=1)] = 16,
        r: Annotated[int, Range(ge=0)] = 1,
        interpolation: Annotated[str, OneOf(METHODS)] = "bilinear",
        antialias: bool = False,
        init: Annotated[str, OneOf(INITS)] = "paper",
        in_channels: Annotated[int, Range(ge=1)] = 3,
        max_stride: Annotated[int, Range(ge=1)] = 4,
        checkpoint: bool = False,
    ) -> None:
        super().__init__(output_size, n, r, interpolation, antialias, init, in_channels, checkpoint)
        if max_stride < 1:
            raise ValueError(f"max_stride must be at least 1, got {max_stride}")
        self.max_stride = max_stride

    def stem_stride(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> int:
        """The stem's stride for this pair of sizes: the whole down-scaling factor, capped."""
        factor = min(in_size[0] / out_size[0], in_size[1] / out_size[1])
        return max(1, min(self.max_stride, math.floor(factor)))
