"""Pooling layers: self-attentive pooling and its peers, all built as `create_pool(kind, channels, stride)`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .attention import MultiHeadSelfAttention
from .basic_pools import AvgPool, MaxPool, StridedConvPool
from .gaussian_pool import GaussianPool
from .lip import LIPPool
from .nlp_pool import NLPoolOptions, SelfAttentivePool, embed_width, weighted_avg_pool
from .pos_embed import MAX_GRID, RowColPositionalEncoding
from .rnn_pool import FastGRNNCell, RNNPool

POOL_KINDS: dict[str, Callable[..., nn.Module]] = {
    "nlp": SelfAttentivePool,
    "lip": LIPPool,
    "gaussian": GaussianPool,
    "rnnpool": RNNPool,
    "strided": StridedConvPool,
    "max": MaxPool,
    "avg": AvgPool,
}


def create_pool(kind: str, channels: int, stride: int, **options: object) -> nn.Module:
    """Build a down-sampling layer of `kind` mapping (B, C, H, W) to (B, C, H // stride, W // stride)."""
    if kind not in POOL_KINDS:
        raise ValueError(f"unknown pooling kind {kind!r}; choose one of {', '.join(POOL_KINDS)}")
    return POOL_KINDS[kind](channels, stride, **options)


__all__ = [
    "MAX_GRID",
    "POOL_KINDS",
    "AvgPool",
    "FastGRNNCell",
    "GaussianPool",
    "LIPPool",
    "MaxPool",
    "MultiHeadSelfAttention",
    "NLPoolOptions",
    "RNNPool",
    "RowColPositionalEncoding",
    "SelfAttentivePool",
    "StridedConvPool",
    "create_pool",
    "embed_width",
    "weighted_avg_pool",
]
