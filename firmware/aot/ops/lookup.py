"""Element-wise int8 ops as a 256-entry table of TFLM's reference kernel's outputs, one per input
value (kernels/lookup.c): LOGISTIC and HARD_SWISH. The table is the whole arithmetic, computed at
generation time for the op's quantisation, so the firmware is bit-exact by construction and costs
one load per element."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, I8Array, Kernel, Params, Prepared, UnsupportedOp, register
from firmware.aot.quant import hard_swish_int8_table
from nlpool.core.fixedpoint import logistic_int8_table
from nlpool.core.tflite import Operator, Tensor, TfliteModel


@dataclass(frozen=True)
class LutParams(Params):
    """An int8 -> int8 element-wise op through a 256-entry table indexed by q + 128."""

    size: I32
    table: I8Array


KERNEL = Kernel("nl_lookup", LutParams)


def _unary(graph: TfliteModel, op: Operator) -> tuple[Tensor, Tensor]:
    """The op's one input and one output, int8 and quantised."""
    if len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] < 0:
        raise UnsupportedOp(f"{op.name} with {len(op.inputs)} inputs and {len(op.outputs)} outputs (1 and 1)")
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    if inp.size != out.size:
        raise UnsupportedOp(f"{op.name} from {inp.size} values to {out.size}")
    return inp, out


@register("LOGISTIC", max_version=2)
def prepare_logistic(graph: TfliteModel, op: Operator) -> Prepared:
    """TFLM's reference int8 LOGISTIC of each of the 256 inputs, for this input scale and zero point.

    TFLM requires the output zero point -128 and assumes the scale 1/256 (what the converter writes)."""
    inp, out = _unary(graph, op)
    if out.zero_point != -128:
        raise UnsupportedOp(f"LOGISTIC output zero point {out.zero_point} (TFLM: only -128)")
    params = LutParams(size=inp.size, table=logistic_int8_table(inp.scale, inp.zero_point))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))


@register("HARD_SWISH", max_version=1)
def prepare_hard_swish(graph: TfliteModel, op: Operator) -> Prepared:
    """TFLM's reference int8 HARD_SWISH (x * relu6(x + 3) / 6) of each of the 256 inputs, for this
    input and output quantisation (MobileNetV3's activation, which the converter fuses into one op)."""
    inp, out = _unary(graph, op)
    try:
        table = hard_swish_int8_table(inp.scale, inp.zero_point, out.scale, out.zero_point)
    except ValueError as err:
        raise UnsupportedOp(str(err)) from None
    return Prepared(KERNEL, LutParams(size=inp.size, table=table), (op.inputs[0], op.outputs[0]))
