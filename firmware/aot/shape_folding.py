"""Shape arithmetic computed at generation time: the ops the Keras converter writes around a
`Reshape` layer of a model with a free batch (SHAPE of an activation, STRIDED_SLICE of the batch
out of it, PACK with the layer's target shape, then RESHAPE). At batch 1, the planned batch, their
int32 results are constants: the generator computes them here, the firmware runs nothing for
them, and RESHAPE (which writes its output's shape whatever its shape operand) reads a constant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from firmware.aot.ops.common import MAX_DIMS
from firmware.aot.ops.gather import strided_slice_gather
from firmware.aot.ops.unit import Kernel, Params, Prepared, UnsupportedOp
from nlpool.core.tflite import Operator, TfliteModel

SHAPE_DTYPES = ("int32", "int64")
FOLDABLE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


@dataclass(frozen=True)
class ComputedParams(Params):
    """No parameters: the op ran in the generator."""


COMPUTED = Prepared(Kernel("nl_computed", ComputedParams, ()), ComputedParams(), (), computed=True)


def _gather(values: np.ndarray, graph: TfliteModel, op: Operator) -> np.ndarray:
    params = strided_slice_gather(graph, op)
    index = np.indices(params.out_dims).reshape(MAX_DIMS, -1)
    flat = params.base + (np.asarray(params.in_strides)[:, None] * index).sum(axis=0)
    return values.reshape(-1)[flat]


def _evaluate(graph: TfliteModel, op: Operator) -> np.ndarray | None:
    """The op's output if it is shape arithmetic whose operands are known now, else None."""
    out = graph.tensors[op.outputs[0]] if len(op.outputs) == 1 else None
    if out is None or out.dtype not in SHAPE_DTYPES or op.name not in FOLDABLE_OPS or not op.inputs or min(op.inputs) < 0:
        return None
    if op.name == "SHAPE":  # only the (static, batch-1) shape of its input is read
        value = np.asarray(graph.tensors[op.inputs[0]].shape)
    else:
        operands = [graph.tensors[i].data for i in op.inputs]
        if any(v is None for v in operands):
            return None
        if op.name == "PACK":
            axis = int(getattr(op.options, "axis", 0))
            if len({v.shape for v in operands}) != 1 or not -operands[0].ndim - 1 <= axis <= operands[0].ndim:
                return None
            value = np.stack(operands, axis=axis)
        else:
            try:
                value = _gather(operands[0], graph, op)
            except UnsupportedOp:
                return None
    if value.size != out.size:
        return None
    return value.astype(out.dtype).reshape(out.shape)


def fold_shape_ops(graph: TfliteModel) -> tuple[TfliteModel, frozenset[int]]:
    """`graph` with the outputs of its shape arithmetic as constants, and the positions of the ops
    that computed them (nothing is emitted for those)."""
    tensors = list(graph.tensors)
    folded: set[int] = set()
    for op in graph.operators:
        current = replace(graph, tensors=tuple(tensors))
        value = _evaluate(current, op)
        if value is not None:
            tensors[op.outputs[0]] = replace(tensors[op.outputs[0]], data=value)
            folded.add(op.position)
    if not folded:
        return graph, frozenset()
    return replace(graph, tensors=tuple(tensors)), frozenset(folded)
