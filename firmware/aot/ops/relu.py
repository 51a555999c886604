"""RELU and RELU6 int8, standalone rather than fused (kernels/relu.c), as upstream TFLM computes them.

TFLM's RELU requantises to the output scale, then clamps. Its RELU6 does not requantise: it clamps
the input bytes to [input zero point, 6.0 quantised with the input's scale] and writes them as they
are, whatever the output tensor's quantisation says. The TFLite interpreter requantises RELU6, so the
two differ when a standalone RELU6's input and output quantisation differ (docs/rounding.md); nlpool
follows TFLM, what runs on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, Kernel, Params, Prepared, register
from firmware.aot.quant import activation_range
from nlpool.core.fixedpoint import quantize_multiplier, round_half_away
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


@register("RELU", max_version=2)
def prepare_relu(graph: TfliteModel, op: Operator) -> Prepared:
    """Clamp below at the quantised 0."""
    return _prepare(graph, op, RELU)


@register("RELU6", max_version=2)
def prepare_relu6(graph: TfliteModel, op: Operator) -> Prepared:
    """Clamp to [0, 6] quantised with the input's scale, no requantisation (TFLM's Relu6Prepare/Eval)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    six = int(np.clip(round_half_away(np.float32(6.0) / np.float32(inp.scale)) + inp.zero_point, -128, 127))
    # Multiplier 2^30 with shift 1 is exactly x1 in nl_mbqm, so the kernel only clamps.
    params = ReluParams(size=inp.size, input_zero_point=0, output_zero_point=0, mult=1 << 30, shift=1,
                        act_min=inp.zero_point, act_max=six)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
