"""QUANTIZE (int8 -> int8 in kernels/requantize.c, float -> int8 in kernels/quantize_f32.c) and
DEQUANTIZE (int8 -> float, kernels/dequantize.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import F32, I32, IN, OUT, Kernel, Params, Prepared, TensorArg, UnsupportedOp, register
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class RequantizeParams(Params):
    """QUANTIZE int8 -> int8: requantise from the input's scale and zero point to the output's."""

    size: I32
    input_zero_point: I32
    output_zero_point: I32
    mult: I32
    shift: I32


@dataclass(frozen=True)
class AffineParams(Params):
    """QUANTIZE float -> int8 and DEQUANTIZE int8 -> float: one scale and zero point."""

    size: I32
    zero_point: I32
    scale: F32


REQUANTIZE = Kernel("nl_requantize", RequantizeParams)
FROM_FLOAT = Kernel("nl_quantize_f32", AffineParams, (TensorArg("in", "float"), OUT))
TO_FLOAT = Kernel("nl_dequantize", AffineParams, (IN, TensorArg("out", "float", output=True)))


@register("QUANTIZE", max_version=1)
def prepare_quantize(graph: TfliteModel, op: Operator) -> Prepared:
    """Float inputs are quantised with the output's scale; int8 inputs requantised by a multiplier."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    tensor_args = (op.inputs[0], op.outputs[0])
    if inp.dtype == "float32" and out.dtype == "int8":
        return Prepared(FROM_FLOAT, AffineParams(size=inp.size, zero_point=out.zero_point, scale=float(out.scale)),
                        tensor_args)
    require_int8(op, inp, out)
    m, s = quantize_multiplier(inp.scale / out.scale)
    params = RequantizeParams(size=inp.size, input_zero_point=inp.zero_point, output_zero_point=out.zero_point,
                              mult=m, shift=s)
    return Prepared(REQUANTIZE, params, tensor_args)


@register("DEQUANTIZE", max_version=2)
def prepare_dequantize(graph: TfliteModel, op: Operator) -> Prepared:
    """int8 -> float32 only (a model's float output)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if inp.dtype != "int8" or out.dtype != "float32":
        raise UnsupportedOp(f"DEQUANTIZE {inp.dtype} -> {out.dtype}")
    params = AffineParams(size=inp.size, zero_point=inp.zero_point, scale=float(inp.scale))
    return Prepared(TO_FLOAT, params, (op.inputs[0], op.outputs[0]))
