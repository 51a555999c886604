"""DEPTHWISE_CONV_2D as a generated Helium (MVE) kernel (template firmware/kernels/generated/nlg_mve_depthwise.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.mve_quant import mve_quant_table
from firmware.aot.ops.depthwise_conv2d import DepthwiseConv2dParams

MAX_FILTER_H = 16  # NLG_MVE_DW_MAX_FH: the template's row table


def inplace_ring_bytes(p: DepthwiseConv2dParams) -> int:
    """The scratch the in-place form needs: pad_h + 1 input rows (the ones later outputs still read)."""
    return (p.pad_h + 1) * p.in_w * p.in_c


def mve_depthwise_kernel(p: DepthwiseConv2dParams, position: int, inplace: bool = False) -> GeneratedKernel | None:
    """The layer's MVE kernel, None where the template does not apply (batches > 1, a channel multiplier
    other than 1, channels not a multiple of 4, a filter taller than 16 rows). `inplace`: the form that
    writes its output over its input (the memory plan's choice; stride 1 and the input's shape)."""
    if p.batches != 1 or p.depth_mult != 1 or p.in_c % 4 or p.filter_h > MAX_FILTER_H:
        return None
    if inplace and (p.stride_h != 1 or (p.out_h, p.out_w) != (p.in_h, p.in_w)):
        return None
    c, taps = p.in_c, p.filter_h * p.filter_w
    weights = np.asarray(p.filter, np.int8).reshape(taps, c)
    quant, any_left = mve_quant_table(weights.astype(np.int64).sum(axis=0), p.bias, p.input_offset, np.asarray(p.out_mult),
                                      np.asarray(p.out_shift))
    # per group of 4 channels, tap after tap: the group's 4 weights (one VLDRB.S32)
    layout = weights.reshape(taps, c // 4, 4).transpose(1, 0, 2)
    function = f"nl_gen_mve_op{position}"
    call = (f"nlg_mve_depthwise(in, out, scratch, {function}_w, (const nlg_mve_quant_t *){function}_q, {int(inplace)}, "
            f"{p.in_h}, {p.in_w}, {c}, {p.out_h}, {p.out_w}, {p.filter_h}, {p.filter_w}, {p.stride_h}, {p.stride_w}, "
            f"{p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {-p.input_offset}, {int(any_left)}, {p.output_offset}, "
            f"{p.act_min}, {p.act_max});")
    return GeneratedKernel("depthwise", position, "nlg_mve_depthwise.h", (("int8_t", "w", layout), ("int32_t", "q", quant)), call,
                           scratch_bytes=inplace_ring_bytes(p) if inplace else 0, core="mve")
