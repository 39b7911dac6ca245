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

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from taskresize.flops import counting_flops
from taskresize.resizers.fuse import ChannelAffine, batchnorm_affine

_ACTIVATIONS = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu"}
_CHUNK_ELEMENTS = 1 << 21  # input-resolution features per chunk: 8 MB of float32, under glibc's mmap threshold


def fast_path(x: Tensor) -> bool:
    """Whether the fused oneDNN kernels apply to ``x``: a float32 CPU tensor, no gradient recorded, no autocast,
    and nothing observing the operators (FLOP counting, ``torch.compile`` / ``torch.export``, tracing, dispatch
    modes), which must see the ordinary ones."""
    return unobserved_cpu(x) and _eager_float32(x)


def _eager_float32(x: Tensor) -> bool:
    """The part of :func:`fast_path` beyond :func:`unobserved_cpu`: float32, no gradient recorded, no autocast."""
    return (
        x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
    )


def unobserved_cpu(x: Tensor) -> bool:
    """Whether ``x`` is on a CPU and nothing observes the operators (see :func:`fast_path`): where the same sums
    may be computed by other operators, e.g. a convolution by output phases (:func:`conv`), in training too."""
    return (
        not tracing()  # first: a compiler sees a constant and traces none of the rest
        and x.device.type == "cpu"
        and not counting_flops()
        and _get_current_dispatch_mode() is None
    )


def tracing() -> bool:
    """Whether ``torch.compile`` / ``torch.export`` or the TorchScript tracer is recording the computation."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def image_chunks(x: Tensor, channels: int) -> Iterator[Tensor]:
    """``x`` split along the batch so that ``channels`` feature maps at its resolution hold about 8 MB per chunk, on
    a CPU; whole elsewhere (a GPU's caching allocator reuses its memory, and small launches would cost) and where it
    is being traced (the batch size may be symbolic there)."""
    if x.device.type != "cpu" or tracing():
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
    holds, else computed by the ordinary operators (in place where no gradient is recorded). A convolution to few
    channels runs by output phases on a CPU, in training too (see below).
    """
    own_geometry = stride is None and padding is None
    stride = layer.stride if stride is None else _pair(stride)
    padding = layer.padding if padding is None else _pair(padding)
    fusable = layer.weight.dtype == x.dtype and layer.padding_mode == "zeros" and not isinstance(padding, str)
    cpu = fusable and unobserved_cpu(x)  # checked once: it runs for every convolution of every image
    if cpu and _phases_pay(x, layer, stride, padding, activation):
        return _conv_by_phases(x, layer, add)
    if cpu and _eager_float32(x):  # the fast path
        args = (list(padding), list(stride), list(layer.dilation), layer.groups)
        post = ("none", []) if activation is None else _activation(activation)
        if add is not None and activation is None:
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, add.contiguous(memory_format=_layout(x)), layer.weight, layer.bias, *args, "add", 1.0, None, [], ""
            )
        if add is None and post is not None:
            return torch.ops.mkldnn._convolution_pointwise(x, layer.weight, layer.bias, *args, *post, "")
    bands = _weight_grad_bands(x, layer, stride, padding) if cpu else 1
    if bands > 1:
        y = _WeightGradByRowBands.apply(x, layer.weight, layer.bias, padding, bands)
    elif own_geometry:
        y = layer(x)
    else:
        y = F.conv2d(x, layer.weight, layer.bias, stride, padding, layer.dilation, layer.groups)
    if activation is not None:
        y = _apply(activation, y, owned=True)
    return y if add is None else y + add


# oneDNN computes a convolution's weight gradient in parallel over the images of the batch: a chunk of one image
# (the learned resizers' input-resolution chunks at 448 px and above) leaves all threads but one idle for it. Its
# output rows cut into bands, stacked as a batch (a view of a channels-last gradient; the input's bands, with their
# halo rows, copied), give the same sums with every thread at work (benchmarks/alternatives.py, weight_grad_bands).
def _weight_grad_bands(x: Tensor, layer: nn.Conv2d, stride: tuple[int, int], padding: tuple[int, int]) -> int:
    """How many bands of rows the weight gradient of ``layer`` on ``x`` is computed in (1: as one batch)."""
    if not (torch.is_grad_enabled() and layer.weight.requires_grad) or x.dim() != 4:
        return 1
    if torch.is_autocast_enabled(x.device.type):  # autocast would cast the forward's operands, not the backward's
        return 1
    if tuple(stride) != (1, 1) or tuple(layer.dilation) != (1, 1) or layer.groups != 1:
        return 1
    if not x.is_contiguous(memory_format=torch.channels_last):
        return 1
    bands = torch.get_num_threads() // x.shape[0]
    out_h = x.shape[-2] + 2 * padding[0] - layer.kernel_size[0] + 1
    while bands > 1 and (out_h % bands or out_h // bands < layer.kernel_size[0]):
        bands -= 1
    return bands


class _WeightGradByRowBands(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, 1, padding)``; its weight and bias gradients computed in bands of output rows."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int], bands: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.bands, ctx.has_bias = tuple(padding), bands, bias is not None
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        (ph, pw), bands = ctx.padding, ctx.bands
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, bias_sizes, [1, 1], [ph, pw], [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        b, out_h = grad.shape[0], grad.shape[2]
        rows = out_h // bands
        stacked_grad = _stacked_rows(grad.contiguous(memory_format=torch.channels_last), bands)
        span = rows + weight.shape[2] - 1
        if span == rows:  # no halo rows: the input's bands are a view too
            stacked_x = _stacked_rows(x, bands)
        else:
            padded = F.pad(x, (0, 0, ph, ph))
            stacked_x = torch.stack([padded[:, :, i * rows : i * rows + span] for i in range(bands)], dim=1)
            stacked_x = stacked_x.reshape(b * bands, x.shape[1], span, x.shape[3]).contiguous(
                memory_format=torch.channels_last
            )
        _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            stacked_grad, stacked_x, weight, bias_sizes, [1, 1], [0, pw], [1, 1], False, [0, 0], 1,
            [False, True, ctx.has_bias],
        )  # fmt: skip
        return grad_x, grad_weight, grad_bias if ctx.has_bias else None, None, None


def _stacked_rows(t: Tensor, bands: int) -> Tensor:
    """``t`` ``(B, C, H, W)``, channels-last, as ``(B * bands, C, H / bands, W)``: its bands of rows as images (a
    view: each band is a contiguous block of a channels-last tensor)."""
    b, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(b * bands, h // bands, w, c).permute(0, 3, 1, 2)


# The first two layers of a learned resizer's stem at the input resolution (a convolution and a 1x1 one, each
# with its activation), computed in bands of rows: each band of the first map stays in cache, and the second is
# written into a buffer kept per module and thread, so that no image's full-resolution map is allocated (and
# faulted in) anew on every call -- at 1024 x 1024 one map is 67 MB, above glibc's mmap threshold.
_BAND_ELEMENTS = 1 << 18  # of the first map per band: 1 MB of float32
_BANDED_ABOVE = 1 << 23  # elements of one image's map (32 MB of float32, glibc's largest mmap threshold): below,
# the whole image's maps are reused from the heap, and one call is faster than bands (benchmarks/alternatives.py)
_WORKSPACES: weakref.WeakKeyDictionary[nn.Module, dict[int, Tensor]] = weakref.WeakKeyDictionary()


def banded_pair(
    x: Tensor, first: nn.Conv2d, first_activation: nn.Module, second: nn.Conv2d, second_activation: nn.Module,
    stride: int, owner: nn.Module,
) -> Tensor | None:  # fmt: skip
    """``second_activation(second(first_activation(first(x))))`` for one image ``x`` ``(1, C, H, W)`` in bands of
    rows (see above), or None where it does not apply or pay: maps of 32 MB or less (``_BANDED_ABOVE``), not on
    the fast path, a batch of several images, a ``second`` that is not a plain 1x1 convolution, an activation
    other than ReLU / LeakyReLU. The result is a view of the kept buffer: valid until the next call for ``owner``
    in this thread."""
    post1, post2 = _activation(first_activation), _activation(second_activation)
    plain_1x1 = (second.kernel_size, second.stride, second.padding, second.groups) == ((1, 1), (1, 1), (0, 0), 1)
    plain_first = first.padding_mode == "zeros" and first.dilation == (1, 1) and not isinstance(first.padding, str)
    if not (x.shape[0] == 1 and plain_1x1 and plain_first and post1 and post2) or not fast_path(x):
        return None
    (kh, kw), (ph, pw) = first.kernel_size, first.padding
    out_h = (x.shape[-2] + 2 * ph - kh) // stride + 1
    out_w = (x.shape[-1] + 2 * pw - kw) // stride + 1
    if first.out_channels * out_h * out_w <= _BANDED_ABOVE:
        return None
    shape = (out_h, out_w, second.out_channels)
    workspaces = _WORKSPACES.setdefault(owner, {})
    buffer = workspaces.get(threading.get_ident())
    if buffer is None or tuple(buffer.shape) != shape or buffer.dtype != x.dtype:
        buffer = workspaces[threading.get_ident()] = torch.empty(shape, dtype=x.dtype)
    padded = F.pad(x, (0, 0, ph, ph)).contiguous(memory_format=torch.channels_last)
    weight = second.weight.reshape(second.out_channels, -1).T
    band = max(1, _BAND_ELEMENTS // (first.out_channels * out_w))
    for r0 in range(0, out_h, band):
        r1 = min(out_h, r0 + band)
        rows = padded[:, :, r0 * stride : (r1 - 1) * stride + kh]
        h = torch.ops.mkldnn._convolution_pointwise(
            rows, first.weight, first.bias, [0, pw], [stride, stride], list(first.dilation), first.groups, *post1, ""
        )
        out = buffer[r0:r1].view(-1, second.out_channels)
        flat = h.permute(0, 2, 3, 1).reshape(-1, first.out_channels)
        if second.bias is None:
            torch.mm(flat, weight, out=out)
        else:
            torch.addmm(second.bias, flat, weight, out=out)
        _apply(second_activation, out, owned=True)
    return buffer.permute(2, 0, 1).unsqueeze(0)


# A plain (non-antialiased) bilinear resize down by an integer factor k reads the same taps around every output
# pixel: two of 1/2 beside its centre for an even k, the pixel at its centre for an odd one. It is then a depthwise
# convolution of stride k, and a per-channel affine map after it (an eval-mode BatchNorm) folds into its taps and
# bias: one pass over the map instead of two, and torch's channels-last bilinear kernel is the slower one at these
# factors. Above a factor of 3 the interpolation reads few of the pixels and is faster (benchmarks/alternatives.py,
# resize_by_depthwise).
_DEPTHWISE_FACTORS = (1, 2, 3)


def resize_by_depthwise(
    x: Tensor, size: tuple[int, int], method: str, antialias: bool, affine: nn.Module | None = None
) -> Tensor | None:
    """``affine(resize(x, size, method, antialias))`` as one depthwise convolution of ``x`` ``(B, C, H, W)``, or None
    where that does not apply: off the fast path, another method or antialiasing, other factors than 1-3 on either
    axis (not both 1), or an ``affine`` other than None, a :class:`ChannelAffine` or an eval-mode BatchNorm2d."""
    if method != "bilinear" or antialias or x.dim() != 4 or not fast_path(x):
        return None
    taps = [_plain_bilinear_taps(n, m) for n, m in zip(x.shape[-2:], size, strict=True)]
    if None in taps or tuple(x.shape[-2:]) == tuple(size):
        return None
    scale_shift = _scale_shift(affine, x)
    if scale_shift is None:
        return None
    scale, shift = scale_shift
    (ty, factor_y), (tx, factor_x) = taps
    channels = x.shape[1]
    kernel = torch.tensor(ty, dtype=x.dtype)[:, None] * torch.tensor(tx, dtype=x.dtype)
    weight = kernel.expand(channels, 1, *kernel.shape)
    weight = (weight * scale[:, None, None, None]).contiguous() if scale is not None else weight.contiguous()
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, shift, [0, 0], [factor_y, factor_x], [1, 1], channels, "none", [], ""
    )


def _plain_bilinear_taps(in_size: int, out_size: int) -> tuple[list[float], int] | None:
    """The taps of ``F.interpolate(mode="bilinear", align_corners=False)`` from ``in_size`` to ``out_size`` along one
    axis, from the first input pixel of each window, with the stride, where the factor is in
    ``_DEPTHWISE_FACTORS``; else None. Output ``i`` is centred on ``k i + (k - 1) / 2``."""
    factor, rest = divmod(in_size, out_size)
    if rest or factor not in _DEPTHWISE_FACTORS:
        return None
    return [0.0] * ((factor - 1) // 2) + ([0.5, 0.5] if factor % 2 == 0 else [1.0]), factor


def _scale_shift(affine: nn.Module | None, x: Tensor) -> tuple[Tensor | None, Tensor | None] | None:
    """``affine`` as per-channel ``(scale, shift)`` in ``x``'s dtype, ``(None, None)`` for none, None if it is not
    an affine map this module knows."""
    if affine is None:
        return None, None
    if isinstance(affine, ChannelAffine):
        return affine.scale.reshape(-1).to(x.dtype), affine.shift.reshape(-1).to(x.dtype)
    if type(affine) is nn.BatchNorm2d and not affine.training and affine.running_mean is not None:
        return tuple(t.to(x.dtype) for t in batchnorm_affine(affine))
    return None


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
# (pixel_shuffle) gives the same sums (plus exact zero taps), about twice as fast (benchmarks/alternatives.py). In
# training the phase weights are made from the layer's on every call, so that its gradient flows back through them
# (the training step with and without: benchmarks/alternatives.py, training_changes).
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
    phased, phased_bias = _phased(weight, bias)
    if tracked:
        object.__setattr__(layer, _PHASE_ATTRIBUTE, (weight, bias, version, phased, phased_bias))
    return phased, phased_bias


def _phased(weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``weight`` ``(out, in, k, k)`` at the four offsets of a ``(4 out, in, k + 1, k + 1)`` kernel, ``bias`` once per
    phase (differentiable: made under autograd, the gradient of each phase flows back to ``weight``)."""
    r, (out_c, in_c, k, _) = _PHASES, weight.shape
    phased = weight.new_zeros(out_c, r, r, in_c, k + r - 1, k + r - 1)
    for py in range(r):
        for px in range(r):
            phased[:, py, px, :, py : py + k, px : px + k] = weight
    phased = phased.reshape(out_c * r * r, in_c, k + r - 1, k + r - 1)
    return phased, None if bias is None else bias.repeat_interleave(r * r)


def _conv_by_phases(x: Tensor, layer: nn.Conv2d, add: Tensor | None) -> Tensor:
    """``layer(x) + add`` by output phases (see above): the phase weights made anew from the layer's where they need
    a gradient, kept where they do not; the sum added in place where no gradient is recorded."""
    needs_grad = torch.is_grad_enabled() and any(p is not None and p.requires_grad for p in (layer.weight, layer.bias))
    weight, bias = _phased(layer.weight, layer.bias) if needs_grad else _phase_weights(layer)
    y = F.pixel_shuffle(F.conv2d(x, weight, bias, _PHASES, layer.padding), _PHASES)
    if add is None:
        return y
    return y + add if torch.is_grad_enabled() or add.dtype != y.dtype else y.add_(add)


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
