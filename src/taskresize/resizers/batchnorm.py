"""A training-mode BatchNorm of full-resolution features that are resized right after it, computed without
holding those features: ``resize(bn(h)) == bn_affine(resize(h))`` with ``h``'s own batch statistics, since every
classic resize is a weighted mean of its input (weights summing to one) and commutes with a per-channel affine
map. The statistics are gathered chunk by chunk (each chunk's mean and sum of squared deviations, combined as
Chan et al. do), the normalisation runs on the resized maps, and the running statistics are updated as
``nn.BatchNorm2d`` updates them (momentum, or the cumulative average when it is None; unbiased variance).
Gradients flow through the statistics as through BatchNorm's own: the same function, differentiated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def moments(h: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and sum of squared deviations of ``h`` ``(B, C, H, W)``, in float32 at least.

    In one pass, by the kernel that ``nn.BatchNorm2d`` computes its own batch statistics with on a CPU or a GPU
    (``torch.batch_norm_update_stats``): on a channels-last ``h`` on a CPU faster than the sum and the dot product
    of squares it replaces, and than ``torch.var_mean`` over ``(0, 2, 3)``, which reduces across the memory's inner
    dimension (``benchmarks/alternatives.py``), and accurate where the mean is far larger than the deviation, where
    the sum of squares lost its digits (``tests/test_batchnorm_resized.py``). Other devices take
    ``torch.var_mean``. The backward pass is one multiply-add over ``h`` (:class:`_Moments`), where autograd's
    would be three passes.
    """
    h = h.float() if h.dtype in (torch.float16, torch.bfloat16) else h
    return _Moments.apply(h)


class _Moments(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor) -> tuple[Tensor, Tensor]:
        if h.device.type in ("cpu", "cuda"):
            mean, var = torch.batch_norm_update_stats(h, None, None, 0.0)  # the biased variance
        else:
            var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=0)
        ctx.save_for_backward(h, mean)
        return mean, var * (h.numel() // h.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_mean: Tensor, grad_m2: Tensor) -> Tensor:
        # d mean / dh = 1 / n;  d m2 / dh = 2 (h - mean)
        h, mean = ctx.saved_tensors
        n = h.numel() // h.shape[1]
        scale = 2 * grad_m2
        shift = grad_mean / n - scale * mean
        return torch.addcmul(shift[:, None, None], h, scale[:, None, None])


def normalize_resized(bn: nn.BatchNorm2d, parts: list[tuple[Tensor, Tensor, Tensor, int]]) -> Tensor:
    """``resize(bn(h))`` for a ``bn`` in training mode, from each chunk of ``h``: ``(resize(h_i), mean_i, m2_i,
    count_i)`` (:func:`moments`; ``count_i`` positions per channel). Returns the resized maps, normalised."""
    total_count = sum(n for *_, n in parts)
    counts = torch.tensor([float(n) for *_, n in parts], dtype=parts[0][1].dtype, device=parts[0][1].device)
    total = float(total_count)
    means = torch.stack([m for _, m, _, _ in parts])  # (chunks, C)
    mean = (counts[:, None] * means).sum(0) / total
    m2 = torch.stack([s for _, _, s, _ in parts]).sum(0) + (counts[:, None] * (means - mean) ** 2).sum(0)
    var = m2 / total
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():  # nn.BatchNorm2d's update, step by step
            factor = 0.0 if bn.momentum is None else bn.momentum
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
                if bn.momentum is None:
                    factor = 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), factor)
            unbiased = m2.detach() / max(total_count - 1, 1)
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), factor)
    scale = torch.rsqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    z = torch.cat([z for z, *_ in parts])
    return torch.addcmul(shift.to(z.dtype)[:, None, None], z, scale.to(z.dtype)[:, None, None])
