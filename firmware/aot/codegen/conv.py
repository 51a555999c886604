"""CONV_2D as a generated kernel (template firmware/kernels/generated/nlg_conv.h)."""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.requant import quant_table
from firmware.aot.ops.conv2d import Conv2dParams


def conv_kernel(p: Conv2dParams, position: int) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (batches > 1)."""
    if p.batches != 1:
        return None
    k = p.filter_h * p.filter_w * p.in_c
    kp = -(-k // 4) * 4
    direct = p.filter_h == p.filter_w == 1 and p.pad_h == p.pad_w == 0 and p.in_c % 4 == 0
    weights = np.asarray(p.filter, np.int8).reshape(p.out_c, k)
    quant, fast = quant_table(weights, p.bias, p.input_offset, np.asarray(p.out_mult), np.asarray(p.out_shift))
    pairs = -(-p.out_c // 2)
    padded = np.zeros((2 * pairs, kp), np.int8)
    padded[:p.out_c, :k] = weights
    # per channel pair, per group of 4 taps: 4 bytes of channel o, then 4 of o + 1
    layout = padded.reshape(pairs, 2, kp // 4, 4).transpose(0, 2, 1, 3)
    quant = np.concatenate([quant, np.zeros((2 * pairs - p.out_c, 4), np.int32)])
    call = (f"nlg_conv(in, out, scratch, {_name(position, 'w')}, (const nlg_quant_t *){_name(position, 'q')}, {int(direct)}, "
            f"{p.in_h}, {p.in_w}, {p.in_c}, {p.out_h}, {p.out_w}, {p.out_c}, {p.filter_h}, {p.filter_w}, "
            f"{p.stride_h}, {p.stride_w}, {p.dil_h}, {p.dil_w}, {p.pad_h}, {p.pad_w}, {kp}, {int(fast)}, {-p.input_offset}, "
            f"{p.output_offset}, {p.act_min}, {p.act_max});")
    return GeneratedKernel("conv2d", position, "nlg_conv.h", (("int8_t", "w", layout), ("int32_t", "q", quant)), call,
                           scratch_bytes=0 if direct else 2 * kp * 2)


def _name(position: int, suffix: str) -> str:
    return f"nl_gen_op{position}_{suffix}"
