"""FLOP and parameter accounting: one convention for every resizer and backbone.

The convention: a multiply-add counts **2 FLOPs**. Counted are convolutions and matrix products (by
``torch.utils.flop_counter.FlopCounterMode``) and every tap of every resampling pass, by formula: the classic
resizers, the learned resizers' base resizes, DownsizeNet's weighted sum of neighbours and the saliency samplers'
bilinear taps, 4 per output value and pyramid level (see :func:`counted_by_formula`). A separable resize counts each
of its passes in the order it runs them (Pillow's, see ``resizers/classic.py``): ``2 x taps x`` the pixels that pass
writes; torch's plain (non-antialiased) bilinear and bicubic kernels are not separable and count their 2x2 / 4x4
taps per output pixel, plain ``area`` its pooling window. Element-wise operations (activations, normalisation,
additions of whole tensors) and pure selection (``nearest``, DownsizeNet's choice of the feature at the top-left
neighbour) count 0, as in most papers' tables; so does interpolation inside a backbone that does not go through
:func:`taskresize.resize` (e.g. a segmentation head's up-sampling of its logits).
The Talebi–Milanfar paper's "FLOPS" column follows another convention (its ResNet-50 at 224 is 6.97 B where this
counter gives 8.2 B): compare trends, not absolute values.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

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

    The module docstring states the convention (a multiply-add counts 2; every resampling tap is counted;
    element-wise operations are not). The module runs in eval mode under ``no_grad`` (its state is left unchanged).

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
    ledger = _Ledger(FlopCounterMode(display=False))
    _LEDGERS.stack.append(ledger)
    try:
        with torch.no_grad(), ledger.counter:
            module(x, **forward_kwargs)
    finally:
        _LEDGERS.stack.pop()
        module.train(was_training)
    return ledger.total()


class _Ledger:
    """The FLOPs of one :func:`count_flops` call: what the counter measured, corrected by formulas."""

    def __init__(self, counter: FlopCounterMode) -> None:
        self.counter = counter
        self.correction = 0

    def total(self) -> int:
        return int(self.counter.get_total_flops()) + self.correction


class _Ledgers(threading.local):
    """The count_flops calls in progress in this thread, innermost last (FlopCounterMode counts one thread)."""

    def __init__(self) -> None:
        self.stack: list[_Ledger] = []


_LEDGERS = _Ledgers()


def counting_flops() -> bool:
    """Whether a :func:`count_flops` call is in progress (a cheap check for hot paths and traced code)."""
    return bool(_LEDGERS.stack)


@contextlib.contextmanager
def counted_by_formula(flops: Callable[[], int]) -> Iterator[None]:
    """Count the enclosed computation as ``flops()`` FLOPs, whatever the counter measures inside it.

    For operations whose cost the counter gets wrong: interpolation kernels (counted 0) and resampling done as
    block matrix products (counted with the blocks' zeros). Outside :func:`count_flops` this does nothing and
    ``flops`` is never called, so it costs nothing on the data path. Nested uses count the outermost formula.
    """
    if not _LEDGERS.stack:
        yield
        return
    ledger = _LEDGERS.stack[-1]
    before = ledger.total()
    yield
    ledger.correction += int(flops()) - (ledger.total() - before)


def flop_matched_size(
    flops_at: Callable[[tuple[int, int]], int], target: float, size: Sequence[int], limit: int = 16
) -> tuple[int, int]:
    """The input size at which a model alone costs ``target`` FLOPs: for the FLOP-matched baseline of a learned
    resizer, ``flops_at`` is the backbone's cost at a size and ``target`` what resizer and backbone cost together.

    The height grows from ``size``'s (the width in proportion, rounded) until ``flops_at`` reaches ``target``
    (doubling, then halving the interval; ``flops_at`` must grow with the size); of the two sizes around the
    target, the one whose cost is nearer is returned. ``size`` itself when it costs ``target`` or more already.

    Args:
        flops_at: FLOPs per image at an ``(h, w)`` size.
        target: the FLOPs to match.
        size: the ``(h, w)`` to start from (the equal-output-size comparison's).
        limit: at most ``2**limit`` times the starting height is searched.
    """
    h0, w0 = int(size[0]), int(size[1])

    def at(h: int) -> tuple[int, int]:
        return h, max(1, round(w0 * h / h0))

    cost = {h0: flops_at(at(h0))}
    if cost[h0] >= target:
        return at(h0)
    low, high = h0, h0 * 2
    while True:
        cost[high] = flops_at(at(high))
        if cost[high] >= target or high >= h0 * 2**limit:
            break
        low, high = high, high * 2
    while high - low > 1:  # cost[low] < target <= cost[high]
        mid = (low + high) // 2
        cost[mid] = flops_at(at(mid))
        if cost[mid] >= target:
            high = mid
        else:
            low = mid
    return at(high if cost[high] - target <= target - cost[low] else low)
