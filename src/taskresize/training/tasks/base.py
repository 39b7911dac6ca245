"""What every task shares: a resizer in front of a backbone, the paper's optimiser, freezing, normalisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from taskresize.backbones import (
    auxiliary_heads,
    create_backbone,
    load_pretrained,
    pretrained_normalization,
    split_outputs,
)
from taskresize.data.normalization import IMAGENET, Normalization
from taskresize.flops import count_flops
from taskresize.resizers import create_resizer
from taskresize.resizers.classic import ClassicResizer
from taskresize.training.config import TrainConfig


class ResizerTask(L.LightningModule):
    """``uint8 images (B, 3, H, W) -> normalise -> resizer -> backbone -> outputs``.

    The data loader delivers uint8 batches at the resizer's input size; they become float only here, on the
    model's device. The resizer maps them to ``out_size``; the backbone sees only that.

    Args:
        config: a :class:`TrainConfig` as a plain dict (stored in checkpoints as is).
        num_outputs: the backbone's outputs (classes, or 10 score bins for IQA).
    """

    def __init__(self, config: dict[str, Any], num_outputs: int) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config, "num_outputs": num_outputs})
        self.cfg = TrainConfig.from_dict(config)
        self.out_size = tuple(self.cfg.out_size)
        self.resizer = create_resizer(self.cfg.resizer, output_size=self.out_size, **self.cfg.resizer_args)
        self.backbone = self.build_backbone(num_outputs)
        # as the run resolved it (training.run.input_normalization), else the pretrained weights' own, else ImageNet's
        saved = config.get("input_normalization")
        norm = Normalization.from_dict(saved) if saved else None
        norm = norm or pretrained_normalization(self.cfg.backbone, self.cfg.pretrained) or IMAGENET
        self.input_normalization = norm
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)
        for part, frozen in ((self.backbone, self.cfg.freeze_backbone), (self.resizer, self.cfg.freeze_resizer)):
            part.requires_grad_(not frozen)
        if self.cfg.compile:  # in place: the state dict's keys stay those of the modules (checkpoints unchanged)
            self.resizer.compile()
            self.backbone.compile()

    def build_backbone(self, num_outputs: int) -> nn.Module:
        """The model behind the resizer, built for ``out_size``; tasks whose models aren't classifiers override this."""
        return create_backbone(self.cfg.backbone, num_outputs, size=self.out_size)

    def load_pretrained(self, pretrained: str) -> list[str]:
        """Load ``pretrained`` weights (see :func:`~taskresize.backbones.load_pretrained`) into the backbone; returns
        the names of its parameters left as initialised."""
        return load_pretrained(self.backbone, self.cfg.backbone, pretrained)

    @property
    def has_learned_resizer(self) -> bool:
        return not isinstance(self.resizer, ClassicResizer)

    def normalization(self) -> Normalization:
        """The resizer's input convention, 0-255 units: it sees ``(pixels - mean) / std``."""
        return self.input_normalization

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 ``(B, 3, H, W)`` -> float, normalised as the backbone expects (:meth:`normalization`)."""
        return (images.float() - self.mean) / self.std

    def resize(self, images: Tensor) -> Tensor:
        """uint8 images at the resizer's input size -> normalised float images at ``out_size``."""
        return self.resizer(self.normalize(images), self.out_size)

    def forward(self, images: Tensor) -> Tensor:
        """The backbone's main logits, in training as in eval (auxiliary classifiers' logits are dropped)."""
        return self.outputs(images)[0]

    def outputs(self, images: Tensor) -> tuple[Tensor, list[tuple[float, Tensor]]]:
        """The main logits and, in training, the auxiliary classifiers' ``(loss weight, logits)``.

        Only torchvision's ``inception_v3`` and ``googlenet`` have auxiliary classifiers (see
        :func:`~taskresize.backbones.split_outputs`); for every other backbone the list is empty.
        """
        return split_outputs(self.backbone(self.resize(images)))

    def training_loss(self, images: Tensor, criterion: Callable[[Tensor], Tensor]) -> Tensor:
        """``criterion(logits)`` plus each auxiliary classifier's ``weight * criterion(aux logits)``.

        This is the papers' training loss of Inception-v3 (main + 0.4 aux) and GoogLeNet (main + 0.3 per auxiliary
        head); for every other backbone it is ``criterion(logits)``. The logged training loss is this sum.
        """
        logits, auxiliary = self.outputs(images)
        loss = criterion(logits)
        for weight, aux_logits in auxiliary:
            loss = loss + weight * criterion(aux_logits)
        return loss

    def train(self, mode: bool = True) -> ResizerTask:
        """Frozen parts stay in eval mode, so their BatchNorm statistics do not move either."""
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()
        elif self.cfg.freeze_backbone_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        if self.cfg.freeze_resizer:
            self.resizer.eval()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning restores each module's own mode around validation rather than calling train() again
        self.train()

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD with momentum, the learning rate decayed by ``lr_decay`` every ``lr_decay_epochs`` epochs; the
        resizer's rate is ``resizer_lr_scale`` times the backbone's."""
        cfg = self.cfg
        resizer = [p for p in self.resizer.parameters() if p.requires_grad]
        owned = {id(p) for p in resizer}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in owned]
        groups = [{"params": rest}, {"params": resizer, "lr": cfg.learning_rate * cfg.resizer_lr_scale}]
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise ValueError("nothing to train: both the backbone and the resizer are frozen")
        optimizer = torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epochs, gamma=cfg.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def flops(self) -> dict[str, int]:
        """FLOPs per image of the resizer (input size -> output size) and of the backbone (at the output size)."""
        h, w = self.cfg.input_size
        return {
            "resizer": count_flops(self.resizer, (1, 3, h, w), size=self.out_size),
            "backbone": count_flops(self.backbone, (1, 3, *self.out_size)),
        }

    def trainable_batchnorms(self) -> list[nn.modules.batchnorm._BatchNorm]:
        """BatchNorm layers whose statistics training moves and evaluation uses.

        Not those of frozen parts, nor those of auxiliary classifiers: these run in training only, so their running
        statistics are never used (and an eval-mode pass could not re-estimate them).
        """
        backbone_frozen = self.cfg.freeze_backbone or self.cfg.freeze_backbone_bn
        frozen = [m for m, f in ((self.backbone, backbone_frozen), (self.resizer, self.cfg.freeze_resizer)) if f]
        skip = {id(m) for part in [*frozen, *auxiliary_heads(self.backbone)] for m in part.modules()}
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in skip]
