"""LIP: local importance-based pooling (Gao et al., ICCV 2019), re-implemented from its description.

y = AvgPool(x * e^L) / AvgPool(e^L) with L = 12 * sigmoid(InstanceNorm(conv(x))). The logit conv
starts at zero, so an untrained LIP is exactly average pooling. The paper under study uses a 1x1
logit kernel; windows are s x s at stride s like every pool here, so all kinds give the same shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from .nlp_pool import weighted_avg_pool


class LIPPool(nn.Module):
    """Local importance pooling with a `logit_kernel` x `logit_kernel` logit convolution."""

    def __init__(self, channels: int, stride: int = 2, logit_kernel: int = 1, logit_scale: float = 12.0) -> None:
        super().__init__()
        self.stride = stride
        self.logit_scale = logit_scale
        self.logit = nn.Conv2d(channels, channels, logit_kernel, padding=logit_kernel // 2, bias=False)
        nn.init.zeros_(self.logit.weight)
        self.norm = nn.InstanceNorm2d(channels, affine=True)

    def pool_weights(self, x: torch.Tensor) -> torch.Tensor:
        """e^L, the per-pixel importance (B, C, H, W)."""
        return torch.exp(self.logit_scale * torch.sigmoid(self.norm(self.logit(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return weighted_avg_pool(x, self.pool_weights(x), self.stride)
