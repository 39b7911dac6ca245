"""A linear probe: multinomial logistic regression on a pretrained backbone's frozen, pooled features.

The floor a fine-tuning recipe must beat: features of the whole images (no augmentation), pre-resized
as the training loader does (antialiased bilinear to ``--size``), normalised as the weights were trained; the
L2 weight is chosen on a fifth of the training images held out, then the probe is refit on all of them and
scored once on the validation folder.

    python benchmarks/linear_probe.py --data data/openclipart --size 112
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from taskresize.backbones import create_backbone, load_pretrained, pretrained_normalization
from taskresize.data.formats.folders import ImageFolderDataset, train_val_folders
from taskresize.data.split import SPLIT_SEED
from taskresize.data.transforms import PreResize

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@torch.no_grad()
def features(backbone: torch.nn.Module, samples, size: int, norm) -> tuple[torch.Tensor, torch.Tensor]:
    loader = torch.utils.data.DataLoader(
        ImageFolderDataset(samples, PreResize(size=(size, size))), batch_size=64, num_workers=1
    )
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (norm.mean, norm.std))
    feats, labels = [], []
    for images, y in loader:
        x = ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)
        feats.append(backbone.forward_head(backbone.forward_features(x), pre_logits=True))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def fit(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> torch.nn.Linear:
    probe = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(x), y) + l2 * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def error(probe: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (probe(x).argmax(1) != y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/openclipart")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--backbone", default="timm:tf_efficientnet_lite0")
    parser.add_argument("--pretrained", default="efficientnet-lite0")
    args = parser.parse_args()
    started = time.perf_counter()
    classes, train, val = train_val_folders(args.data, 0.2, SPLIT_SEED)
    backbone = create_backbone(args.backbone, num_classes=len(classes))
    load_pretrained(backbone, args.backbone, args.pretrained)
    backbone = backbone.eval().to(memory_format=torch.channels_last)
    norm = pretrained_normalization(args.backbone, args.pretrained)
    x_train, y_train = features(backbone, train, args.size, norm)
    x_val, y_val = features(backbone, val, args.size, norm)
    mu, sigma = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_val = (x_train - mu) / sigma, (x_val - mu) / sigma
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y_train), generator=generator)
    held, kept = order[: len(order) // 5], order[len(order) // 5 :]
    scores = {l2: error(fit(x_train[kept], y_train[kept], len(classes), l2), x_train[held], y_train[held])
              for l2 in L2_GRID}  # fmt: skip
    best = min(scores, key=scores.get)
    probe = fit(x_train, y_train, len(classes), best)
    print(f"linear probe, {args.backbone} <- {args.pretrained}, {args.size} px, {args.data}: "
          f"{len(y_train)} train / {len(y_val)} val images, L2 {best:g} (held-out errors "
          f"{', '.join(f'{k:g}: {v:.1%}' for k, v in scores.items())}); "
          f"top-1 error {error(probe, x_val, y_val):.1%} ({time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
