"""The local down-sampling baselines, with the same (channels, stride) interface as every pool."""

from __future__ import annotations

import torch
from torch import nn


class StridedConvPool(nn.Module):
    """3x3 depthwise convolution at stride s + BatchNorm: learned but strictly local down-sampling."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MaxPool(nn.MaxPool2d):
    """Max over s x s windows (floor semantics: a partial last window is dropped)."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__(stride, stride)


class AvgPool(nn.AvgPool2d):
    """Mean over s x s windows (floor semantics)."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__(stride, stride)
