"""SOFTMAX int8 over the last dimension (kernels/softmax.c): TFLM's fixed-point reference kernel."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, I32Array, Kernel, Params, Prepared, UnsupportedOp, register
from nlpool.core.fixedpoint import softmax_exp_table, softmax_fixed_params
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class SoftmaxParams(Params):
    """SOFTMAX over the last dimension, upstream TFLM's gemmlowp fixed-point algorithm;
    exp_table[i] = the fixed-point exp of a difference of -i from the row maximum."""

    rows: I32
    depth: I32
    diff_min: I32
    exp_table: I32Array


KERNEL = Kernel("nl_softmax", SoftmaxParams)


@register("SOFTMAX", max_version=2)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """TFLM's Prepare: the input multiplier and diff_min from scale x beta, the exps tabulated."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    if out.zero_point != -128 or float(out.scale) != 1.0 / 256:
        raise UnsupportedOp(f"SOFTMAX output quantised {out.scale:g}/{out.zero_point} (TFLM: only 1/256, -128)")
    try:
        multiplier, left_shift, diff_min = softmax_fixed_params(inp.scale, op.options.beta)
    except ValueError as exc:
        raise UnsupportedOp(str(exc)) from None
    depth = inp.shape[-1]
    params = SoftmaxParams(rows=inp.size // depth, depth=depth, diff_min=diff_min,
                           exp_table=softmax_exp_table(multiplier, left_shift))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
