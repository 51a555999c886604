"""Output channels that hold one value whatever the input: found from a layer's own numbers.

Trained int8 models carry dead channels: a ReLU channel whose bias keeps it below zero for every
input, or one whose weights are all zero. MLPerf Tiny's VWW model has 71 to 234 of them in each
of its last eight pointwise layers. A generated kernel writes such a channel as the constant and
spends no multiply on it.

The proof is interval arithmetic on TFLM's own computation: an input minus its zero point lies in
[-128 - zp, 127 - zp] (a channel known constant upstream holds its value, or the zero point at a
padded tap), so a channel's int32 accumulator (bias + sum of w * (x - zp)) lies in an interval;
TFLM's requantisation (double rounding) and the clamp are monotone in the accumulator, so when both
ends of the interval give the same int8 value, every input does. An interval that leaves int32
(TFLM's accumulator would wrap) or a left shift that overflows proves nothing.
"""

from __future__ import annotations

import numpy as np

from nlpool.core.fixedpoint import multiply_by_quantized_multiplier

Constants = dict[int, int]  # channel -> the int8 value it holds for every input
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def input_ranges(channels: int, input_offset: int, known: Constants, padded: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per input channel, the least and greatest x + input_offset TFLM's accumulator can see."""
    lo = np.full(channels, -128 + input_offset, np.int64)
    hi = np.full(channels, 127 + input_offset, np.int64)
    for channel, value in known.items():
        lo[channel] = hi[channel] = value + input_offset
        if padded:  # a padded tap reads the zero point: it adds 0
            lo[channel], hi[channel] = min(lo[channel], 0), max(hi[channel], 0)
    return lo, hi


def constant_channels(weights: np.ndarray, x_lo: np.ndarray, x_hi: np.ndarray, bias: np.ndarray | None, mults: np.ndarray,
                      shifts: np.ndarray, output_offset: int, act_min: int, act_max: int) -> Constants:
    """The output channels with one value for every input.

    `weights` is (channels, taps, inputs) and `x_lo`/`x_hi` the bounds of x + input_offset per input
    (broadcast over the last axis; a depthwise layer passes one input per channel as (channels, taps, 1)
    with (channels, 1, 1) bounds)."""
    w = weights.astype(np.int64)
    low = np.minimum(w * x_lo, w * x_hi).sum(axis=(1, 2))
    high = np.maximum(w * x_lo, w * x_hi).sum(axis=(1, 2))
    if bias is not None:
        low, high = low + np.asarray(bias, np.int64), high + np.asarray(bias, np.int64)
    found: Constants = {}
    for channel in range(w.shape[0]):
        mult, shift = int(mults[channel]), int(shifts[channel])
        if mult < 0 or low[channel] < INT32_MIN or high[channel] > INT32_MAX:
            continue
        try:
            ends = multiply_by_quantized_multiplier(np.array([low[channel], high[channel]]), mult, shift)
        except OverflowError:
            continue
        ends = np.clip(ends + output_offset, act_min, act_max)
        if ends[0] == ends[1]:
            found[channel] = int(ends[0])
    return found


def window_leaves_input(in_h: int, in_w: int, out_h: int, out_w: int, filter_h: int, filter_w: int, stride_h: int, stride_w: int,
                        dil_h: int, dil_w: int, pad_h: int, pad_w: int) -> bool:
    """Whether some output's window has a tap outside the input (a padded tap, which reads the zero point)."""
    return (pad_h > 0 or pad_w > 0 or (out_h - 1) * stride_h + (filter_h - 1) * dil_h - pad_h >= in_h
            or (out_w - 1) * stride_w + (filter_w - 1) * dil_w - pad_w >= in_w)


def fill_row(channels: int, constants: Constants) -> np.ndarray:
    """One output pixel's bytes with every constant channel's value (0 elsewhere): what the kernel copies first."""
    row = np.zeros(channels, np.int8)
    for channel, value in constants.items():
        row[channel] = value
    return row
