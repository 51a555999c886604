"""Learned row/column positional encoding (DETR style, as in the authors' code)."""

from __future__ import annotations

import torch
from torch import nn

# Rows (and columns) of the tables: the largest token grid a self-attentive pooling layer can serve.
MAX_GRID = 256


class RowColPositionalEncoding(nn.Module):
    """Adds to each token of an (h x w) grid the concatenation of a row and a column embedding.

    Two tables of `max_grid` entries (half the width each) instead of one per position, so the same
    layer serves any grid up to `max_grid` rows and columns — the input size is not baked in.
    """

    def __init__(self, dim: int, max_grid: int = MAX_GRID) -> None:
        super().__init__()
        self.row_dim = dim // 2
        self.row_embed = nn.Parameter(torch.empty(max_grid, self.row_dim))
        self.col_embed = nn.Parameter(torch.empty(max_grid, dim - self.row_dim))
        nn.init.uniform_(self.row_embed)
        nn.init.uniform_(self.col_embed)

    def forward(self, tokens: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        rows = self.row_embed[:grid_h].unsqueeze(1).expand(grid_h, grid_w, self.row_dim)
        cols = self.col_embed[:grid_w].unsqueeze(0).expand(grid_h, grid_w, self.col_embed.shape[1])
        pos = torch.cat([rows, cols], dim=-1).reshape(grid_h * grid_w, -1)
        return tokens + pos
