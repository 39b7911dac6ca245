"""What every registered resizer promises, checked over the registry (a new resizer is tested by being registered):
its ``forward`` is one computation, the same in training and eval (up to BatchNorm's statistics), for any batch
split, layout or autograd state; it survives dtype and device changes after it ran; it copies and round-trips its
state; precise BatchNorm recomputes the statistics that training normalises by, whatever the model's mode."""

import copy

import pytest
import torch
from torch import nn

from taskresize import create_resizer, list_resizers
from taskresize.resizers.registry import resizer_arguments
from taskresize.training.callbacks import recompute_batchnorm

NAMES = list_resizers()
LEARNED = list_resizers(learned=True)
IN, OUT = (40, 36), (20, 18)  # down-scaling by 2: learnable-strided's stem runs at a stride


def batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def make(name: str, seed: int = 0) -> nn.Module:
    """The resizer with random BatchNorm statistics and affine parameters, so that no identity hides a mistake."""
    torch.manual_seed(seed)
    m = create_resizer(name, output_size=OUT)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in batchnorms(m):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 2 + 0.2)
            bn.weight.copy_(torch.randn(bn.num_features, generator=g))
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
        for p in m.parameters():  # zero-initialised parameters (MULLER's) made to matter
            if not p.abs().sum():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, *IN, generator=torch.Generator().manual_seed(seed))


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * max(1.0, float(b.abs().max())))


def eval_output(m: nn.Module, x: torch.Tensor, size=None) -> torch.Tensor:
    with torch.no_grad():
        return m.eval()(x, size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_dtype_change_after_an_eval_call_just_works(name, dtype):
    x = images()
    expected = eval_output(make(name), x).double()
    conversions = [lambda mod: mod.to(dtype), {torch.float64: nn.Module.double, torch.float16: nn.Module.half,
                                               torch.bfloat16: nn.Module.bfloat16}[dtype]]  # fmt: skip
    for convert in conversions:
        m = make(name)
        eval_output(m, x)  # the module has run before it is converted, in place
        with torch.no_grad():
            y = convert(m)(x.to(dtype))
        assert y.dtype == dtype and y.shape == expected.shape
        close(y.double(), expected, rtol=1e-6 if dtype == torch.float64 else 0.08)
        m.float()(x)  # and back


@pytest.mark.parametrize("name", NAMES)
def test_the_meta_device_after_an_eval_call_gives_shapes(name):
    m = make(name)
    eval_output(m, images())
    y = m.to("meta")(images().to("meta"), (13, 17))
    assert y.device.type == "meta" and tuple(y.shape) == (3, 3, 13, 17)


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_and_state_dict_round_trips(name):
    m = make(name)
    x = images()
    expected = eval_output(m, x)
    close(eval_output(copy.deepcopy(m), x), expected, rtol=0)
    rebuilt = create_resizer(name, **m.config())
    rebuilt.load_state_dict(m.state_dict())
    close(eval_output(rebuilt, x), expected, rtol=0)
    assert rebuilt.config() == m.config()
    assert list(m.config()) == list(resizer_arguments(name))  # the registered signature, every argument


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_a_training_mode_forward_with_the_running_statistics(name):
    """No hidden eval path: the eval output equals a train-mode forward whose BatchNorms use (and keep) the
    running statistics."""
    m = make(name)
    x = images()
    expected = eval_output(m, x)
    m.train()
    for bn in batchnorms(m):
        bn.track_running_stats, bn.momentum = True, 0.0  # train-mode layers that normalise by the running stats
        bn.eval()
    for module in m.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert module.training
    with torch.no_grad():
        close(m(x), expected)


@pytest.mark.parametrize("name", [n for n in NAMES if batchnorms(create_resizer(n))])
def test_precise_batchnorm_gives_the_same_statistics_in_eval_and_train_mode(name):
    """Lightning validates with the model in eval mode and precise BN switches only the BatchNorms to train mode:
    the statistics must be those of the training forward, the ones training normalises by."""
    x = images(4)
    statistics = []
    for mode in (nn.Module.eval, nn.Module.train):
        m = mode(make(name))
        recompute_batchnorm(m, [(x, None)], batchnorms(m))
        statistics.append([(bn.running_mean.clone(), bn.running_var.clone()) for bn in batchnorms(m)])
    for (mean_eval, var_eval), (mean_train, var_train) in zip(*statistics, strict=True):
        close(mean_eval, mean_train)
        close(var_eval, var_train)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [None, (23, 31), (80, 72)], ids=["default", "other", "up"])
def test_batched_equals_image_by_image(name, size):
    m = make(name)
    x = images(3)
    whole = eval_output(m, x, size)
    close(torch.cat([eval_output(m, x[i : i + 1], size) for i in range(3)]), whole)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_equals_contiguous(name):
    m = make(name)
    x = images()
    close(eval_output(m, x.contiguous(memory_format=torch.channels_last)), eval_output(m, x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_with_and_without_autograd_the_same_output(name, train):
    m = make(name).train(train)
    x = images()
    state = copy.deepcopy(m.state_dict())
    with torch.no_grad():
        without = m(x)
    m.load_state_dict(state)  # the training forward moved the running statistics: the same start for both
    with_grad = m(x.requires_grad_())
    close(with_grad.detach(), without)
    if any(p.requires_grad for p in m.parameters()):
        with_grad.sum().backward()


@pytest.mark.parametrize("name", LEARNED)
def test_the_inference_form_equals_the_eval_original(name):
    m = make(name)
    x = images()
    fused = m.fuse()
    close(eval_output(fused, x), eval_output(m, x))
    close(eval_output(fused, x, (23, 31)), eval_output(m, x, (23, 31)))
    assert fused.config() == m.config()
    assert all(module.training is False for module in fused.modules())


@pytest.mark.parametrize("name", NAMES)
def test_forward_leaves_nothing_on_the_module(name):
    """No derived tensors kept on the user's modules: the attributes after a few calls are those after none."""
    m = make(name)

    def attributes(module):
        return {(n, k) for n, sub in module.named_modules() for k in vars(sub)}

    before = attributes(m)
    x = images()
    eval_output(m, x)
    eval_output(m, x, (23, 31))
    m.train()(x)
    assert attributes(m) == before
