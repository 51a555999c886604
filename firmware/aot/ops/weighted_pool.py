"""NLPOOL_WEIGHTED_POOL, the custom op of self-attentive pooling (kernels/nlpool_weighted_pool.c).

Its struct is defined by the hand-written kernels/nlpool_weighted_pool.h, which the TFLM project
shares; `WeightedPoolParams` mirrors it field for field (tests/test_firmware_kernels.py checks
that) so the initialiser and the ctypes test are derived from one list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8, tensors
from firmware.aot.ops.unit import I32, I32Array, Kernel, Params, Prepared, TensorArg, UnsupportedOp, register
from nlpool.core import custom_ops
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class WeightedPoolParams(Params, c_name="nlpool_weighted_pool_params_t", header="nlpool_weighted_pool.h"):
    """NLPOOL_WEIGHTED_POOL: y = sum(pi * x) / sum(pi) over each window, pi from a Q14 table."""

    batches: I32
    in_h: I32
    in_w: I32
    channels: I32
    out_h: I32
    out_w: I32
    filter_h: I32
    filter_w: I32
    stride_h: I32
    stride_w: I32
    x_zero_point: I32
    out_zero_point: I32
    out_multiplier: I32
    out_shift: I32
    table: I32Array


KERNEL = Kernel("nlpool_weighted_pool", WeightedPoolParams, (TensorArg("x"), TensorArg("r"), TensorArg("y", output=True)))


@register(custom_ops.WEIGHTED_POOL_OP_NAME, max_version=1)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """The options, decoded and validated by the contract, checked against the tensors' quantisation
    (what TFLM's Prepare checks)."""
    x, r = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, x, r, out)
    try:
        options = custom_ops.WeightedPoolParams.from_flexbuffer(op.custom_options)
    except custom_ops.CustomOptionsError as exc:
        raise UnsupportedOp(str(exc)) from None
    for key, t in (("x_zero_point", x), ("r_zero_point", r), ("out_zero_point", out)):
        if getattr(options, key) != t.zero_point:
            raise UnsupportedOp(f"{custom_ops.WEIGHTED_POOL_OP_NAME} option {key}={getattr(options, key)} differs from "
                                f"tensor zero point {t.zero_point}")
    b, ih, iw, c = x.shape
    _, oh, ow, _ = out.shape
    params = WeightedPoolParams(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                                filter_h=options.filter_h, filter_w=options.filter_w,
                                stride_h=options.stride_h, stride_w=options.stride_w,
                                x_zero_point=x.zero_point, out_zero_point=out.zero_point,
                                out_multiplier=options.out_multiplier, out_shift=options.out_shift,
                                table=np.asarray(options.table))
    return Prepared(KERNEL, params, (op.inputs[0], op.inputs[1], op.outputs[0]))
