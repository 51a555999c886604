"""LOGISTIC int8 through the interpreter's lookup table (kernels/logistic.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, I8Array, Kernel, Params, Prepared, register
from firmware.aot.quant import logistic_table
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class LutParams(Params):
    """LOGISTIC (and any other int8 -> int8 unary op) through a 256-entry table indexed by q + 128."""

    size: I32
    table: I8Array


KERNEL = Kernel("nl_logistic", LutParams)


@register("LOGISTIC")
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """The int8 table the interpreter builds from float sigmoid, for these scales and zero points."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    params = LutParams(size=inp.size, table=np.asarray(logistic_table(inp.scale, inp.zero_point, out.scale, out.zero_point)))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
