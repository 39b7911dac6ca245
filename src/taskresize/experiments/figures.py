"""Figures of what resizers do: inputs, classic and learned outputs, and their amplified difference
(like Talebi & Milanfar, Figs. 2 and 4-6)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from taskresize.resizers.classic import resize

# A column maps a uint8 batch (B, 3, H, W) at the input size to a uint8 batch at the output size.
Column = Callable[[Tensor], Tensor]


def at_common_size(batches: list[Tensor]) -> list[Tensor]:
    """The batches enlarged with nearest-neighbour to the largest height and width among them (none is shrunk
    when one batch is the largest in both)."""
    h = max(b.shape[-2] for b in batches)
    w = max(b.shape[-1] for b in batches)
    return [b if tuple(b.shape[-2:]) == (h, w) else resize(b, (h, w), "nearest") for b in batches]


def comparison_figure(
    images: Tensor,
    columns: dict[str, Column],
    path: str | os.PathLike,
    reference: str | None = None,
    amplify: float = 4.0,
    title: str | None = None,
) -> Path:
    """Save a grid: one row per image; the input, then each column's output, then ``|column - reference| x
    amplify`` for every column other than ``reference``. All panels are drawn at the largest panel's size with
    nearest-neighbour pixels (:func:`at_common_size`), so every pixel of a down-scaled output, and of the input
    of an up-scaling resizer, stays visible.

    Args:
        images: uint8 ``(B, 3, H, W)`` inputs.
        columns: name -> function from the inputs to resized uint8 images.
        path: the PNG to write.
        reference: the column the others are compared with (e.g. ``"bicubic"``).
        amplify: factor applied to the absolute difference.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = {name: fn(images) for name, fn in columns.items()}
    panels: list[tuple[str, Tensor]] = [("input", images)]
    panels += [(f"{name} {tuple(out.shape[-2:])}", out) for name, out in outputs.items()]
    if reference is not None:
        base = outputs[reference].float()
        for name, out in outputs.items():
            if name != reference and out.shape == base.shape:  # (a saliency map is drawn at the input size)
                diff = ((out.float() - base).abs() * amplify).clamp(0, 255).to(torch.uint8)
                panels.append((f"|{name} - {reference}| x{amplify:g}", diff))
    rows, cols = images.shape[0], len(panels)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    shown_panels = at_common_size([batch for _, batch in panels])
    for c, ((label, _), shown) in enumerate(zip(panels, shown_panels, strict=True)):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(shown[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def saliency_column(pixels: torch.nn.Module) -> Column | None:
    """For a saliency sampler, a column that draws each image's saliency map at the input size: mid-grey where it
    is uniform, brighter where the sampler spends more output pixels (white at twice the uniform value or more),
    darker where fewer; ``None`` for any other resizer.

    Args:
        pixels: a :class:`~taskresize.inference.pixels.PixelResizer` (its ``resizer``, ``mean`` and ``std``).
    """
    module = pixels.resizer
    if not callable(getattr(module, "saliency", None)):
        return None

    @torch.no_grad()
    def draw(images: Tensor) -> Tensor:
        x = (images.float().to(pixels.mean.device) - pixels.mean) / pixels.std
        saliency = module.saliency(x)
        relative = saliency * saliency[0, 0].numel() / 2  # 0.5 where uniform
        heat = resize(relative, tuple(images.shape[-2:]), "bilinear", antialias=False).clamp(0, 1) * 255
        return heat.round().to(torch.uint8).expand(-1, 3, -1, -1).cpu()

    return draw
