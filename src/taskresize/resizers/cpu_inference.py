"""The learned resizers' inference on CPU: oneDNN convolutions with their activation or residual sum fused in.

In eager PyTorch every convolution, activation and residual sum is a separate pass over memory, and at the input
resolution those passes, not the multiply-adds, set the time: at 448 x 448 a learned resizer's 16-channel maps are
13 MB per image. Where :func:`fast_path` holds (a float32 CPU tensor, no autograd, nothing tracing, exporting or
intercepting the operators), :func:`run` and :func:`conv` call oneDNN's convolution with a post-op, the kernel that
``torch.compile`` emits for the same pattern (``mkldnn._convolution_pointwise``), so the activation or the sum is
applied while the output is in cache. Elsewhere they are plain ``F.conv2d`` followed by the same operations: same
math, up to float rounding (the fused kernel rounds the sum once, the eager one twice).

Callers also process the input-resolution part image by image (:func:`image_chunks`): a fresh multi-megabyte
tensor is backed by new pages each time (glibc maps allocations above 32 MB anew on every call, and its first
touch costs as much as the convolution that fills it), while per-image buffers are reused from the heap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from taskresize.flops import counting_flops

_ACTIVATIONS = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu"}
_CHUNK_ELEMENTS = 1 << 21  # input-resolution features per chunk: 8 MB of float32, under glibc's mmap threshold


def fast_path(x: Tensor) -> bool:
    """Whether the fused oneDNN kernels apply to ``x``: a float32 CPU tensor, no gradient recorded, no autocast,
    and nothing observing the operators (FLOP counting, ``torch.compile`` / ``torch.export``, tracing, dispatch
    modes), which must see the ordinary ones."""
    return (
        not tracing()  # first: a compiler sees a constant and traces none of the rest
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
        and not counting_flops()
        and _get_current_dispatch_mode() is None
    )


def tracing() -> bool:
    """Whether ``torch.compile`` / ``torch.export`` or the TorchScript tracer is recording the computation."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def image_chunks(x: Tensor, channels: int) -> Iterator[Tensor]:
    """``x`` split along the batch so that ``channels`` feature maps at its resolution hold about 8 MB per chunk;
    whole where it is being traced (the batch size may be symbolic there, and the graph has no allocator to help)."""
    if tracing():
        yield x
        return
    per_image = channels * x.shape[-2] * x.shape[-1]
    yield from x.split(max(1, _CHUNK_ELEMENTS // max(1, per_image)))


def _activation(layer: nn.Module | None) -> tuple[str, list[float]] | None:
    kind = _ACTIVATIONS.get(type(layer))
    if kind is None:
        return None
    return kind, [layer.negative_slope] if kind == "leaky_relu" else []


def conv(
    x: Tensor,
    layer: nn.Conv2d,
    activation: nn.Module | None = None,
    add: Tensor | None = None,
    stride: tuple[int, int] | int | None = None,
    padding: tuple[int, int] | int | None = None,
) -> Tensor:
    """``activation(layer(x))`` or ``layer(x) + add``, with ``layer``'s stride and padding unless given.

    ``activation`` is a ReLU / LeakyReLU module (or None). Fused into one oneDNN call where :func:`fast_path`
    holds, else computed by the ordinary operators (in place where no gradient is recorded).
    """
    own_geometry = stride is None and padding is None
    stride = layer.stride if stride is None else _pair(stride)
    padding = layer.padding if padding is None else _pair(padding)
    fusable = layer.weight.dtype == x.dtype and layer.padding_mode == "zeros" and not isinstance(padding, str)
    if fusable and fast_path(x):
        if _phases_pay(x, layer, stride, padding, activation):
            return _conv_by_phases(x, layer, add)
        args = (list(padding), list(stride), list(layer.dilation), layer.groups)
        if add is not None and activation is None:
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, add.contiguous(memory_format=_layout(x)), layer.weight, layer.bias, *args, "add", 1.0, None, [], ""
            )
        post = _activation(activation) if add is None else None
        if post is not None or activation is None:
            kind, scalars = post or ("none", [])
            return torch.ops.mkldnn._convolution_pointwise(x, layer.weight, layer.bias, *args, kind, scalars, "")
    if own_geometry:
        y = layer(x)
    else:
        y = F.conv2d(x, layer.weight, layer.bias, stride, padding, layer.dilation, layer.groups)
    if activation is not None:
        y = _apply(activation, y, owned=True)
    return y if add is None else y + add


def by_image(
    forward: Callable[[Tensor], Tensor], x: Tensor, channels: int, layout: torch.memory_format | None = None
) -> Tensor:
    """``forward(x)`` computed on chunks of ``x`` (:func:`image_chunks`), concatenated; ``x`` in ``layout`` first
    where given (oneDNN's convolutions run best channels-last: a contiguous input would be converted by each)."""
    if layout is not None:
        x = x.contiguous(memory_format=layout)
    chunks = list(image_chunks(x, channels))
    return forward(x) if len(chunks) == 1 else torch.cat([forward(chunk) for chunk in chunks])


# A convolution with few output channels (the learned resizers' last, to 3) leaves most of the vector lanes that
# oneDNN spreads over output channels idle. Computing the output's 2x2 phases as 4x the channels -- a convolution of
# stride 2 whose (k + 1) x (k + 1) kernel holds the original one at the four offsets -- and interleaving them
# (pixel_shuffle) gives the same sums (plus exact zero taps) at 2.7x the speed (16 -> 3 channels, 7x7, 224 x 224).
_PHASES = 2
_PHASE_ATTRIBUTE = "_taskresize_phase_weights"


def _phases_pay(x: Tensor, layer: nn.Conv2d, stride, padding, activation) -> bool:
    k = layer.kernel_size
    return (
        activation is None
        and layer.out_channels * _PHASES**2 <= 16
        and layer.groups == 1
        and tuple(stride) == (1, 1)
        and tuple(layer.dilation) == (1, 1)
        and k[0] == k[1] and k[0] % 2 == 1 and tuple(padding) == (k[0] // 2, k[1] // 2)
        and x.shape[-2] % _PHASES == 0 and x.shape[-1] % _PHASES == 0
    )  # fmt: skip


def _phase_weights(layer: nn.Conv2d) -> tuple[Tensor, Tensor | None]:
    """The phase convolution's weights and bias, kept on ``layer`` until its weights change."""
    weight, bias = layer.weight, layer.bias
    # inference tensors have no version counter: not kept, as an in-place change to them could not be seen
    tracked = not weight.is_inference() and (bias is None or not bias.is_inference())
    version = (weight._version, None if bias is None else bias._version) if tracked else None
    cached = getattr(layer, _PHASE_ATTRIBUTE, None)
    if tracked and cached is not None and cached[0] is weight and cached[1] is bias and cached[2] == version:
        return cached[3], cached[4]
    r, (out_c, in_c, k, _) = _PHASES, weight.shape
    phased = weight.new_zeros(out_c, r, r, in_c, k + r - 1, k + r - 1)
    for py in range(r):
        for px in range(r):
            phased[:, py, px, :, py : py + k, px : px + k] = weight
    phased = phased.reshape(out_c * r * r, in_c, k + r - 1, k + r - 1)
    phased_bias = None if bias is None else bias.repeat_interleave(r * r)
    if tracked:
        object.__setattr__(layer, _PHASE_ATTRIBUTE, (weight, bias, version, phased, phased_bias))
    return phased, phased_bias


def _conv_by_phases(x: Tensor, layer: nn.Conv2d, add: Tensor | None) -> Tensor:
    weight, bias = _phase_weights(layer)
    args = (list(layer.padding), [_PHASES, _PHASES], [1, 1], 1)
    if add is None:
        y = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *args, "none", [], "")
    else:
        other = F.pixel_unshuffle(add, _PHASES).contiguous(memory_format=_layout(x))
        y = torch.ops.mkldnn._convolution_pointwise.binary(x, other, weight, bias, *args, "add", 1.0, None, [], "")
    return F.pixel_shuffle(y, _PHASES)


def run(layers: Iterable[nn.Module], x: Tensor, add: Tensor | None = None) -> Tensor:
    """``layers(x)`` (``+ add``), each convolution fused with the activation after it, the last with the sum."""
    modules = list(layers)
    i, owned = 0, False  # whether x is an intermediate of ours, which an activation may overwrite
    while i < len(modules):
        layer, after = modules[i], modules[i + 1] if i + 1 < len(modules) else None
        if type(layer) is nn.Conv2d and _activation(after) is not None:
            x, i = conv(x, layer, activation=after), i + 2
        elif type(layer) is nn.Conv2d and after is None and add is not None:
            x, add, i = conv(x, layer, add=add), None, i + 1
        else:
            x, i = _apply(layer, x, owned), i + 1
        owned = True
    return x if add is None else x + add


def _apply(layer: nn.Module, x: Tensor, owned: bool) -> Tensor:
    if owned and not torch.is_grad_enabled() and isinstance(layer, nn.ReLU | nn.LeakyReLU):
        return F.relu_(x) if isinstance(layer, nn.ReLU) else F.leaky_relu_(x, layer.negative_slope)
    return layer(x)


def _pair(value: tuple[int, int] | int) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _layout(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
