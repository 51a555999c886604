"""BATCH_MATMUL int8 (kernels/batch_matmul.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8, tensors
from firmware.aot.ops.unit import I32, OUT, Kernel, Params, Prepared, TensorArg, UnsupportedOp, register
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class BatchMatmulParams(Params):
    """BATCH_MATMUL: out[b] = lhs[b] (rows x depth) * rhs[b] (depth x cols); strides express adj_x/adj_y."""

    batches: I32
    rows: I32
    cols: I32
    depth: I32
    lhs_batch_stride: I32
    lhs_row_stride: I32
    lhs_depth_stride: I32
    rhs_batch_stride: I32
    rhs_depth_stride: I32
    rhs_col_stride: I32
    lhs_offset: I32
    rhs_offset: I32
    output_offset: I32
    out_mult: I32
    out_shift: I32
    act_min: I32
    act_max: I32


KERNEL = Kernel("nl_batch_matmul", BatchMatmulParams, (TensorArg("lhs"), TensorArg("rhs"), OUT))


@register("BATCH_MATMUL", max_version=2)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Transposed operands become strides; one side may broadcast over the batch, nothing partial."""
    lhs, rhs = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, lhs, rhs, out)
    adj_x, adj_y = bool(op.options.adjX), bool(op.options.adjY)
    lr, lc = lhs.shape[-2:]
    rr, rc = rhs.shape[-2:]
    rows, depth = (lc, lr) if adj_x else (lr, lc)
    lb = int(np.prod(lhs.shape[:-2], dtype=np.int64))
    rb = int(np.prod(rhs.shape[:-2], dtype=np.int64))
    if (lb != rb and min(lb, rb) != 1) or (lb == rb and lhs.shape[:-2] != rhs.shape[:-2]
                                           and len(lhs.shape) == len(rhs.shape)):
        raise UnsupportedOp("BATCH_MATMUL with partial batch broadcasting")
    mo, so = quantize_multiplier(lhs.scale * rhs.scale / out.scale)
    params = BatchMatmulParams(batches=max(lb, rb), rows=rows, cols=rr if adj_y else rc, depth=depth,
                               lhs_batch_stride=0 if lb == 1 else lr * lc,
                               lhs_row_stride=1 if adj_x else lc, lhs_depth_stride=lc if adj_x else 1,
                               rhs_batch_stride=0 if rb == 1 else rr * rc,
                               rhs_depth_stride=1 if adj_y else rc, rhs_col_stride=rc if adj_y else 1,
                               lhs_offset=-lhs.zero_point, rhs_offset=-rhs.zero_point,
                               output_offset=out.zero_point, out_mult=mo, out_shift=so, act_min=-128, act_max=127)
    return Prepared(KERNEL, params, (op.inputs[0], op.inputs[1], op.outputs[0]))
