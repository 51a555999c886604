"""PAD and PADV2 with a constant value (kernels/pad.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import MAX_DIMS, constant, pad_dims, require_int8
from firmware.aot.ops.unit import I32, Dims, Kernel, Params, Prepared, register
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class PadParams(Params):
    """PAD / PADV2 with a constant value."""

    out_dims: Dims
    in_dims: Dims
    before: Dims
    pad_value: I32


KERNEL = Kernel("nl_pad", PadParams)
CMSIS_NN = Kernel("nl_cmsis_pad", PadParams)  # at most 4 dimensions


@register("PAD", "PADV2", max_version=4)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Leading padding per dimension; the value is PADV2's operand or the output zero point."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    value = out.zero_point
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(constant(graph, op, 2, "pad value").reshape(-1)[0])
    before = tuple(int(p) for p in constant(graph, op, 1, "paddings").reshape(-1, 2)[:, 0])
    params = PadParams(out_dims=pad_dims(out.shape), in_dims=pad_dims(inp.shape),
                       before=(0,) * (MAX_DIMS - len(inp.shape)) + before, pad_value=value)
    four_d = len(out.shape) <= 4
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN if four_d else None)
