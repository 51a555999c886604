"""The per-channel requantisation table of a generated kernel, and the proof that its fast form is exact.

`nlg_requant` (firmware/kernels/generated/nlg_simd.h) computes TFLM's double rounding with one
SMMULR and three ALU instructions. That equals `nl_mbqm` only when every accumulator is below 2^30
in magnitude, no channel shifts left, and every right shift is 1..31; `quant_table` checks those
from the layer's own numbers (the accumulator bound is |bias| + 255 * sum |w|, since an input minus
its zero point lies in [-255, 255]); a layer where they fail takes `nl_mbqm`, the reference form.
"""

from __future__ import annotations

import numpy as np

ACC_LIMIT = 1 << 30


def quant_table(weights: np.ndarray, bias: np.ndarray | None, input_offset: int, mults: np.ndarray,
                shifts: np.ndarray) -> tuple[np.ndarray, bool]:
    """(channels, 4) int32 and whether the layer takes the fast requantisation.

    Fast: bias + input_offset * sum(w), multiplier, right shift, 2^(right - 1). Otherwise the same
    bias (wrapped to int32 like TFLM's int32 accumulator), multiplier, TFLite's signed shift, 0.
    `weights` is (channels, taps) int8."""
    w = weights.astype(np.int64)
    if w.shape[0] == 0:  # every channel constant: nothing to requantise
        return np.zeros((0, 4), np.int32), True
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b + input_offset * w.sum(axis=1)
    shifts = np.asarray(shifts, np.int64)
    right = -shifts
    fast = bool(right.min() >= 1 and right.max() <= 31 and (np.abs(b) + 255 * np.abs(w).sum(axis=1)).max() < ACC_LIMIT
                and np.abs(folded).max() < ACC_LIMIT)
    wrapped = ((folded + (1 << 31)) % (1 << 32)) - (1 << 31)
    if fast:
        return np.stack([wrapped, np.asarray(mults, np.int64), right, np.left_shift(1, right - 1)], axis=1).astype(np.int32), True
    return np.stack([wrapped, np.asarray(mults, np.int64), shifts, np.zeros_like(shifts)], axis=1).astype(np.int32), False
