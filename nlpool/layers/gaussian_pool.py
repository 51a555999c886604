"""GaussianPool (Kobayashi, 2019), re-implemented from its description.

Models each s x s window as a Gaussian and outputs mu + eta * sigma, where eta is predicted per
channel from the global context. Stochastic while training (eta is sampled), deterministic in eval.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GaussianPool(nn.Module):
    """y = mu + eta * sigma over s x s windows, eta = softplus(M + S * eps) (eps only in training)."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        hidden = max(1, channels // 2)
        self.squeeze = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.mean_head = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.scale_head = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Sigmoid())

    def eta(self, x: torch.Tensor) -> torch.Tensor:
        """Per-(sample, channel) position of the output inside the window's distribution."""
        context = self.squeeze(x.mean(dim=(2, 3), keepdim=True))
        logit = self.mean_head(context)
        if self.training:
            logit = logit + self.scale_head(context) * torch.randn_like(logit)
        return F.softplus(logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = F.avg_pool2d(x, self.stride, self.stride)
        var = F.avg_pool2d(x * x, self.stride, self.stride) - mu * mu
        sigma = torch.sqrt(torch.clamp(var, min=1e-6))
        return mu + self.eta(x) * sigma
