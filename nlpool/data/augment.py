"""The authors' training augmentation (random resized crop, horizontal flip) on torch tensors.

There is no CPU torchvision build, so these are written here on (3, H, W) float tensors in [0, 1].
Randomness comes from the global torch RNG, which the training loop re-seeds every epoch: that is
what makes `--resume` reproduce an uninterrupted run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .normalize import normalize


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of one (3, H, W) image (antialiased when shrinking, like PIL)."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]


def random_resized_crop(
    image: torch.Tensor, size: int, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> torch.Tensor:
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resized to size x size.

    Ten tries at a fitting box, then a centre crop of the largest allowed aspect (Inception's recipe).
    """
    height, width = image.shape[-2:]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(*scale).item()
        aspect = math.exp(torch.empty(1).uniform_(*log_ratio).item())
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)).item())
            left = int(torch.randint(0, width - w + 1, (1,)).item())
            return resize(image[:, top : top + h, left : left + w], size, size)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return resize(image[:, top : top + h, left : left + w], size, size)


def random_hflip(image: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    return image.flip(-1) if torch.rand(1).item() < p else image


def resize_center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Evaluation view: shorter side to `size`, then the central size x size square."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    h, w = max(size, round(height * scale)), max(size, round(width * scale))
    image = resize(image, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top : top + size, left : left + size]


def train_transform(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or [0, 1] float (3, H, W) -> augmented, normalised (3, size, size)."""
    image = to_float(image)
    return normalize(random_hflip(random_resized_crop(image, size)))


def eval_transform(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or [0, 1] float (3, H, W) -> deterministic, normalised (3, size, size)."""
    return normalize(resize_center_crop(to_float(image), size))


def to_float(image: torch.Tensor) -> torch.Tensor:
    return image.float().div_(255) if image.dtype == torch.uint8 else image.float()
