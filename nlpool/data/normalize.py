"""The input normalisation every loader applies, kept as constants for the int8 export.

One pair of statistics (ImageNet's) for every dataset, so a checkpoint's expected input is known
without knowing its data: the export calibrates on normalised inputs and firmware must quantise a
camera frame the same way.
"""

from __future__ import annotations

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
