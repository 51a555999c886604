"""A data set of images rendered on access from (seed, split, index): what the built-in tasks share.

A task is its renderer plus its checks, so the synthetic task and the detail task differ only there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from nlpool.core.errors import NlpoolError

from .normalize import normalize

SPLITS = ("train", "val")
# (seed, split, index, image size, classes) -> ([0, 1] image (3, S, S), label)
Renderer = Callable[[int, str, int, int, int], tuple[torch.Tensor, int]]


class RenderedDataset(Dataset):
    """`num_samples` normalised (3, S, S) images and labels of a rendered task, rendered on access."""

    task = ""
    min_size = 16
    size_hint = "a larger --input-size"

    def __init__(self, num_samples: int, image_size: int, num_classes: int = 10, seed: int = 0, split: str = "train") -> None:
        self.check_classes(num_classes)
        if split not in SPLITS:
            raise NlpoolError(f"unknown {self.task} split {split!r}: use one of {', '.join(SPLITS)}")
        if image_size < self.min_size:
            raise NlpoolError(f"{self.task} images need at least {self.min_size}x{self.min_size} pixels, got {image_size}:"
                              f" use {self.size_hint}")
        if num_samples < 1:
            raise NlpoolError(f"a {self.task} dataset needs at least one sample, got {num_samples}")
        self.num_samples, self.image_size, self.num_classes = num_samples, image_size, num_classes
        self.seed, self.split = seed, split

    @staticmethod
    def check_classes(num_classes: int) -> None:
        """Raise NlpoolError when the task cannot have `num_classes` classes."""

    @staticmethod
    def render(seed: int, split: str, index: int, image_size: int, num_classes: int) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        image, label = self.render(self.seed, self.split, index, self.image_size, self.num_classes)
        return normalize(image), label
