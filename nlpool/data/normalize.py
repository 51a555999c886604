"""The input normalisation: the statistics training applies, and a typed value the export reads back.

Training normalises every dataset with one pair of statistics (ImageNet's) and stores them in the
checkpoint; the export reads them from there (`Normalization`), so a checkpoint trained with other
statistics is calibrated and fed the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] RGB images, (3, H, W) or (N, 3, H, W), to zero-mean unit-ish-variance inputs."""
    mean = torch.tensor(MEAN, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype).view(3, 1, 1)
    return (images - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize` (for looking at inputs)."""
    mean = torch.tensor(MEAN, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype).view(3, 1, 1)
    return images * std + mean


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std a network's input was normalised with: x = (pixel / 255 - mean) / std."""

    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    def apply(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels, (3, H, W) or (N, 3, H, W), to the network's input."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype).view(-1, 1, 1)
        return (pixels - mean) / std
