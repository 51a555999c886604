"""RNNPool (Saha et al., NeurIPS 2020), re-implemented from its description, with FastGRNN cells.

Each s x s window is summarised by two RNNs: RNN1 sweeps every row and every column of the window
and keeps its final state; a bidirectional RNN2 (shared weights) then reads the row summaries and the
column summaries. The four final states (4 * h2 values) describe the window. A 1x1 projection maps
them back to C channels when 4 * h2 != C, so the layer is a drop-in replacement.
"""

from __future__ import annotations

import torch
from torch import nn


class FastGRNNCell(nn.Module):
    """h' = z * h + (sigmoid(zeta) * (1 - z) + sigmoid(nu)) * tanh(Wx + Uh + b_h), z = sigmoid(Wx + Uh + b_z)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.w = nn.Linear(input_size, hidden_size, bias=False)
        self.u = nn.Linear(hidden_size, hidden_size, bias=False)
        self.bias_gate = nn.Parameter(torch.ones(hidden_size))
        self.bias_update = nn.Parameter(torch.ones(hidden_size))
        self.zeta = nn.Parameter(torch.tensor(1.0))
        self.nu = nn.Parameter(torch.tensor(-4.0))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        pre = self.w(x) + self.u(h)
        gate = torch.sigmoid(pre + self.bias_gate)
        candidate = torch.tanh(pre + self.bias_update)
        return gate * h + (torch.sigmoid(self.zeta) * (1 - gate) + torch.sigmoid(self.nu)) * candidate

    def run(self, sequence: torch.Tensor) -> torch.Tensor:
        """Final state after reading `sequence` (B, T, input_size) from first to last step."""
        h = sequence.new_zeros(sequence.shape[0], self.hidden_size)
        for step in range(sequence.shape[1]):
            h = self(sequence[:, step], h)
        return h


class RNNPool(nn.Module):
    """RNNPool over non-overlapping s x s windows; output (B, C, H // s, W // s)."""

    def __init__(self, channels: int, stride: int = 2, hidden1: int | None = None, hidden2: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        hidden2 = hidden2 or max(1, (channels + 3) // 4)
        hidden1 = hidden1 or hidden2
        self.rnn1 = FastGRNNCell(channels, hidden1)
        self.rnn2 = FastGRNNCell(hidden1, hidden2)
        summary = 4 * hidden2
        self.project = nn.Conv2d(summary, channels, 1) if summary != channels else nn.Identity()

    def _summarise(self, lines: torch.Tensor) -> torch.Tensor:
        """lines: (P, s, s, C) = for each window, s lines of s pixels -> (P, 2 * hidden2)."""
        windows, count, length, channels = lines.shape
        line_states = self.rnn1.run(lines.reshape(windows * count, length, channels)).reshape(windows, count, -1)
        forward = self.rnn2.run(line_states)
        backward = self.rnn2.run(line_states.flip(1))
        return torch.cat([forward, backward], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        batch, channels, height, width = x.shape
        out_h, out_w = height // s, width // s
        x = x[:, :, : out_h * s, : out_w * s]
        # (B, C, oh, s, ow, s) -> (B, oh, ow, s_row, s_col, C): one window per (b, oh, ow)
        windows = x.reshape(batch, channels, out_h, s, out_w, s).permute(0, 2, 4, 3, 5, 1)
        windows = windows.reshape(batch * out_h * out_w, s, s, channels)
        rows = self._summarise(windows)
        cols = self._summarise(windows.transpose(1, 2))
        summary = torch.cat([rows, cols], dim=1).reshape(batch, out_h, out_w, -1).permute(0, 3, 1, 2)
        return self.project(summary)
