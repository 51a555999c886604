"""Self-attentive (non-local) pooling: Chen, Datta, Kundu, Beerel, WACV 2023.

A drop-in replacement for a stride-s down-sampling layer. Pooling weights come from multi-head
self-attention over patch tokens, so a weight can depend on content anywhere in the map — what lets
the first, largest activation maps be shrunk aggressively without losing the information a local
window would throw away.

    x ──► patch embed (conv p/p, BN, ReLU) ──► + positional encoding ──► self-attention
      │                                                                       │
      │    restore: tokens → (E, H/p, W/p) → upsample ×p → conv1x1 (E→C) → BN ◄┘
      │                                                  │ r
      └──────────────► AvgPool_s(pi · x) / AvgPool_s(pi) ◄── pi = exp(sigmoid(r))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention
from .pos_embed import RowColPositionalEncoding


@dataclass(frozen=True)
class NLPoolOptions:
    """Every option of the layer; defaults are the authors' code where it and the paper differ.

    Attributes:
        patch_size: side p of the square patches that become tokens ({1, 2, 4, 8} in the paper).
        embed_ratio: r; the token width is E = max(1, round(r * C / heads)) * heads.
        num_heads: m (2 in the paper).
        pos_embed: "learned" (row + column tables, authors' code) or "none" (paper ablation).
        attention: "plain" (authors' code: attention only) or "prenorm" (ViT block: LayerNorm and
            residual, as the paper's background describes).
        upsample: restoration upsampling, "nearest" (authors' code) or "bilinear" (paper text).
        use_sigmoid: apply sigmoid before exp (ablation: without it training diverges).
        use_exp: apply exp after the sigmoid (ablation).
        embed_norm: BatchNorm after the patch-embedding conv (ablation).
        restore_norm: BatchNorm after the restoration conv (ablation).
        pooling: "window" = AvgPool(pi*x) / AvgPool(pi); "nowin" = AvgPool(pi*x) (authors' variant).
    """

    patch_size: int = 2
    embed_ratio: float = 1.0
    num_heads: int = 2
    pos_embed: str = "learned"
    attention: str = "plain"
    upsample: str = "nearest"
    use_sigmoid: bool = True
    use_exp: bool = True
    embed_norm: bool = True
    restore_norm: bool = True
    pooling: str = "window"

    def __post_init__(self) -> None:
        choices = {
            "pos_embed": ("learned", "none"),
            "attention": ("plain", "prenorm"),
            "upsample": ("nearest", "bilinear"),
            "pooling": ("window", "nowin"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.patch_size < 1 or self.num_heads < 1 or self.embed_ratio <= 0:
            raise ValueError("patch_size and num_heads must be >= 1 and embed_ratio > 0")


def embed_width(channels: int, embed_ratio: float, num_heads: int) -> int:
    """Token width E: r * C rounded to a multiple of the head count (authors' rule)."""
    return max(1, round(embed_ratio * channels / num_heads)) * num_heads


class PoolWeighting(nn.Module):
    """pi = exp(sigmoid(r)): every weight in [1, e], so the ratio needs no epsilon."""

    def __init__(self, use_sigmoid: bool = True, use_exp: bool = True) -> None:
        super().__init__()
        self.use_sigmoid = use_sigmoid
        self.use_exp = use_exp

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        if self.use_sigmoid:
            r = torch.sigmoid(r)
        if self.use_exp:
            r = torch.exp(r)
        return r


def weighted_avg_pool(x: torch.Tensor, pi: torch.Tensor, stride: int, ratio: bool = True) -> torch.Tensor:
    """AvgPool_s(pi * x) / AvgPool_s(pi) (or only the numerator for `ratio=False`)."""
    numerator = F.avg_pool2d(pi * x, stride, stride)
    return numerator / F.avg_pool2d(pi, stride, stride) if ratio else numerator


class SelfAttentivePool(nn.Module):
    """Self-attentive pooling over windows of `stride` x `stride`.

    Input (B, C, H, W) with H and W divisible by `patch_size`; output (B, C, H // s, W // s).
    """

    def __init__(self, channels: int, stride: int = 2, options: NLPoolOptions | None = None, **kwargs: object) -> None:
        super().__init__()
        opts = options or NLPoolOptions(**kwargs)  # type: ignore[arg-type]
        self.options = opts
        self.stride = stride
        self.patch_size = opts.patch_size
        self.embed_dim = embed_width(channels, opts.embed_ratio, opts.num_heads)
        p, dim = opts.patch_size, self.embed_dim
        self.patch_embed = nn.Sequential(
            nn.Conv2d(channels, dim, p, stride=p, bias=True),
            nn.BatchNorm2d(dim) if opts.embed_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.pos_embed = RowColPositionalEncoding(dim) if opts.pos_embed == "learned" else None
        self.attn = MultiHeadSelfAttention(dim, opts.num_heads, opts.attention)
        self.restore = nn.Sequential(
            nn.Conv2d(dim, channels, 1, bias=True),
            nn.BatchNorm2d(channels) if opts.restore_norm else nn.Identity(),
        )
        self.weighting = PoolWeighting(opts.use_sigmoid, opts.use_exp)

    def pool_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The per-pixel weights pi (B, C, H, W): what the heat maps show."""
        batch = x.shape[0]
        grid = self.patch_embed(x)
        grid_h, grid_w = grid.shape[-2:]
        tokens = grid.flatten(2).transpose(1, 2)  # (B, N, E)
        if self.pos_embed is not None:
            tokens = self.pos_embed(tokens, grid_h, grid_w)
        tokens = self.attn(tokens)
        grid = tokens.transpose(1, 2).reshape(batch, self.embed_dim, grid_h, grid_w)
        if self.patch_size > 1:
            grid = F.interpolate(grid, scale_factor=float(self.patch_size), mode=self.options.upsample)
        return self.weighting(self.restore(grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return weighted_avg_pool(x, self.pool_weights(x), self.stride, ratio=self.options.pooling == "window")
