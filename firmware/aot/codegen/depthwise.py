"""DEPTHWISE_CONV_2D as a generated kernel (template firmware/kernels/generated/nlg_depthwise.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.constants import Constants, constant_channels, fill_row, input_ranges, window_leaves_input
from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.requant import quant_table
from firmware.aot.ops.depthwise_conv2d import DepthwiseConv2dParams


def depthwise_kernel(p: DepthwiseConv2dParams, position: int, known: Constants) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (batches > 1, a channel multiplier
    other than 1, channels not a multiple of 4).

    It works in groups of 4 channels; a group whose 4 channels are all proved constant is not
    computed (a fill row copied per pixel holds it)."""
    if p.batches != 1 or p.depth_mult != 1 or p.in_c % 4:
        return None
    c, taps = p.in_c, p.filter_h * p.filter_w
    weights = np.asarray(p.filter, np.int8).reshape(taps, c)
    padded = window_leaves_input(p.in_h, p.in_w, p.out_h, p.out_w, p.filter_h, p.filter_w, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
                                 p.pad_h, p.pad_w)
    x_lo, x_hi = input_ranges(c, p.input_offset, known, padded)
    constants = constant_channels(weights.T.reshape(c, taps, 1), x_lo.reshape(c, 1, 1), x_hi.reshape(c, 1, 1), p.bias,
                                  np.asarray(p.out_mult), np.asarray(p.out_shift), p.output_offset, p.act_min, p.act_max)
    groups = np.array([g for g in range(c // 4) if any(4 * g + i not in constants for i in range(4)) or c > 4 * 256], np.int64)
    live = (4 * groups[:, None] + np.arange(4)).reshape(-1)
    bias = None if p.bias is None else np.asarray(p.bias)[live]
    quant, fast = quant_table(weights.T[live], bias, p.input_offset, np.asarray(p.out_mult)[live], np.asarray(p.out_shift)[live],
                              p.output_offset)
    # per live group of 4 channels, per tap: int16 halves (w0, w2), (w1, w3), as SXTB16 splits an input word
    halves = weights[:, live].astype(np.int16).reshape(taps, groups.size, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2)
    words = halves.view(np.uint16).astype(np.uint32).reshape(groups.size, taps, 2, 2)
    packed = words[..., 0] | (words[..., 1] << 16)
    arrays: list[tuple[str, str, np.ndarray]] = [("uint32_t", "w", packed), ("int32_t", "q", quant.reshape(-1, 4))]
    fill = index = "0"
    if groups.size < c // 4:
        arrays += [("int8_t", "fill", fill_row(c, constants)), ("uint8_t", "groups", groups)]
        fill, index = f"nl_gen_op{position}_fill", f"nl_gen_op{position}_groups"
    call = (f"nlg_depthwise(in, out, nl_gen_op{position}_w, (const nlg_quant_t *)nl_gen_op{position}_q, {fill}, {index}, "
            f"{groups.size}, {p.in_h}, {p.in_w}, {c}, {p.out_h}, {p.out_w}, {p.filter_h}, {p.filter_w}, {p.stride_h}, {p.stride_w}, "
            f"{p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {int(fast)}, {-p.input_offset}, {p.output_offset}, {p.act_min}, {p.act_max});")
    return GeneratedKernel("depthwise", position, "nlg_depthwise.h", tuple(arrays), call, constants=tuple(sorted(constants.items())))
