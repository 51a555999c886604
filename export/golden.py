"""The golden NumPy models of the custom ops: docs/custom_op.md's integer evaluations, literally.

The C kernels firmware/kernels/nlpool_weighted_pool.c and nlpool_attention.c must reproduce these
functions bit for bit, and the host execution of fused models (host_run.py) uses them for every
custom op. Only integer arithmetic (int32 accumulators as in C, int64 where C uses int64); no float
touches the data path. The attention's SOFTMAX is TFLite's reference kernel (gemmlowp fixed point),
which is also TFLM's.
"""

from __future__ import annotations

import numpy as np

from nlpool.core.custom_ops import ADD_LEFT_SHIFT, SOFTMAX_OUTPUT_OFFSET, STEP_ADD, AttentionParams, WeightedPoolParams
from nlpool.core.fixedpoint import (
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_shift_left,
    softmax_exp,
    srdhm,
)

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


# --- NLPOOL_ATTENTION ---------------------------------------------------------------------------


def _requantize(acc: np.ndarray, multiplier: int, shift: int, double_rounding: bool = True) -> np.ndarray:
    """acc * multiplier * 2^(shift - 31): TFLite's double rounding, or the single rounding
    `(acc * m + 2^(30 - shift)) >> (31 - shift)` of the interpreter's FULLY_CONNECTED."""
    if double_rounding:
        return multiply_by_quantized_multiplier(acc, multiplier, shift)
    total = 31 - shift
    return (np.asarray(acc, dtype=np.int64) * np.int64(multiplier) + (np.int64(1) << (total - 1))) >> total


def _fully_connected(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, input_offset: int, filter_offset: int,
                     output_offset: int, multipliers: tuple[int, ...], shifts: tuple[int, ...], double_rounding: bool) -> np.ndarray:
    """int8 FULLY_CONNECTED over rows of x (R, K) with weights (O, K): int32 accumulators, one
    multiplier per output channel."""
    acc = (x.astype(np.int64) + input_offset) @ (weights.astype(np.int64) + filter_offset).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    out = np.empty_like(acc)
    for o in range(weights.shape[0]):
        out[:, o] = _requantize(acc[:, o], multipliers[o], shifts[o], double_rounding)
    return np.clip(out + output_offset, -128, 127).astype(np.int8)


def _step(record: tuple[int, ...], x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """One int8 ADD or MUL of x with a constant c (broadcast), TFLite reference arithmetic."""
    kind, x_off, c_off, xm, xs, cm, cs, om, os_, oo = record
    xv, cv = x.astype(np.int64) + x_off, np.broadcast_to(c, x.shape).astype(np.int64) + c_off
    if kind == STEP_ADD:
        total = (multiply_by_quantized_multiplier(xv << ADD_LEFT_SHIFT, xm, xs)
                 + multiply_by_quantized_multiplier(cv << ADD_LEFT_SHIFT, cm, cs))
    else:
        total = xv * cv
    return np.clip(multiply_by_quantized_multiplier(total, om, os_) + oo, -128, 127).astype(np.int8)


def _batch_matmul(lhs: np.ndarray, rhs: np.ndarray, lhs_offset: int, rhs_offset: int, multiplier: int, shift: int,
                  output_offset: int) -> np.ndarray:
    acc = (lhs.astype(np.int64) + lhs_offset) @ (rhs.astype(np.int64) + rhs_offset)
    return np.clip(multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset, -128, 127).astype(np.int8)


def attention(params: AttentionParams, tokens: np.ndarray, pos_table: np.ndarray | None, qkv_weights: np.ndarray,
              qkv_bias: np.ndarray | None, out_weights: np.ndarray, out_bias: np.ndarray | None) -> np.ndarray:
    """NLPOOL_ATTENTION: the output tokens (int8, the input's shape) from the input tokens.

    `tokens` is any int8 tensor of N x E elements in token-major order (the NHWC grid); `pos_table`
    is (N, E) int8. Whole tensors here; the C kernel streams one query row at a time, which gives the
    same bytes because every op below is element-wise or row-wise.
    """
    p = params
    n, e, h, d = p.tokens, p.width, p.heads, p.head_dim
    if tokens.dtype != np.int8 or tokens.size != n * e:
        raise ValueError(f"tokens must be int8 with {n} x {e} elements, got {tokens.dtype}{tokens.shape}")
    x = tokens.reshape(n, e)
    if p.pos_step:
        if pos_table is None:
            raise ValueError("the options have a positional step but no table was given")
        x = _step(p.pos_step, x, pos_table.reshape(n, e))
    qkv = _fully_connected(x, qkv_weights.reshape(3 * e, e), qkv_bias, p.qkv_input_offset, p.qkv_filter_offset,
                           p.qkv_output_offset, p.qkv_multiplier, p.qkv_shift, bool(p.fc_double_rounding))
    branches = {}
    for branch in "qkv":
        column = getattr(p, f"{branch}_column")
        t = qkv[:, column : column + e]
        for record, consts in p.steps(branch):
            t = _step(record, t, consts[None, :])
        branches[branch] = t.reshape(n, h, d).transpose(1, 0, 2)  # (heads, N, D)
    scores = _batch_matmul(branches["q"], branches["k"].transpose(0, 2, 1), p.score_lhs_offset, p.score_rhs_offset,
                           p.score_multiplier, p.score_shift, p.score_output_offset)
    probs = softmax_reference(scores, p.softmax_multiplier, p.softmax_left_shift, p.softmax_diff_min)
    mixed = _batch_matmul(probs, branches["v"], SOFTMAX_OUTPUT_OFFSET, p.mix_rhs_offset, p.mix_multiplier,
                          p.mix_shift, p.mix_output_offset)
    mixed = mixed.transpose(1, 0, 2).reshape(n, e)
    out = _fully_connected(mixed, out_weights.reshape(e, e), out_bias, p.out_input_offset, p.out_filter_offset,
                           p.output_zero_point, p.out_multiplier, p.out_shift, bool(p.fc_double_rounding))
    return out.reshape(tokens.shape)


def _reciprocal(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 / total in Q0.31 scaled into [1/2, 1), bits over unit) for a Q12.19 sum: gemmlowp's
    one_over_one_plus_x_for_x_in_0_1, three Newton-Raphson steps in Q2.29."""
    total = np.asarray(total, dtype=np.int64)
    headroom = 32 - np.floor(np.log2(np.maximum(total, 1))).astype(np.int64) - 1  # leading zeros of a positive int32
    bits_over_unit = 12 - headroom
    shifted_minus_one = ((total << headroom) & np.int64(0xFFFFFFFF)) - np.int64(1 << 31)
    sum_ = shifted_minus_one + INT32_MAX
    half_denominator = np.sign(sum_ + np.where(sum_ >= 0, 1, -1)) * (np.abs(sum_ + np.where(sum_ >= 0, 1, -1)) // 2)
    x = np.int64(1515870810) + srdhm(half_denominator, -1010580540)  # 48/17 - 32/17 d, Q2.29
    for _ in range(3):
        one_minus = np.int64(1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_shift_left(srdhm(x, one_minus), 2)
    return saturating_shift_left(x >> 1, 2), bits_over_unit


def softmax_reference(scores: np.ndarray, multiplier: int, left_shift: int, diff_min: int) -> np.ndarray:
    """TFLite's reference int8 SOFTMAX (and TFLM's) over the last axis: output scale 1/256, zero
    point -128, gemmlowp fixed point. Each row needs only its own values: it can be streamed."""
    rows = scores.reshape(-1, scores.shape[-1]).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    used = diff >= diff_min
    exps = softmax_exp(diff, multiplier, left_shift)
    total = np.where(used, rounding_divide_by_pot(exps, 12), 0).sum(axis=1, keepdims=True)
    scale, bits_over_unit = _reciprocal(total)
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        out[r] = rounding_divide_by_pot(srdhm(exps[r], int(scale[r, 0])), int(bits_over_unit[r, 0]) + 31 - 8)
    out = np.where(used, out - 128, -128)
    return np.clip(out, -128, 127).astype(np.int8).reshape(scores.shape)
