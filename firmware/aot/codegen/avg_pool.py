"""AVERAGE_POOL_2D as a generated kernel (template firmware/kernels/generated/nlg_avgpool.h)."""

from __future__ import annotations

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.ops.pool2d import PoolParams

INT16_SUM_TAPS = 256  # |sum| of at most this many int8 values is <= 128 * 256: it fits the kernel's int16 halves


def avg_pool_kernel(p: PoolParams, position: int) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (a window of more than 256 taps)."""
    if p.filter_h * p.filter_w > INT16_SUM_TAPS:
        return None
    call = (f"nlg_avgpool(in, out, {p.batches}, {p.in_h}, {p.in_w}, {p.channels}, {p.out_h}, {p.out_w}, {p.filter_h}, {p.filter_w}, "
            f"{p.stride_h}, {p.stride_w}, {p.pad_h}, {p.pad_w}, {p.act_min}, {p.act_max});")
    return GeneratedKernel("avg_pool", position, "nlg_avgpool.h", (), call)
