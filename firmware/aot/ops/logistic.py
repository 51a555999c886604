"""LOGISTIC int8 through a lookup table of TFLM's fixed-point reference kernel (kernels/logistic.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, I8Array, Kernel, Params, Prepared, UnsupportedOp, register
from nlpool.core.fixedpoint import logistic_int8_table
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class LutParams(Params):
    """LOGISTIC (and any other int8 -> int8 unary op) through a 256-entry table indexed by q + 128."""

    size: I32
    table: I8Array


KERNEL = Kernel("nl_logistic", LutParams)


@register("LOGISTIC")
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """TFLM's reference int8 LOGISTIC of each of the 256 inputs, for this input scale and zero point.

    TFLM requires the output zero point -128 and assumes the scale 1/256 (what the converter writes)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    if out.zero_point != -128:
        raise UnsupportedOp(f"LOGISTIC output zero point {out.zero_point} (TFLM: only -128)")
    params = LutParams(size=inp.size, table=logistic_int8_table(inp.scale, inp.zero_point))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
