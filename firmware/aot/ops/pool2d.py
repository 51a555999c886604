"""AVERAGE_POOL_2D and MAX_POOL_2D (kernels/avg_pool2d.c, kernels/max_pool2d.c): one parameter
struct, one kernel each."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8, same_pad
from firmware.aot.ops.unit import I32, IN, OUT, SCRATCH, Kernel, Params, Prepared, register
from firmware.aot.quant import activation_range
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class PoolParams(Params):
    """AVERAGE_POOL_2D and MAX_POOL_2D (same quantisation in and out)."""

    batches: I32
    in_h: I32
    in_w: I32
    channels: I32
    out_h: I32
    out_w: I32
    filter_h: I32
    filter_w: I32
    stride_h: I32
    stride_w: I32
    pad_h: I32
    pad_w: I32
    act_min: I32
    act_max: I32


AVERAGE = Kernel("nl_avg_pool2d", PoolParams)
MAX = Kernel("nl_max_pool2d", PoolParams)
CMSIS_NN_AVERAGE = Kernel("nl_cmsis_avg_pool2d", PoolParams, (IN, OUT, SCRATCH))
CMSIS_NN_MAX = Kernel("nl_cmsis_max_pool2d", PoolParams)


def _params(graph: TfliteModel, op: Operator) -> PoolParams:
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    o = op.options
    b, ih, iw, c = inp.shape
    _, oh, ow, _ = out.shape
    lo, hi = activation_range(o.fusedActivationFunction, out.scale, out.zero_point)
    return PoolParams(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                      filter_h=o.filterHeight, filter_w=o.filterWidth, stride_h=o.strideH,
                      stride_w=o.strideW, pad_h=same_pad(ih, oh, o.filterHeight, o.strideH, 1),
                      pad_w=same_pad(iw, ow, o.filterWidth, o.strideW, 1), act_min=lo, act_max=hi)


@register("AVERAGE_POOL_2D", max_version=2)
def prepare_average(graph: TfliteModel, op: Operator) -> Prepared:
    """Window and padding; the kernel divides by the in-bounds part of each window."""
    return Prepared(AVERAGE, _params(graph, op), (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN_AVERAGE)


@register("MAX_POOL_2D", max_version=2)
def prepare_max(graph: TfliteModel, op: Operator) -> Prepared:
    """Window and padding; padded positions never win."""
    return Prepared(MAX, _params(graph, op), (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN_MAX)
