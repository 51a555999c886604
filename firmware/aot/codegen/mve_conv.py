"""CONV_2D as a generated Helium (MVE) kernel (template firmware/kernels/generated/nlg_mve_conv.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.mve_quant import mve_quant_table
from firmware.aot.ops.conv2d import Conv2dParams


def mve_conv_kernel(p: Conv2dParams, position: int) -> GeneratedKernel | None:
    """The layer's MVE kernel, None where the template does not apply (batches > 1). A 1x1 layer
    without padding reads its input in place; any other needs K bytes of scratch for the window."""
    if p.batches != 1:
        return None
    k = p.filter_h * p.filter_w * p.in_c
    kp = -(-k // 16) * 16
    groups = -(-p.out_c // 4)
    direct = p.filter_h == p.filter_w == 1 and p.pad_h == p.pad_w == 0
    weights = np.zeros((4 * groups, kp), np.int8)
    weights[:p.out_c, :k] = np.asarray(p.filter, np.int8).reshape(p.out_c, k)
    # per group of 4 channels, per chunk of 16: the 4 channels' 16 bytes (channels past out_c: zero weights, not stored)
    layout = weights.reshape(groups, 4, kp // 16, 16).transpose(0, 2, 1, 3)
    padding = np.zeros(4 * groups - p.out_c, np.int64)
    bias = None if p.bias is None else np.concatenate([np.asarray(p.bias, np.int64), padding])
    quant, any_left = mve_quant_table(weights.astype(np.int64).sum(axis=1), bias, p.input_offset,
                                      np.concatenate([np.asarray(p.out_mult, np.int64), padding]),
                                      np.concatenate([np.asarray(p.out_shift, np.int64), padding]))
    function = f"nl_gen_mve_op{position}"
    call = (f"nlg_mve_conv(in, out, scratch, {function}_w, (const nlg_mve_quant_t *){function}_q, {int(direct)}, {p.in_h}, "
            f"{p.in_w}, {p.in_c}, {p.out_h}, {p.out_w}, {p.out_c}, {p.filter_h}, {p.filter_w}, {p.stride_h}, {p.stride_w}, "
            f"{p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {kp}, {-p.input_offset}, {int(any_left)}, {p.output_offset}, "
            f"{p.act_min}, {p.act_max});")
    return GeneratedKernel("conv2d", position, "nlg_mve_conv.h", (("int8_t", "w", layout), ("int32_t", "q", quant)), call,
                           scratch_bytes=0 if direct else k, core="mve")
