"""MEAN over H and W of a 4-D tensor, keep_dims or not (kernels/mean.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import constant, require_int8
from firmware.aot.ops.unit import I32, Kernel, Params, Prepared, UnsupportedOp, register
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class MeanParams(Params):
    """MEAN over H and W of a 4-D tensor; mult/shift ~ in_scale / (out_scale * H * W)."""

    batches: I32
    in_h: I32
    in_w: I32
    channels: I32
    input_zero_point: I32
    output_zero_point: I32
    mult: I32
    shift: I32


KERNEL = Kernel("nl_mean", MeanParams)


@register("MEAN", max_version=2)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """The multiplier exactly as TFLite's QuantizedMeanOrSum builds it (see the comment below)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    axes = sorted(int(a) % len(inp.shape) for a in constant(graph, op, 1, "axis").reshape(-1))
    if len(inp.shape) != 4 or axes != [1, 2]:
        raise UnsupportedOp(f"MEAN over axes {axes} of a {len(inp.shape)}-D tensor (only H,W of 4-D)")
    b, h, w, c = inp.shape
    if out.size != b * c:  # keep_dims or not (Keras' GlobalAveragePooling2D drops them): the same values
        raise UnsupportedOp(f"MEAN of {list(inp.shape)} over H,W into {list(out.shape)}")
    # TFLite's QuantizedMeanOrSum: the in/out multiplier absorbs 1/(H*W) by an integer division
    # after a left shift of floor(log2(H*W)) (capped), not by requantising the float ratio.
    m0, s0 = quantize_multiplier(inp.scale / out.scale)
    count = h * w
    left = min(count.bit_length() - 1, 32, 31 + s0)
    params = MeanParams(batches=b, in_h=h, in_w=w, channels=c, input_zero_point=inp.zero_point,
                        output_zero_point=out.zero_point, mult=(m0 << left) // count, shift=s0 - left)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
