"""Folding BatchNorm into convolutions for inference.

In eval mode a BatchNorm layer is a per-channel affine map, ``y = a * x + b`` with ``a = gamma / sqrt(var + eps)``
and ``b = beta - a * mean``. When it directly follows a convolution, the map folds into that convolution's weights
and bias (``W' = a W``, ``bias' = a (bias - mean) + beta``) and the BatchNorm disappears. A BatchNorm that follows
anything else (a LeakyReLU, in the learnable resizer's stem) cannot fold into the convolution before the
nonlinearity, nor exactly into the next one (that one pads with zeros, which the shift would change): it becomes a
:class:`ChannelAffine`, the same map without the running statistics. Either way the fused module computes the same
function as the eval-mode original, up to float rounding. The convolution folding is PyTorch's
(:func:`torch.nn.utils.fusion.fuse_conv_bn_weights`); the affine map has no library counterpart.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

_BatchNorm = nn.BatchNorm2d


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel of ``(B, C, H, W)``: an eval-mode BatchNorm without its statistics."""

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().reshape(1, -1, 1, 1))
        self.register_buffer("shift", shift.detach().clone().reshape(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift, x, self.scale)


def _require_statistics(bn: _BatchNorm) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{bn} tracks no running statistics: it is not an affine map in eval mode, cannot fold it")


def batchnorm_affine(bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    """The eval-mode map of ``bn`` as ``(scale, shift)``, each ``(C,)``, computed in float64."""
    _require_statistics(bn)
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - scale * mean


def fold_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """A new convolution computing ``bn(conv(x))`` of the eval-mode ``bn`` (always with a bias).

    The arithmetic is :func:`torch.nn.utils.fusion.fuse_conv_bn_weights`, fed float64 copies so the folded weights
    are rounded once, to the convolution's dtype. The checks around it are ours: the library broadcasts a
    one-channel BatchNorm over any convolution without complaint and (in ``fuse_conv_bn_eval``) refuses modules in
    training mode and missing statistics with bare ``AssertionError``.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold {bn} into {conv}: {conv.out_channels} channels against {bn.num_features}")
    _require_statistics(bn)

    def double(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.detach().double()

    weight, bias = fuse_conv_bn_weights(
        double(conv.weight),
        double(conv.bias),
        double(bn.running_mean),
        double(bn.running_var),
        bn.eps,
        double(bn.weight),
        double(bn.bias),
    )
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
    fused.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
    return fused


def _as_affine(bn: _BatchNorm) -> ChannelAffine:
    dtype = bn.weight.dtype if bn.weight is not None else bn.running_mean.dtype
    return ChannelAffine(*(t.to(dtype) for t in batchnorm_affine(bn)))


def fold_batchnorms(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm of ``module`` (see the module docstring); returns the folded module.

    Inside each ``nn.Sequential``, a convolution immediately followed by a BatchNorm becomes one convolution; every
    other BatchNorm becomes a :class:`ChannelAffine`. Submodules are replaced in place; a ``Sequential`` or a
    BatchNorm passed in is replaced by the returned module. Call it on an eval-mode copy: the result has no
    BatchNorm left and no longer matches the original's ``state_dict``.
    """
    if isinstance(module, _BatchNorm):
        return _as_affine(module)
    if isinstance(module, nn.Sequential):
        layers: list[nn.Module] = []
        for layer in module:
            if isinstance(layer, _BatchNorm) and layers and type(layers[-1]) is nn.Conv2d:
                layers[-1] = fold_conv_bn(layers[-1], layer)
            else:
                layers.append(fold_batchnorms(layer))
        return nn.Sequential(*layers)
    for name, child in list(module.named_children()):
        setattr(module, name, fold_batchnorms(child))
    return module


def fused_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with its BatchNorms folded (:func:`fold_batchnorms`), without gradients."""
    fused = fold_batchnorms(copy.deepcopy(module).eval())
    fused.requires_grad_(False)
    return fused.eval()
