"""The golden NumPy model of NLPOOL_WEIGHTED_POOL: docs/custom_op.md's integer evaluation, literally.

The C kernel firmware/kernels/nlpool_weighted_pool.c must reproduce this function bit for bit, and the
host execution of fused models (host_run.py) uses it for every custom op. Only integer arithmetic
(int32 accumulators as in C, int64 where C uses int64); no float touches the data path.
"""

from __future__ import annotations

import numpy as np

from nlpool.core.custom_ops import WeightedPoolParams
from nlpool.core.fixedpoint import multiply_by_quantized_multiplier

INT32_MAX = 2**31 - 1


def _windows(t: np.ndarray, fh: int, fw: int, sh: int, sw: int) -> np.ndarray:
    """(N, OH, OW, C, fh*fw) view of the VALID windows of an NHWC tensor (floor semantics)."""
    n, h, w, c = t.shape
    oh, ow = (h - fh) // sh + 1, (w - fw) // sw + 1
    rows = (np.arange(oh) * sh)[:, None] + np.arange(fh)[None, :]  # (OH, fh)
    cols = (np.arange(ow) * sw)[:, None] + np.arange(fw)[None, :]  # (OW, fw)
    win = t[:, rows[:, None, :, None], cols[None, :, None, :], :]  # (N, OH, OW, fh, fw, C)
    return win.reshape(n, oh, ow, fh * fw, c).transpose(0, 1, 2, 4, 3)


def weighted_pool(params: WeightedPoolParams, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """y_q (int8, NHWC) from x_q and r_q (int8, NHWC, same shape)."""
    if x.dtype != np.int8 or r.dtype != np.int8 or x.shape != r.shape or x.ndim != 4:
        raise ValueError(f"x and r must be int8 NHWC tensors of one shape, got {x.dtype}{x.shape} and {r.dtype}{r.shape}")
    p = params
    table = np.asarray(p.table, dtype=np.int64)
    w = table[_windows(r, p.filter_h, p.filter_w, p.stride_h, p.stride_w).astype(np.int64) + 128]
    xc = _windows(x, p.filter_h, p.filter_w, p.stride_h, p.stride_w).astype(np.int64) - p.x_zero_point
    num = (w * xc).sum(axis=-1)
    den = w.sum(axis=-1)
    if np.abs(num).max(initial=0) > INT32_MAX or den.max(initial=0) > INT32_MAX:
        raise OverflowError("window sums leave int32: the window is larger than the op allows")
    # round_half_away_from_zero(num * 2^16 / den), den > 0
    scaled = num * 65536
    mean = np.sign(scaled) * ((2 * np.abs(scaled) + den) // (2 * den))
    acc = multiply_by_quantized_multiplier(mean, p.out_multiplier, p.out_shift - 16)
    return np.clip(acc + p.out_zero_point, -128, 127).astype(np.int8)
