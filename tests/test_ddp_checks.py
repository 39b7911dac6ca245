"""Checks that must agree across processes: a NaN loss on one process stops every process (gloo, 2 processes)."""

import os
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from taskresize.training.callbacks import NonFiniteLoss

from helpers import free_port


class Diverged(Exception):
    pass


def _rank(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        check = NonFiniteLoss(Diverged, folder, every=1000)
        trainer = SimpleNamespace(
            current_epoch=0, global_step=3, optimizers=[SimpleNamespace(param_groups=[{"lr": 0.1}])]
        )
        for step in range(3):
            loss = torch.tensor(float("nan") if rank == 1 and step == 1 else 1.0)
            check.on_train_batch_end(trainer, None, {"loss": loss}, None, step)  # no collective per step
        try:
            check.on_train_epoch_end(trainer, None)
            outcome = "went on"
        except Diverged as error:
            outcome = str(error)
        with open(os.path.join(folder, f"rank{rank}.txt"), "w") as f:
            f.write(outcome)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU")
def test_a_nan_loss_on_one_process_stops_every_process(tmp_path):
    mp.spawn(_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    outcomes = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert all(o.startswith("training diverged") for o in outcomes), outcomes
    assert "loss is nan" in outcomes[1] and "another process" in outcomes[0]
