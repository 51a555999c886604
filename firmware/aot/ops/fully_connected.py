"""FULLY_CONNECTED with constant int8 weights (kernels/fully_connected.c)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.aot.ops.common import require_int8, tensors, weighted_fields
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
    register,
)
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class FullyConnectedParams(Params):
    """FULLY_CONNECTED: out[b][o] = sum_k (in + in_off)(w + w_off); per_channel selects mult[o]."""

    batches: I32
    accum_depth: I32
    out_depth: I32
    per_channel: I32
    input_offset: I32
    filter_offset: I32
    output_offset: I32
    act_min: I32
    act_max: I32
    filter: I8Array
    bias: OptionalI32Array
    out_mult: I32Array
    out_shift: I32Array


KERNEL = Kernel("nl_fully_connected", FullyConnectedParams)
CMSIS_NN = Kernel("nl_cmsis_fully_connected", FullyConnectedParams, (IN, OUT, SCRATCH))


@register("FULLY_CONNECTED", max_version=6)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """Depths from the OI filter; one multiplier per output channel only for per-channel weights.
    CMSIS-NN takes symmetric (zero-point 0) weights, as TFLite's int8 scheme makes them."""
    inp, filt = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    require_int8(op, inp, filt, out)
    depth_out, depth = filt.shape
    per_channel = filt.scales.size > 1
    params = FullyConnectedParams(batches=inp.size // depth, accum_depth=depth, out_depth=depth_out,
                                  per_channel=int(per_channel), filter_offset=-filt.zero_point,
                                  **weighted_fields(graph, op, depth_out if per_channel else 1))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN if filt.zero_point == 0 else None)
