"""Input normalisation, ``(pixels - mean) / std`` with the mean and standard deviation in 0-255 units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation in 0-255 units (what a model's inputs were normalised with)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def from_unit(cls, mean: Sequence[float], std: Sequence[float]) -> Normalization:
        """From a mean and standard deviation given for pixels in [0, 1] (torchvision's and timm's convention)."""
        return cls(tuple(v * 255 for v in mean), tuple(v * 255 for v in std))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Normalization:
        """From ``{"mean": [...], "std": [...]}`` in 0-255 units; ImageNet's when ``values`` is empty or None."""
        if not values:
            return IMAGENET
        return cls(tuple(values["mean"]), tuple(values["std"]))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


# ImageNet's statistics (torchvision's reference recipes): every task of this package normalises with them
IMAGENET = Normalization.from_unit((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
