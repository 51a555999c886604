"""DEPTHWISE_CONV_2D, per-channel quantised (kernels/depthwise_conv2d.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8, tensors, weighted_fields, window_fields
from firmware.aot.ops.unit import I32, IN, OUT, SCRATCH, I8Array, I32Array, Kernel, OptionalI32Array, Params, Prepared, register
from nlpool.core.inplace import inplace_depthwise_scratch
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class DepthwiseConv2dParams(Params):
    """DEPTHWISE_CONV_2D, per-channel quantised. Filter is 1HWO with O = in_c * depth_mult."""

    batches: I32
    in_h: I32
    in_w: I32
    in_c: I32
    out_h: I32
    out_w: I32
    depth_mult: I32
    filter_h: I32
    filter_w: I32
    stride_h: I32
    stride_w: I32
    dil_h: I32
    dil_w: I32
    pad_h: I32
    pad_w: I32
    input_offset: I32
    output_offset: I32
    act_min: I32
    act_max: I32
    filter: I8Array
    bias: OptionalI32Array
    out_mult: I32Array
    out_shift: I32Array


KERNEL = Kernel("nl_depthwise_conv2d", DepthwiseConv2dParams)
CMSIS_NN = Kernel("nl_cmsis_depthwise_conv2d", DepthwiseConv2dParams, (IN, OUT, SCRATCH))
INPLACE = Kernel("nl_depthwise_conv2d_inplace", DepthwiseConv2dParams, (IN, OUT, SCRATCH))


@register("DEPTHWISE_CONV_2D", max_version=3)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Shapes, window and per-channel requantisation; the depth multiplier from the channel counts.
    Stride 1 with multiplier 1 (output shaped as the input) also has an in-place kernel, whose
    scratch is one channel's H x W plane."""
    inp, filt = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, inp, filt, out)
    b, ih, iw, ic = inp.shape
    _, oh, ow, oc = out.shape
    _, fh, fw, _ = filt.shape
    params = DepthwiseConv2dParams(batches=b, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, depth_mult=oc // ic,
                                   **window_fields(op.options, (ih, iw, oh, ow, fh, fw)),
                                   **weighted_fields(graph, op, oc))
    plane = inplace_depthwise_scratch((ih, iw), (oh, ow), (fh, fw), (op.options.strideH, op.options.strideW),
                                      (params.dil_h, params.dil_w), oc // ic)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN,
                    inplace=INPLACE if plane else None, inplace_scratch_bytes=plane)
