"""Multi-head self-attention written with explicit projections.

`torch.nn.MultiheadAttention` exports to ONNX as one fused block whose conversion to TFLite is
fragile; written out as q/k/v projections, a batched matmul and a softmax it converts to plain
FULLY_CONNECTED / BATCH_MATMUL / SOFTMAX ops that int8 runtimes execute. The computation is the
same (a test copies weights from `nn.MultiheadAttention` and compares).
"""

from __future__ import annotations

import torch
from torch import nn

from nlpool.core.custom_ops import ATTENTION_OP_NAME


class MultiHeadSelfAttention(nn.Module):
    """Self-attention over tokens (B, N, E) with q = k = v = the tokens.

    Args:
        dim: token width E (divisible by `num_heads`).
        num_heads: number of heads m.
        form: "plain" (the authors' code: attention only, no norm, no residual) or "prenorm"
            (the ViT block the paper describes: x + attention(LayerNorm(x))).
    """

    # The export fuses this block (with the token layout and positional table around it) into one
    # streamed custom op; memory_planner's PyTorch path plans it as that op.
    fused_op = ATTENTION_OP_NAME

    def __init__(self, dim: int, num_heads: int = 2, form: str = "plain") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        if form not in ("plain", "prenorm"):
            raise ValueError(f"attention form must be 'plain' or 'prenorm', got {form!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.form = form
        self.norm = nn.LayerNorm(dim) if form == "prenorm" else nn.Identity()
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = t.shape
        return t.reshape(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(tokens)
        q = self._split_heads(self.q_proj(x) * self.scale)
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)  # (B, heads, N, N)
        mixed = (weights @ v).transpose(1, 2).reshape(tokens.shape)
        out = self.out_proj(mixed)
        return tokens + out if self.form == "prenorm" else out

    @torch.no_grad()
    def load_from_torch_mha(self, mha: nn.MultiheadAttention) -> None:
        """Copy the weights of a `torch.nn.MultiheadAttention(dim, heads)` (shared in_proj)."""
        q_w, k_w, v_w = mha.in_proj_weight.chunk(3)
        q_b, k_b, v_b = mha.in_proj_bias.chunk(3)
        for proj, weight, bias in ((self.q_proj, q_w, q_b), (self.k_proj, k_w, k_b), (self.v_proj, v_w, v_b)):
            proj.weight.copy_(weight)
            proj.bias.copy_(bias)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        self.out_proj.bias.copy_(mha.out_proj.bias)
