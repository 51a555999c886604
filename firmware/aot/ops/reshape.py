"""RESHAPE, SQUEEZE and EXPAND_DIMS: the bytes are unchanged (kernels/reshape.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.unit import I32, Kernel, Params, Prepared, register
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class ReshapeParams(Params):
    """RESHAPE (and SQUEEZE, EXPAND_DIMS): a byte copy unless the planner placed both in one slot."""

    bytes: I32


KERNEL = Kernel("nl_reshape", ReshapeParams)


@register("RESHAPE", "SQUEEZE", "EXPAND_DIMS", max_version=1)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Only the byte count: the shape operand does not change the data."""
    params = ReshapeParams(bytes=graph.tensors[op.inputs[0]].nbytes)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
