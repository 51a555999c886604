"""A user's own CNN (not a preset) for the tests of user data and of the Python API."""

from __future__ import annotations

import torch
from torch import nn

from nlpool.data.shapes import SHAPE_CLASSES
from nlpool.layers import SelfAttentivePool

SIZE = 32
CLASSES = SHAPE_CLASSES


class TinyNet(nn.Module):
    """A user's own CNN (not a preset) with two self-attentive poolings."""

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            SelfAttentivePool(8, stride=2, patch_size=4, upsample="bilinear"),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            SelfAttentivePool(16, stride=2, patch_size=2, upsample="bilinear"),
        )
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3), keepdim=True).flatten(1))
