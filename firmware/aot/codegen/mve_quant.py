"""The per-channel table of a generated Helium (MVE) kernel (`nlg_mve_quant_t`, firmware/kernels/generated/nlg_mve.h).

Unlike the DSP kernels' fast form (requant.py), the vector requantisation is TFLM's for every
multiplier and shift, so no layer needs a proof: per group of 4 channels, the folded bias, the
multiplier, the left shift and minus the right shift, each as 4 int32 lanes.
"""

from __future__ import annotations

import numpy as np


def mve_quant_table(weight_sums: np.ndarray, bias: np.ndarray | None, input_offset: int, mults: np.ndarray,
                    shifts: np.ndarray) -> tuple[np.ndarray, bool]:
    """((channels / 4) x 16 int32, whether any channel shifts left). `weight_sums` is each channel's
    sum of weights; the bias gets input_offset times it, wrapped to int32 as TFLM's accumulator wraps.
    `channels` must be a multiple of 4."""
    channels = weight_sums.shape[0]
    b = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b + input_offset * np.asarray(weight_sums, np.int64)
    wrapped = ((folded + (1 << 31)) % (1 << 32)) - (1 << 31)
    shifts = np.asarray(shifts, np.int64)
    left, neg_right = np.maximum(shifts, 0), np.minimum(shifts, 0)
    table = np.stack([wrapped, np.asarray(mults, np.int64), left, neg_right]).reshape(4, channels // 4, 4).transpose(1, 0, 2)
    return table.reshape(channels // 4, 16).astype(np.int32), bool(left.any())
