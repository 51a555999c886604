"""Prepare-time helpers shared by several op units: tensor checks, shapes padded to NL_MAX_DIMS,
strides, SAME padding, and the parameters every broadcasting binary op and every op with int8
weights needs."""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware.aot.ops.unit import UnsupportedOp
from firmware.aot.quant import activation_range
from nlpool.core.fixedpoint import quantize_multiplier
from nlpool.core.tflite import Operator, Tensor, TfliteModel

MAX_DIMS = 6  # NL_MAX_DIMS in nlpool_odometer.h


def tensors(graph: TfliteModel, indices: list[int]) -> list[Tensor]:
    """The tensors at `indices` (an op's inputs or outputs)."""
    return [graph.tensors[i] for i in indices]


def require_int8(op: Operator, *checked: Tensor) -> None:
    """The kernels are int8 only: anything else is refused at generation time."""
    for t in checked:
        if t.dtype != "int8":
            raise UnsupportedOp(f"{op.name} on {t.dtype} tensor '{t.name}' (only int8)")
        if t.scales.size == 0:
            raise UnsupportedOp(f"{op.name} on int8 tensor '{t.name}' without quantisation parameters (only quantised int8)")


def constant(graph: TfliteModel, op: Operator, position: int, what: str) -> np.ndarray:
    """Input `position` of `op` as the array its buffer holds: weights, axes, paddings and permutations
    are read at generation time, so one computed at run time (or absent) is refused."""
    index = op.inputs[position] if position < len(op.inputs) else -1
    if index < 0:
        raise UnsupportedOp(f"{op.name} without its {what} (input {position})")
    data = graph.tensors[index].data
    if data is None:
        raise UnsupportedOp(f"{op.name} with a {what} computed at run time (tensor {index} '{graph.tensors[index].name}' "
                            "is not a constant)")
    return data


def pad_dims(shape: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """`shape` with leading 1s up to MAX_DIMS dimensions (what the generic kernels iterate over)."""
    if len(shape) > MAX_DIMS:
        raise UnsupportedOp(f"{len(shape)}-D tensor (at most {MAX_DIMS})")
    return (1,) * (MAX_DIMS - len(shape)) + tuple(int(d) for d in shape)


def row_major_strides(dims: list[int] | tuple[int, ...]) -> list[int]:
    """Element strides of a dense row-major tensor of shape `dims`."""
    out = [0] * len(dims)
    acc = 1
    for k in range(len(dims) - 1, -1, -1):
        out[k] = acc
        acc *= dims[k]
    return out


def broadcast_strides(in_shape: tuple[int, ...], out_dims: tuple[int, ...]) -> tuple[int, ...]:
    """Strides of an input read along the (padded) output dimensions: 0 where it is broadcast."""
    d = pad_dims(in_shape)
    s = row_major_strides(d)
    return tuple(0 if d[k] == 1 and out_dims[k] != 1 else s[k] for k in range(MAX_DIMS))


def same_pad(in_size: int, out_size: int, filt: int, stride: int, dil: int) -> int:
    """Leading padding TFLite's Prepare computes (0 for VALID, whose output leaves no gap)."""
    eff = (filt - 1) * dil + 1
    return max(0, (out_size - 1) * stride + eff - in_size) // 2


def window_fields(o: Any, shapes: tuple[int, int, int, int, int, int]) -> dict[str, int]:
    """Stride, dilation and SAME/VALID padding of a conv-like op: (in_h, in_w, out_h, out_w, filter_h, filter_w)."""
    ih, iw, oh, ow, fh, fw = shapes
    return dict(filter_h=fh, filter_w=fw, stride_h=o.strideH, stride_w=o.strideW,
                dil_h=o.dilationHFactor, dil_w=o.dilationWFactor,
                pad_h=same_pad(ih, oh, fh, o.strideH, o.dilationHFactor),
                pad_w=same_pad(iw, ow, fw, o.strideW, o.dilationWFactor))


def broadcast_fields(op: Operator, a: Tensor, b: Tensor, out: Tensor) -> dict[str, Any]:
    """What every broadcasting binary op needs: the padded output shape, each input's strides in it
    (0 along broadcast dimensions), the three offsets and the fused activation's clamp."""
    dims = pad_dims(out.shape)
    lo, hi = activation_range(op.options.fusedActivationFunction, out.scale, out.zero_point)
    return dict(out_dims=dims, in1_strides=broadcast_strides(a.shape, dims), in2_strides=broadcast_strides(b.shape, dims),
                in1_offset=-a.zero_point, in2_offset=-b.zero_point, output_offset=out.zero_point, act_min=lo, act_max=hi)


def weighted_fields(graph: TfliteModel, op: Operator, channels: int) -> dict[str, Any]:
    """What every op with int8 weights needs: offsets, the fused activation's clamp, weights, bias and
    the per-channel (or per-tensor, `channels` = 1) requantisation."""
    inp, filt = tensors(graph, op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    scales = filt.scales if filt.scales.size == channels else np.full(channels, filt.scale)
    mults, shifts = zip(*(quantize_multiplier(float(inp.scale) * float(s) / float(out.scale)) for s in scales),
                        strict=True)
    lo, hi = activation_range(op.options.fusedActivationFunction, out.scale, out.zero_point)
    return dict(input_offset=-inp.zero_point, output_offset=out.zero_point, act_min=lo, act_max=hi,
                filter=constant(graph, op, 1, "filter").reshape(-1), bias=_bias(graph, op),
                out_mult=np.asarray(mults), out_shift=np.asarray(shifts))


def _bias(graph: TfliteModel, op: Operator) -> np.ndarray | None:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = graph.tensors[op.inputs[2]]
        if b.data is None or b.dtype != "int32":
            raise UnsupportedOp("non-constant or non-int32 bias")
        return b.data.reshape(-1)
    return None
