"""The per-channel requantisation table of a generated kernel, and the proof that its fast form is exact.

`nlg_requant` (firmware/kernels/generated/nlg_simd.h) computes TFLM's double rounding and adds the
output zero point in five instructions: t = 2 acc; y = SMMLAR(t, mult, round) (the high word of
t * mult, rounded, plus `round`); y += t >> 31; y >>= right; SSAT to 8 bits. With round =
2^(right-1) + (zero_point << right) that equals nl_mbqm(acc) + zero_point when, for every channel:

- |acc| < 2^30, so 2 acc fits and SaturatingRoundingDoublingHighMul(acc, m) = SMMULR(2 acc, m) (its
  one saturating case needs acc = m = INT32_MIN);
- no left shift and a right shift of 1..31, so RoundingDivideByPOT (half away from zero) is
  (x + 2^(right-1) - (x < 0)) >> right; the sign of acc may stand for the sign of x = SMMULR(2 acc, m)
  (x < 0 implies acc < 0, and where acc < 0 but x = 0 both give (2^(right-1) - {0, 1}) >> right = 0);
- the zero point folded before the shift cannot overflow: (v + zp 2^right) >> right = (v >> right) + zp
  exactly (an arithmetic shift is a floor), so |x| + 2^(right-1) + 1 + |zp| 2^right < 2^31 suffices.

`quant_table` checks those from the layer's own numbers (the accumulator bound is |bias| + 255 * sum
|w|, since an input minus its zero point lies in [-255, 255]); a layer where one fails takes `nl_mbqm`,
the reference form.
"""

from __future__ import annotations

import numpy as np

ACC_LIMIT = 1 << 30
INT32_LIMIT = 1 << 31


def quant_table(weights: np.ndarray, bias: np.ndarray | None, input_offset: int, mults: np.ndarray,
                shifts: np.ndarray, output_offset: int) -> tuple[np.ndarray, bool]:
    """(channels, 4) int32 and whether the layer takes the fast requantisation.

    Fast: bias + input_offset * sum(w), multiplier, right shift, 2^(right - 1) + (output_offset <<
    right). Otherwise the same bias (wrapped to int32 like TFLM's int32 accumulator), multiplier,
    TFLite's signed shift, 0 (the kernel adds the zero point). `weights` is (channels, taps) int8."""
    w = weights.astype(np.int64)
    if w.shape[0] == 0:  # every channel constant: nothing to requantise
        return np.zeros((0, 4), np.int32), True
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b + input_offset * w.sum(axis=1)
    shifts = np.asarray(shifts, np.int64)
    mults = np.asarray(mults, np.int64)
    right = -shifts
    acc_bound = np.abs(b) + 255 * np.abs(w).sum(axis=1)
    wrapped = ((folded + (1 << 31)) % (1 << 32)) - (1 << 31)
    if right.min() >= 1 and right.max() <= 31 and acc_bound.max() < ACC_LIMIT and np.abs(folded).max() < ACC_LIMIT and mults.min() >= 0:
        round_term = np.left_shift(1, right - 1) + np.left_shift(output_offset, right)
        x_bound = (acc_bound * mults >> 31) + 1
        if (x_bound + np.left_shift(1, right - 1) + 1 + abs(output_offset) * np.left_shift(1, right)).max() < INT32_LIMIT:
            return np.stack([wrapped, mults, right, round_term], axis=1).astype(np.int32), True
    return np.stack([wrapped, mults, shifts, np.zeros_like(shifts)], axis=1).astype(np.int32), False
