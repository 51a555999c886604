"""FULLY_CONNECTED with constant int8 weights (kernels/fully_connected.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8, tensors, weighted_fields
from firmware.aot.ops.unit import (
    I32,
    IN,
    OUT,
    SCRATCH,
    I8Array,
    I32Array,
    Kernel,
    MveI32Array,
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
    kernel_sums: MveI32Array  # CMSIS-NN's MVE kernel wants bias + in_off * sum_k (w + w_off) per output: computed here, once


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
    fields = weighted_fields(graph, op, depth_out if per_channel else 1)
    sums = kernel_sums(fields["filter"].reshape(depth_out, depth), fields["bias"], fields["input_offset"], -filt.zero_point)
    params = FullyConnectedParams(batches=inp.size // depth, accum_depth=depth, out_depth=depth_out,
                                  per_channel=int(per_channel), filter_offset=-filt.zero_point, kernel_sums=sums, **fields)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), cmsis_nn=CMSIS_NN if filt.zero_point == 0 else None)


def kernel_sums(weights: np.ndarray, bias: np.ndarray | None, input_offset: int, filter_offset: int) -> np.ndarray:
    """Per output row: bias + input_offset * (sum of the row + depth * filter_offset), in int32 as the
    device adds (what CMSIS-NN's arm_vector_sum_s8 computes on every call; a constant of the layer)."""
    rows = np.asarray(weights, np.int64).reshape(weights.shape[0], -1)
    sums = input_offset * (rows.sum(axis=1) + rows.shape[1] * filter_offset) if input_offset else np.zeros(rows.shape[0], np.int64)
    total = sums + (np.asarray(bias, np.int64) if bias is not None else 0)
    return ((total + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
