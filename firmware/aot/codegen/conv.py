"""CONV_2D as a generated kernel (template firmware/kernels/generated/nlg_conv.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.constants import Constants, constant_channels, fill_row, input_ranges, window_leaves_input
from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.requant import quant_table
from firmware.aot.ops.conv2d import Conv2dParams


def conv_kernel(p: Conv2dParams, position: int, known: Constants) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (batches > 1).

    Only the live output channels (those no proof makes constant) are computed, in pairs; the
    constant ones come from a fill row copied per pixel, and an index table places the live ones."""
    if p.batches != 1:
        return None
    taps = p.filter_h * p.filter_w
    k = taps * p.in_c
    kp = -(-k // 4) * 4
    direct = p.filter_h == p.filter_w == 1 and p.pad_h == p.pad_w == 0 and p.in_c % 4 == 0
    weights = np.asarray(p.filter, np.int8).reshape(p.out_c, k)
    padded = window_leaves_input(p.in_h, p.in_w, p.out_h, p.out_w, p.filter_h, p.filter_w, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
                                 p.pad_h, p.pad_w)
    x_lo, x_hi = input_ranges(p.in_c, p.input_offset, known, padded)
    constants = constant_channels(weights.reshape(p.out_c, taps, p.in_c), x_lo, x_hi, p.bias, np.asarray(p.out_mult),
                                  np.asarray(p.out_shift), p.output_offset, p.act_min, p.act_max)
    skipped = constants if p.out_c <= 256 else {}  # the index table is bytes
    live = np.array([o for o in range(p.out_c) if o not in skipped], np.int64)
    bias = None if p.bias is None else np.asarray(p.bias)[live]
    quant, fast = quant_table(weights[live], bias, p.input_offset, np.asarray(p.out_mult)[live], np.asarray(p.out_shift)[live],
                              p.output_offset)
    pairs = -(-live.size // 2)
    padded_w = np.zeros((2 * pairs, kp), np.int8)
    padded_w[:live.size, :k] = weights[live] if direct else weights[live][:, _window_order(p.filter_h, p.filter_w * p.in_c)]
    # per channel pair, per group of 4 taps: 4 bytes of channel o, then 4 of o + 1
    layout = padded_w.reshape(pairs, 2, kp // 4, 4).transpose(0, 2, 1, 3)
    quant = np.concatenate([quant.reshape(-1, 4), np.zeros((2 * pairs - live.size, 4), np.int32)])
    arrays: list[tuple[str, str, np.ndarray]] = [("int8_t", "w", layout), ("int32_t", "q", quant)]
    fill = idx = "0"
    if skipped:
        arrays += [("int8_t", "fill", fill_row(p.out_c, skipped)), ("uint8_t", "idx", live)]
        fill, idx = _name(position, "fill"), _name(position, "idx")
    call = (f"nlg_conv(in, out, scratch, {_name(position, 'w')}, (const nlg_quant_t *){_name(position, 'q')}, {fill}, {idx}, "
            f"{live.size}, {int(direct)}, {p.in_h}, {p.in_w}, {p.in_c}, {p.out_h}, {p.out_w}, {p.out_c}, {p.filter_h}, {p.filter_w}, "
            f"{p.stride_h}, {p.stride_w}, {p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {kp}, {int(fast)}, {-p.input_offset}, "
            f"{p.output_offset}, {p.act_min}, {p.act_max});")
    return GeneratedKernel("conv2d", position, "nlg_conv.h", tuple(arrays), call, scratch_bytes=0 if direct else 2 * kp * 2,
                           constants=tuple(sorted(constants.items())))


def _window_order(filter_h: int, row: int) -> list[int]:
    """The K order nlg_im2col writes a window in (as indices into the filter's (fy, fx, c) order): each
    row's first 4 floor(row / 4) elements, row after row, then every row's remaining ones."""
    words = row - row % 4
    rows = range(filter_h)
    return [fy * row + r for fy in rows for r in range(words)] + [fy * row + r for fy in rows for r in range(words, row)]


def _name(position: int, suffix: str) -> str:
    return f"nl_gen_op{position}_{suffix}"
