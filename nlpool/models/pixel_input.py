"""A network that takes camera pixels: the input normalisation moved inside, as a per-channel 1x1 conv.

Firmware fed by a camera gets RGB888 bytes. With the normalisation `(p / 255 - mean) / std` inside the
network, the exported int8 model's input is the pixel itself (calibrated on pixels 0..255, its input
quantisation is scale 1 and zero point -128, so the int8 input is `pixel - 128`), and no float
arithmetic is left for the firmware to replicate.

The normalisation is an explicit depthwise 1x1 convolution rather than folded into the first
convolution's weights: folding is exact inside the image but not at its border, where the first
convolution pads with zeros — a zero raw pixel is not a zero normalised pixel. The extra op costs
3 multiply-adds per input pixel (0.05 % of the default model's MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PIXEL_MAX = 255.0


class PixelInput(nn.Module):
    """`model` applied to `(pixels / 255 - mean) / std`, for pixels given as floats 0..255 (N, 3, H, W)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        channels = len(mean)
        self.normalize = nn.Conv2d(channels, channels, kernel_size=1, groups=channels, bias=True)
        with torch.no_grad():
            scale = torch.tensor([1.0 / (PIXEL_MAX * s) for s in std])
            self.normalize.weight.copy_(scale.view(channels, 1, 1, 1))
            self.normalize.bias.copy_(torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]))
        self.normalize.requires_grad_(False)
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(pixels))
