"""The CUDA route, run on a CPU: every place that picks a kernel by device (:func:`classic.kernel_device`, the one
such question the resizers ask) is told "not a CPU", and the resizers, one training step of each task and
``resize`` run through what a GPU would run, in float32 and under bf16 and float16 autocast (float16 with a
GradScaler). What needs a real GPU (equality with the CPU there, pt2 made on the device, inductor) is marked
``gpu`` and runs in ``make gpu-check``.

Tests elsewhere that need bit-exact equality with Pillow or the compiled uint8 passes pin the CPU (their tensors
are made there), so ``make test`` passes on a GPU machine too."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import taskresize
from taskresize import create_resizer, list_resizers
from taskresize.resizers import classic

NAMES = list_resizers()
PRECISIONS = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture
def not_a_cpu(monkeypatch):
    """Every device question answered "cuda": the kernels and paths a GPU would take, run on this CPU."""
    asked = []

    def cuda(x):
        asked.append(x.device.type)
        return "cuda"

    monkeypatch.setattr(classic, "kernel_device", cuda)
    return asked


def autocast(dtype):
    return torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)


def test_the_fixture_reaches_the_gates(not_a_cpu):
    x = torch.randint(0, 256, (1, 3, 20, 30), dtype=torch.uint8)
    taskresize.resize(x, (10, 12), "bilinear", antialias=True)
    assert not_a_cpu  # asked, and told "cuda"


@pytest.mark.parametrize("method", classic.METHODS)
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [(13, 17), (41, 70)])
def test_uint8_resizes_on_the_cuda_route_equal_the_cpu_route_within_a_grey_level(method, antialias, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 29, 37), dtype=torch.uint8, generator=g)
    on_cpu = taskresize.resize(x, size, method, antialias)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classic, "kernel_device", lambda t: "cuda")
        on_cuda = taskresize.resize(x, size, method, antialias)
    assert on_cuda.dtype == torch.uint8 and on_cuda.shape == on_cpu.shape
    assert (on_cuda.int() - on_cpu.int()).abs().max() <= 1


def test_uint8_plain_bilinear_never_reaches_a_uint8_interpolate_on_the_cuda_route(not_a_cpu, monkeypatch):
    """CUDA implements no uint8 bilinear interpolation: that route must hand F.interpolate floats only."""
    real = torch.nn.functional.interpolate
    dtypes = []

    def spy(x, *args, **kwargs):
        dtypes.append(x.dtype)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "interpolate", spy)
    x = torch.randint(0, 256, (1, 3, 20, 30), dtype=torch.uint8)
    for antialias in (False, True):
        taskresize.resize(x, (9, 40), "bilinear", antialias=antialias)
    assert dtypes and torch.uint8 not in dtypes


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", PRECISIONS, ids=str)
def test_every_resizer_trains_on_the_cuda_route(name, dtype, not_a_cpu):
    """Forward and backward in each precision (float16 with a GradScaler); float32 equals the CPU route."""
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(14, 18)).train()
    x = torch.rand(2, 3, 30, 36)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == torch.float16)
    optimiser = torch.optim.SGD(m.parameters(), lr=1e-3) if list(m.parameters()) else None
    with autocast(dtype):
        y = m(x)
    assert y.shape == (2, 3, 14, 18) and torch.isfinite(y).all()
    if optimiser is not None:
        scaler.scale(y.float().square().mean()).backward()
        scaler.step(optimiser)
        scaler.update()
        assert all(torch.isfinite(p).all() for p in m.parameters())
    if dtype == torch.float32:
        with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
            mp.setattr(classic, "kernel_device", lambda t: t.device.type)
            reference = m.eval()(x)
            mp.setattr(classic, "kernel_device", lambda t: "cuda")
            torch.testing.assert_close(m(x), reference, rtol=1e-5, atol=1e-5)


@pytest.fixture
def task_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TASKRESIZE_CACHE", str(tmp_path_factory.getbasetemp() / "task-cache"))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "iqa", "segmentation", "detection"])
@pytest.mark.parametrize("dtype", PRECISIONS, ids=str)
def test_one_training_step_of_each_task_on_the_cuda_route(task, dtype, not_a_cpu, tmp_path, task_cache):
    from taskresize.training.config import TrainConfig
    from taskresize.training.registry import get_task
    from taskresize.training.run import build

    spec = get_task(task)
    cfg = TrainConfig.from_dict({**spec.example(), "task": task, "workers": 0, "output": str(tmp_path / "run")})
    cfg = dataclasses.replace(cfg, batch_size=2)
    _, data, module = build(cfg)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    module.log = lambda *args, **kwargs: None  # no trainer here
    module.train()
    optimiser = torch.optim.SGD(module.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == torch.float16)
    with autocast(dtype):
        loss = module.training_step(batch, 0)
    assert torch.isfinite(loss), (task, dtype)
    scaler.scale(loss).backward()
    scaler.step(optimiser)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("resizer", ["learnable", "downsizenet", "lanczos"])
def test_resize_on_the_cuda_route_equals_the_cpu_route_within_a_grey_level(resizer, not_a_cpu):
    from taskresize.inference.image import resize_image

    g = torch.Generator().manual_seed(2)
    pixels = torch.randint(0, 256, (40, 52, 3), dtype=torch.uint8, generator=g).numpy()
    image = Image.fromarray(pixels)
    module = resizer if resizer == "lanczos" else create_resizer(resizer, output_size=(16, 20)).eval()
    on_cuda = resize_image(image, module, (16, 20))
    not_a_cpu.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classic, "kernel_device", lambda t: t.device.type)
        on_cpu = resize_image(image, module, (16, 20))
    a, b = (torch.from_numpy(np.array(im)).int() for im in (on_cuda, on_cpu))
    assert on_cuda.size == on_cpu.size == (20, 16) and (a - b).abs().max() <= 1


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["downsizenet", "lanczos", "area", "learnable"])
def test_pt2_export_is_made_and_run_on_the_gpu(name, tmp_path):
    from taskresize.inference.export import export_resizer
    from taskresize.inference.pixels import PixelResizer

    model = PixelResizer(create_resizer(name, output_size=24).eval())
    report = export_resizer(model, tmp_path / f"{name}.pt2", "pt2", (64, 48), device="cuda")
    assert report.max_difference <= 0.05
    program = torch.export.load(str(tmp_path / f"{name}.pt2"))
    assert all(t.device.type == "cuda" for t in program.constants.values() if isinstance(t, torch.Tensor))


@pytest.mark.gpu
@pytest.mark.parametrize("method", classic.METHODS)
@pytest.mark.parametrize("antialias", [True, False])
def test_uint8_resizes_on_the_gpu_equal_the_cpu_within_a_grey_level(method, antialias):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 61, 83), dtype=torch.uint8, generator=g)
    for size in ((30, 41), (97, 120)):
        on_cpu = taskresize.resize(x, size, method, antialias)
        on_gpu = taskresize.resize(x.cuda(), size, method, antialias).cpu()
        assert (on_gpu.int() - on_cpu.int()).abs().max() <= 1


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", PRECISIONS, ids=str)
def test_every_resizer_trains_on_the_gpu(name, dtype):
    torch.manual_seed(0)
    m = create_resizer(name, output_size=(56, 56)).cuda().train()
    x = torch.rand(4, 3, 112, 112, device="cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        y = m(x)
    assert torch.isfinite(y).all()
    if list(m.parameters()):
        scaler.scale(y.float().square().mean()).backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_training_leaves_cudnn_autotuning_alone_on_a_cpu(tmp_path):
    from taskresize.training.config import TrainConfig
    from taskresize.training.run import _trainer

    before = torch.backends.cudnn.benchmark
    _trainer(TrainConfig(accelerator="cpu"), tmp_path, [], logger=False, enable_progress_bar=False)
    assert torch.backends.cudnn.benchmark == before


@pytest.mark.gpu
def test_training_on_a_gpu_turns_cudnn_autotuning_on(tmp_path):
    from taskresize.training.config import TrainConfig
    from taskresize.training.run import _trainer

    before = torch.backends.cudnn.benchmark
    try:
        _trainer(TrainConfig(accelerator="gpu"), tmp_path, [], logger=False, enable_progress_bar=False)
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before
