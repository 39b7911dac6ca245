"""FLOP and parameter accounting.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as **2 FLOPs**, and
only matrix products and convolutions are counted (interpolation, normalisation and element-wise operations count
0, as in most papers' tables). The Talebi–Milanfar paper's "FLOPS" column follows another convention (its
ResNet-50 at 224 is 6.97 B where this counter gives 8.2 B): compare trends, not absolute values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_conv_weights(module: nn.Module) -> int:
    """Number of convolution weights, biases and normalisation parameters excluded.

    This is the count of Table 2 in Talebi & Milanfar: ``294 n + 10 n^2 + 18 r n^2`` for their resizer.
    """
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(module: nn.Module, input_shape: Sequence[int], **forward_kwargs) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape``, e.g. ``(1, 3, 448, 448)``.

    A multiply-add counts as 2 FLOPs (``FlopCounterMode``'s convention); interpolation and element-wise
    operations are not counted. The module runs in eval mode under ``no_grad`` (its state is left unchanged).

    Args:
        module: any module; resizers take ``size=(h, w)`` through ``forward_kwargs``.
        input_shape: the input tensor's shape.
        **forward_kwargs: passed to ``module(x, **forward_kwargs)``.
    """
    try:
        reference = next(module.parameters())
        device, dtype = reference.device, reference.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros(tuple(input_shape), device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x, **forward_kwargs)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())
