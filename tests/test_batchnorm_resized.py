"""The learnable resizer's stem BatchNorm, applied after the resize with the full-resolution batch statistics
gathered chunk by chunk, is the BatchNorm of the paper's order: outputs, gradients, running statistics."""

import copy

import pytest
import torch
from torch import nn

from taskresize import create_resizer
from taskresize.resizers.batchnorm import moments


class WholeBatchNorm(nn.BatchNorm2d):
    """A BatchNorm2d of another type: the resizer then normalises the full-resolution batch, then resizes."""


def _pair(name: str, out_size, **kwargs):
    torch.manual_seed(0)
    chunked = create_resizer(name, output_size=out_size, **kwargs).double().train()
    reference = copy.deepcopy(chunked)
    bn = reference.stem[4]
    reference.stem[4] = WholeBatchNorm(bn.num_features, eps=bn.eps, momentum=bn.momentum).double()
    reference.stem[4].load_state_dict(bn.state_dict())
    return chunked, reference


@pytest.mark.parametrize(("name", "shape", "out_size", "kwargs"), [
    ("learnable", (3, 3, 90, 110), (44, 56), {}),
    ("learnable", (3, 3, 400, 380), (100, 90), {}),  # 16 maps of 400 x 380 exceed a chunk: image by image
    ("learnable", (3, 3, 400, 380), (100, 90), {"checkpoint": True}),
    ("learnable", (2, 3, 40, 44), (20, 31), {"interpolation": "lanczos", "antialias": True}),
    ("learnable", (2, 3, 40, 44), (60, 70), {"interpolation": "bicubic"}),  # up-scaling
    ("learnable-strided", (4, 3, 96, 96), (32, 32), {}),
])  # fmt: skip
@pytest.mark.parametrize("momentum", [0.1, None])
def test_the_batchnorm_after_the_resize_is_the_batchnorm_before_it(name, shape, out_size, kwargs, momentum):
    chunked, reference = _pair(name, out_size, **kwargs)
    for model in (chunked, reference):
        model.stem[4].momentum = momentum
    for step in range(2):  # the second step starts from updated running statistics
        x = torch.rand(*shape, dtype=torch.float64, requires_grad=True)
        got, expected = chunked(x), reference(x)
        torch.testing.assert_close(got, expected, atol=1e-11, rtol=1e-11)
        g = torch.randn_like(got)
        grads = torch.autograd.grad(got, [x, *chunked.parameters()], g)
        reference_grads = torch.autograd.grad(expected, [x, *reference.parameters()], g)
        for a, b in zip(grads, reference_grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
        ours, theirs = chunked.stem[4], reference.stem[4]
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, atol=1e-13, rtol=0)
        torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-13, rtol=0)
        assert ours.num_batches_tracked == theirs.num_batches_tracked == step + 1


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("scale", "offset"), [(2.0, 1.0), (1.0, 100.0), (0.01, 5.0)])  # the last two: mean >> spread
@pytest.mark.parametrize("shape", [(3, 5, 17, 19), (2, 16, 128, 96)])
def test_moments_are_the_mean_and_the_sum_of_squared_deviations(layout, scale, offset, shape):
    torch.manual_seed(0)
    h = (torch.randn(*shape) * scale + offset).contiguous(memory_format=layout)
    mean, m2 = moments(h)
    var, expected_mean = torch.var_mean(h.double(), dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(mean.double(), expected_mean, atol=1e-5 * offset, rtol=0)
    # float32 throughout: the sum of squares minus n mean^2 was 6% off where the mean is 500 deviations
    torch.testing.assert_close(m2.double(), var * (h.numel() // h.shape[1]), rtol=1e-4, atol=0)
    assert moments(h.bfloat16())[0].dtype == torch.float32


def test_the_moments_backward_is_their_derivative():
    torch.manual_seed(1)
    h = (torch.randn(2, 3, 5, 7, dtype=torch.float64) * 2 + 1).contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(moments, (h.requires_grad_(),))
