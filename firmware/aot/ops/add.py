"""ADD int8 with broadcasting (kernels/add.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import broadcast_fields, require_int8, row_major_strides, tensors
from firmware.aot.ops.unit import I32, OUT, Dims, Kernel, Params, Prepared, TensorArg, register
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel

LEFT_SHIFT = 20  # TFLite's headroom for int8 ADD: both inputs are scaled up before rescaling


@dataclass(frozen=True)
class AddParams(Params):
    """Broadcasting ADD: strides are 0 along broadcast dimensions."""

    out_dims: Dims
    in1_strides: Dims
    in2_strides: Dims
    in1_offset: I32
    in2_offset: I32
    output_offset: I32
    left_shift: I32
    in1_mult: I32
    in1_shift: I32
    in2_mult: I32
    in2_shift: I32
    out_mult: I32
    out_shift: I32
    act_min: I32
    act_max: I32


KERNEL = Kernel("nl_add", AddParams, (TensorArg("in1"), TensorArg("in2"), OUT))
CMSIS_NN = Kernel("nl_cmsis_add", AddParams, KERNEL.tensors)  # same-shape inputs only


@register("ADD", max_version=2)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Both inputs rescaled to twice the larger input scale, the sum rescaled to the output's."""
    a, b = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, a, b, out)
    twice_max = 2.0 * max(a.scale, b.scale)
    m1, s1 = quantize_multiplier(a.scale / twice_max)
    m2, s2 = quantize_multiplier(b.scale / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << LEFT_SHIFT) * out.scale))
    params = AddParams(**broadcast_fields(op, a, b, out), left_shift=LEFT_SHIFT,
                       in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so)
    dense = tuple(row_major_strides(params.out_dims))
    same_shape = params.in1_strides == dense and params.in2_strides == dense
    return Prepared(KERNEL, params, (op.inputs[0], op.inputs[1], op.outputs[0]), cmsis_nn=CMSIS_NN if same_shape else None)
