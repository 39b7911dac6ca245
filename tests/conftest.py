"""Tests marked ``gpu`` need CUDA: they are skipped where torch sees no GPU (as on this project's machine)."""

import pytest


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (make gpu-check runs these where there is one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
