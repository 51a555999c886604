"""RELU and RELU6 int8, standalone rather than fused (kernels/relu.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, Kernel, Params, Prepared, register
from firmware.aot.quant import activation_range
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel

RELU, RELU6 = 1, 3  # TFLite's ActivationFunctionType values


@dataclass(frozen=True)
class ReluParams(Params):
    """RELU / RELU6 int8: requantise to the output scale, then clamp to the activation range."""

    size: I32
    input_zero_point: I32
    output_zero_point: I32
    mult: I32
    shift: I32
    act_min: I32
    act_max: I32


KERNEL = Kernel("nl_relu", ReluParams)


def _prepare(graph: TfliteModel, op: Operator, activation: int) -> Prepared:
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    m, s = quantize_multiplier(inp.scale / out.scale)
    lo, hi = activation_range(activation, out.scale, out.zero_point)
    params = ReluParams(size=inp.size, input_zero_point=inp.zero_point, output_zero_point=out.zero_point,
                        mult=m, shift=s, act_min=lo, act_max=hi)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))


@register("RELU")
def prepare_relu(graph: TfliteModel, op: Operator) -> Prepared:
    """Clamp below at the quantised 0."""
    return _prepare(graph, op, RELU)


@register("RELU6")
def prepare_relu6(graph: TfliteModel, op: Operator) -> Prepared:
    """Clamp to the quantised [0, 6]."""
    return _prepare(graph, op, RELU6)
