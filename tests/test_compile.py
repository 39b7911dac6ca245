"""Every registered resizer compiles as one graph (``torch.compile(..., fullgraph=True)``): no graph break at the
plans built from the sizes (they are constants to the compiler), the same output as eager, in eval and in a
training step (forward and backward).

On this machine the graphs are checked with the ``eager`` / ``aot_eager`` backends: they trace exactly what
inductor receives (dynamo's graph; with ``aot_eager`` also the joint forward-backward graph of AOTAutograd), and a
graph break or a data-dependent value fails there as it would with inductor, in seconds instead of minutes of C++
compilation per resizer on two cores. The inductor run itself is in the ``gpu`` tests (``make gpu-check``)."""

import pytest
import torch

from taskresize import create_resizer, list_resizers

NAMES = list_resizers()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.detach().abs().max())))


@pytest.mark.parametrize("name", NAMES)
def test_every_resizer_compiles_as_one_graph_in_eval(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(12, 10)).eval()
    x = torch.rand(2, 3, 32, 28)
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    with torch.no_grad():
        close(compiled(x), m(x))
        close(compiled(x), m(x))  # the second call runs the cached graph


@pytest.mark.parametrize("name", NAMES)
def test_every_resizer_compiles_as_one_graph_for_a_training_step(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(12, 10)).train()
    reference = create_resizer(name, output_size=(12, 10)).train()
    reference.load_state_dict(m.state_dict())
    x = torch.rand(2, 3, 32, 28, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y, y_ref = compiled(x), reference(x_ref)
    close(y, y_ref)
    (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    (y_ref * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    close(x.grad, x_ref.grad, 1e-4)  # sums in another order: float32 rounding
    for (name_, p), p_ref in zip(m.named_parameters(), reference.parameters(), strict=True):
        assert p.grad is not None, name_
        close(p.grad, p_ref.grad, 1e-4)


@pytest.mark.parametrize("name", ["lanczos", "area", "downsizenet"])
def test_plans_are_per_size_constants_and_a_new_size_recompiles(name):
    """The plans (Pillow's weight blocks, DownsizeNet's neighbours) are built outside the graph, once per size: a
    static graph per input and output size (``dynamic=False``: symbolic sizes cannot build a plan), each equal to
    eager."""
    m = create_resizer(name, output_size=8).eval()
    compiled = torch.compile(m, fullgraph=True, backend="eager", dynamic=False)
    with torch.no_grad():
        for shape, size in (((1, 3, 30, 22), None), ((2, 3, 17, 40), None), ((1, 3, 30, 22), (9, 5))):
            x = torch.rand(shape)
            close(compiled(x, size), m(x, size))


def test_the_functional_classic_resize_compiles():
    """The functional core compiles too (the module is a thin twin of it)."""
    from taskresize.resizers.classic import resize

    x = torch.rand(1, 3, 33, 47)
    for method in ("lanczos", "area", "bicubic", "bilinear", "nearest"):
        torch._dynamo.reset()
        fn = torch.compile(lambda t, method=method: resize(t, (11, 13), method), fullgraph=True, backend="eager")
        close(fn(x), resize(x, (11, 13), method))


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_every_resizer_compiles_with_inductor_on_cuda(name):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(112, 112)).cuda().eval()
    x = torch.rand(4, 3, 224, 224, device="cuda")
    compiled = torch.compile(m, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x), rtol=1e-3, atol=1e-3)
