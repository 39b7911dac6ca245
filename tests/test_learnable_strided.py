"""The strided-stem variant of the Talebi–Milanfar resizer: same parameters, cheaper, exact when s = 1."""

import pytest
import torch

from taskresize import LearnableResizer, count_conv_weights, count_flops, create_resizer
from taskresize.resizers import StridedLearnableResizer


@pytest.mark.parametrize(("n", "r", "expected"), [(16, 1, 11_872), (16, 2, 16_480), (32, 4, 93_376)])
def test_same_parameters_as_the_paper(n, r, expected):
    assert count_conv_weights(StridedLearnableResizer(n=n, r=r)) == expected


def test_is_the_papers_resizer_when_downscaling_by_less_than_two():
    torch.manual_seed(0)
    strided = StridedLearnableResizer((60, 70), n=8, r=2).eval()
    paper = LearnableResizer((60, 70), n=8, r=2).eval()
    paper.load_state_dict(strided.state_dict())
    x = torch.randn(2, 3, 97, 131)
    assert strided.stem_stride((97, 131), (60, 70)) == 1
    torch.testing.assert_close(strided(x), paper(x))
    torch.testing.assert_close(strided(x, size=(150, 190)), paper(x, size=(150, 190)))  # up-scaling


@pytest.mark.parametrize(("in_size", "out_size", "stride"), [(256, 64, 4), (256, 100, 2), (1024, 64, 4), (96, 32, 3)])
def test_stride_is_the_whole_factor_capped(in_size, out_size, stride):
    m = StridedLearnableResizer(out_size)
    assert m.stem_stride((in_size, in_size), (out_size, out_size)) == stride
    assert m(torch.randn(1, 3, in_size, in_size)).shape == (1, 3, out_size, out_size)


def test_flops_at_256_to_64():
    n, H, h = 16, 256, 64
    paper = count_flops(LearnableResizer(h), (1, 3, H, H))
    strided = count_flops(create_resizer("learnable-strided", output_size=h), (1, 3, H, H))
    low_res = h * h * (2 * 9 * n * n + 9 * n * n + 49 * n * 3)
    skip, features = h * h * 3 * 4, h * h * n * 4  # plain bilinear resizes: 2 x 2 taps per output value
    assert paper == 2 * (H * H * (3 * n * 49 + n * n) + low_res + skip + features)
    # the stem at stride 4 is already 64 px: no feature resize
    assert strided == 2 * (h * h * (3 * n * 49 + n * n) + low_res + skip)
    assert paper / strided > 4
