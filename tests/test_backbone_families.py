"""Every backbone family trains at sizes other than its default: one step of training and one of validation."""

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.googlenet import GoogLeNetOutputs
from torchvision.models.inception import InceptionOutputs

from taskresize.backbones import BackboneError, create_backbone, split_outputs
from taskresize.training.callbacks import PreciseBatchNorm
from taskresize.training.config import TrainConfig
from taskresize.training.run import quiet_lightning
from taskresize.training.tasks.classification import ClassificationTask

from helpers import cli, colour_folders, train_args

# the cheapest model of each family; the auxiliary classifiers each model trains with at these sizes
FAMILIES = {
    "torchvision:resnet18": 0,
    "torchvision:mobilenet_v2": 0,
    "torchvision:mobilenet_v3_small": 0,
    "torchvision:efficientnet_b0": 0,
    "torchvision:densenet121": 0,
    "torchvision:regnet_x_400mf": 0,
    "timm:convnext_atto": 0,
    "torchvision:inception_v3": 0,  # its auxiliary head needs 299 px: built without it here
    "torchvision:googlenet": 2,
    "timm:vit_tiny_patch16_224": 0,
    "timm:swin_tiny_patch4_window7_224": 0,
}


@pytest.fixture(autouse=True)
def one_thread():
    """One step of a small batch: on shared cores, more threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class OneBatch(L.LightningDataModule):
    """Two random images, for training, validation and the precise-BatchNorm pass alike."""

    def __init__(self, size):
        super().__init__()
        self.data = TensorDataset(torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8), torch.tensor([0, 2]))

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=2)

    def val_dataloader(self):
        return self.train_dataloader()

    def precise_bn_loader(self, batches, epoch):
        return self.train_dataloader()


@pytest.mark.parametrize("backbone", FAMILIES)
@pytest.mark.parametrize("size", [(112, 112), (96, 128)], ids=["112x112", "96x128"])
def test_every_family_trains_and_validates_at_a_size_other_than_its_default(backbone, size):
    # 112, not 96: at 96x96 inception_v3's last maps are 1x1, and BatchNorm over two values is degenerate
    L.seed_everything(0, verbose=False)
    cfg = TrainConfig(backbone=backbone, resizer="bilinear", out_size=list(size), batch_size=2)
    task = ClassificationTask(cfg.to_dict(), num_outputs=3)
    data = OneBatch(size)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=1, num_sanity_val_steps=0, logger=False, callbacks=[PreciseBatchNorm(1)],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with quiet_lightning():
        trainer.fit(task, datamodule=data)  # the task's training_step, precise BN (train-mode BN), validation_step
    logged = trainer.callback_metrics
    assert math.isfinite(logged["train/loss_epoch"]) and math.isfinite(logged["val/loss"])

    images, _ = data.data[:]
    task.train()  # in training the auxiliary classifiers run too; the task's forward gives the main logits
    logits, auxiliary = task.outputs(images)
    assert logits.shape == (2, 3) and len(auxiliary) == FAMILIES[backbone]
    assert task(images).shape == (2, 3)
    assert task.flops()["backbone"] > 0  # metrics.json's FLOPs are counted on the inference graph without error


def test_auxiliary_classifiers_carry_the_papers_loss_weights():
    main, first, second = torch.zeros(1, 3), torch.ones(1, 3), torch.full((1, 3), 2.0)
    logits, auxiliary = split_outputs(InceptionOutputs(main, first))
    assert logits is main and [(w, a) for w, a in auxiliary] == [(0.4, first)]
    logits, auxiliary = split_outputs(GoogLeNetOutputs(main, second, first))
    assert logits is main and [w for w, _ in auxiliary] == [0.3, 0.3] and auxiliary[0][1] is first
    assert split_outputs(main) == (main, [])


@pytest.mark.parametrize(
    ("backbone", "size", "minimum"),
    [("torchvision:inception_v3", (74, 300), 75), ("timm:vit_tiny_patch16_224", (8, 8), 16),
     ("torchvision:squeezenet1_0", (20, 20), 21)],
)  # fmt: skip
def test_a_size_too_small_for_the_model_names_the_smallest_it_takes(backbone, size, minimum):
    with pytest.raises(BackboneError, match=f"at least {minimum}x{minimum} px, not {size[0]}x{size[1]}"):
        create_backbone(backbone, 2, size=size)
    create_backbone(backbone, 2, size=(minimum, minimum))


def test_train_refuses_a_size_too_small_for_the_model_before_writing_anything(tmp_path, capsys):
    data = colour_folders(tmp_path / "data", per_class=2)
    args = train_args(data, tmp_path / "run", **{"--backbone": "torchvision:squeezenet1_0", "--out-size": 16})
    assert cli("train", *args) == 2
    assert (
        "error: backbone torchvision:squeezenet1_0 needs inputs of at least 21x21 px, not 16x16"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()
