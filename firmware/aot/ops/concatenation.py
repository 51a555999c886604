"""CONCATENATION of inputs that share the output's quantisation (kernels/concatenation.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8, tensors
from firmware.aot.ops.unit import I32, OUT, I32Array, Kernel, Params, Prepared, TensorArg, UnsupportedOp, register
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class ConcatParams(Params):
    """CONCATENATION of inputs sharing the output's quantisation: outer x (axis_i x inner) blocks."""

    num_inputs: I32
    outer: I32
    inner: I32
    axis_sizes: I32Array


KERNEL = Kernel("nl_concatenation", ConcatParams, (TensorArg("ins", many=True), OUT))


@register("CONCATENATION", max_version=2)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Block sizes around the axis; requantising inputs or a fused activation are refused."""
    out = graph.tensors[op.outputs[0]]
    ins = tensors(graph, op.inputs)
    require_int8(op, out, *ins)
    for t in ins:
        if t.scale != out.scale or t.zero_point != out.zero_point:
            raise UnsupportedOp("CONCATENATION with inputs quantised differently from the output")
    if op.options.fusedActivationFunction:
        raise UnsupportedOp("CONCATENATION with a fused activation")
    axis = op.options.axis % len(out.shape)
    params = ConcatParams(num_inputs=len(ins), outer=int(np.prod(out.shape[:axis], dtype=np.int64)),
                          inner=int(np.prod(out.shape[axis + 1:], dtype=np.int64)),
                          axis_sizes=np.asarray([t.shape[axis] for t in ins]))
    return Prepared(KERNEL, params, (tuple(op.inputs), op.outputs[0]))
