"""DEPTHWISE_CONV_2D as a generated kernel (template firmware/kernels/generated/nlg_depthwise.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.requant import quant_table
from firmware.aot.ops.depthwise_conv2d import DepthwiseConv2dParams


def depthwise_kernel(p: DepthwiseConv2dParams, position: int) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (batches > 1, a channel multiplier
    other than 1, channels not a multiple of 4)."""
    if p.batches != 1 or p.depth_mult != 1 or p.in_c % 4:
        return None
    c, taps = p.in_c, p.filter_h * p.filter_w
    weights = np.asarray(p.filter, np.int8).reshape(taps, c)
    quant, fast = quant_table(weights.T, p.bias, p.input_offset, np.asarray(p.out_mult), np.asarray(p.out_shift))
    # per group of 4 channels, per tap: int16 halves (w0, w2), (w1, w3), as SXTB16 splits an input word
    halves = weights.astype(np.int16).reshape(taps, c // 4, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2)
    words = halves.view(np.uint16).astype(np.uint32).reshape(c // 4, taps, 2, 2)
    packed = words[..., 0] | (words[..., 1] << 16)
    call = (f"nlg_depthwise(in, out, nl_gen_op{position}_w, (const nlg_quant_t *)nl_gen_op{position}_q, "
            f"{p.in_h}, {p.in_w}, {c}, {p.out_h}, {p.out_w}, {p.filter_h}, {p.filter_w}, {p.stride_h}, {p.stride_w}, "
            f"{p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {int(fast)}, {-p.input_offset}, {p.output_offset}, {p.act_min}, {p.act_max});")
    return GeneratedKernel("depthwise", position, "nlg_depthwise.h", (("uint32_t", "w", packed), ("int32_t", "q", quant)), call)
