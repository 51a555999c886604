"""MUL int8 with broadcasting (kernels/mul.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import broadcast_fields, require_int8, row_major_strides, tensors
from firmware.aot.ops.unit import I32, OUT, Dims, Kernel, Params, Prepared, TensorArg, register
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class MulParams(Params):
    """Broadcasting MUL: strides are 0 along broadcast dimensions."""

    out_dims: Dims
    in1_strides: Dims
    in2_strides: Dims
    in1_offset: I32
    in2_offset: I32
    output_offset: I32
    out_mult: I32
    out_shift: I32
    act_min: I32
    act_max: I32


KERNEL = Kernel("nl_mul", MulParams, (TensorArg("in1"), TensorArg("in2"), OUT))
CMSIS_NN = Kernel("nl_cmsis_mul", MulParams, KERNEL.tensors)  # same-shape inputs only


@register("MUL", max_version=3)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """One multiplier for the product of the two input scales over the output scale."""
    a, b = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, a, b, out)
    mo, so = quantize_multiplier(a.scale * b.scale / out.scale)
    params = MulParams(**broadcast_fields(op, a, b, out), out_mult=mo, out_shift=so)
    dense = tuple(row_major_strides(params.out_dims))
    same_shape = params.in1_strides == dense and params.in2_strides == dense
    return Prepared(KERNEL, params, (op.inputs[0], op.inputs[1], op.outputs[0]), cmsis_nn=CMSIS_NN if same_shape else None)
