"""SOFTMAX int8 over the last dimension (kernels/softmax.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import F32, I32, F32Array, Kernel, Params, Prepared, register
from firmware.aot.quant import softmax_table
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class SoftmaxParams(Params):
    """SOFTMAX over the last dimension, TFLite's float lookup-table algorithm;
    table[255 - d] = exp(-input_scale * beta * d)."""

    rows: I32
    depth: I32
    output_zero_point: I32
    output_scale: F32
    table: F32Array


KERNEL = Kernel("nl_softmax", SoftmaxParams)


@register("SOFTMAX")
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """The interpreter's exp table for this input scale and beta, built at generation time."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    depth = inp.shape[-1]
    params = SoftmaxParams(rows=inp.size // depth, depth=depth, output_zero_point=out.zero_point,
                           output_scale=float(out.scale), table=np.asarray(softmax_table(inp.scale, op.options.beta)))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
