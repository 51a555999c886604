"""CONV_2D, per-channel quantised (kernels/conv2d.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import constant, require_int8, tensors, weighted_fields, window_fields
from firmware.aot.ops.unit import (
    I32,
    IN,
    OUT,
    SCRATCH,
    I8Array,
    I32Array,
    Kernel,
    OptionalI32Array,
    Params,
    Prepared,
    UnsupportedOp,
    register,
)
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class Conv2dParams(Params):
    """CONV_2D, per-channel quantised. Filter is OHWI, bias may be NULL, filter_sums[o] = sum of filter o."""

    batches: I32
    in_h: I32
    in_w: I32
    in_c: I32
    out_h: I32
    out_w: I32
    out_c: I32
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
    filter_sums: I32Array
    bias: OptionalI32Array
    out_mult: I32Array
    out_shift: I32Array


KERNEL = Kernel("nl_conv2d", Conv2dParams)
CMSIS_NN = Kernel("nl_cmsis_conv2d", Conv2dParams, (IN, OUT, SCRATCH))


@register("CONV_2D", max_version=3)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Shapes, window, per-channel requantisation and the filter sums (which fold the input offset)."""
    inp, filt = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, inp, filt, out)
    b, ih, iw, ic = inp.shape
    _, oh, ow, oc = out.shape
    _, fh, fw, fc = filt.shape
    if fc != ic:
        raise UnsupportedOp("grouped CONV_2D")
    params = Conv2dParams(batches=b, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc,
                          **window_fields(op.options, (ih, iw, oh, ow, fh, fw)),
                          **weighted_fields(graph, op, oc),
                          filter_sums=constant(graph, op, 1, "filter").reshape(oc, -1).astype(np.int64).sum(axis=1))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN)
