"""TRANSPOSE, STRIDED_SLICE and SLICE as one strided gather (kernels/gather.c).

Both only move bytes: out[i] = in[base + sum_k i_k * in_strides[k]] over the output's index space.
Prepare turns a permutation, or begin/end/stride with every mask, into `base` and `in_strides`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import MAX_DIMS, constant, pad_dims, require_int8, row_major_strides
from firmware.aot.ops.unit import I32, Dims, Kernel, Params, Prepared, UnsupportedOp, register
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class GatherParams(Params):
    """Strided gather: out[i] = in[base + sum_k i_k * in_strides[k]] (TRANSPOSE, STRIDED_SLICE, SLICE)."""

    out_dims: Dims
    in_strides: Dims
    base: I32


KERNEL = Kernel("nl_gather", GatherParams)


@register("TRANSPOSE", max_version=6)
def prepare_transpose(graph: TfliteModel, op: Operator) -> Prepared:
    """A permutation is the input's strides read in output order."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    in_strides = row_major_strides(inp.shape)
    lead = MAX_DIMS - len(inp.shape)
    strides = (0,) * lead + tuple(in_strides[int(p)] for p in constant(graph, op, 1, "permutation").reshape(-1))
    params = GatherParams(out_dims=pad_dims(out.shape), in_strides=strides, base=0)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))


@register("STRIDED_SLICE", max_version=4)
def prepare_strided_slice(graph: TfliteModel, op: Operator) -> Prepared:
    """begin/end/stride and the begin, end and shrink masks resolved as TFLite's Prepare resolves
    them: a start offset and per-dimension input strides (negative for reversed slices)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    params = strided_slice_gather(graph, op)
    if int(np.prod(params.out_dims)) != out.size:
        raise UnsupportedOp(f"STRIDED_SLICE resolved to {list(params.out_dims)}, output is {list(out.shape)}")
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))


def strided_slice_gather(graph: TfliteModel, op: Operator) -> GatherParams:
    """A STRIDED_SLICE as the gather that does it: TFLite's resolution of begin, end and stride
    under the masks, for any element type (shape arithmetic on int32 is folded with it too)."""
    o = op.options
    if o.ellipsisMask or o.newAxisMask:
        raise UnsupportedOp("STRIDED_SLICE with ellipsis or new-axis masks")
    begin, end, step = (constant(graph, op, k, what).reshape(-1).tolist() for k, what in ((1, "begin"), (2, "end"), (3, "strides")))
    dims = list(graph.tensors[op.inputs[0]].shape)
    in_strides = row_major_strides(dims)
    base, lengths, strides = 0, [], []
    for k, dim in enumerate(dims):
        st = int(step[k]) if k < len(step) else 1
        if st == 0:
            raise UnsupportedOp("STRIDED_SLICE with a stride of 0")
        lo, hi = (0, dim) if st > 0 else (-1, dim - 1)
        start = int(begin[k]) if k < len(begin) else 0
        if o.beginMask >> k & 1 or k >= len(begin):
            start = lo if st > 0 else hi
        else:
            start = start + dim if start < 0 else start
            start = min(max(start, lo), hi)
        if o.shrinkAxisMask >> k & 1:
            stop, st = start + 1, 1
        else:
            stop = int(end[k]) if k < len(end) else dim
            if getattr(o, "offset", False):
                stop = start + stop
            elif o.endMask >> k & 1 or k >= len(end):
                stop = hi if st > 0 else lo
            else:
                stop = stop + dim if stop < 0 else stop
            stop = min(max(stop, lo), hi)
        n = max(0, -(-(stop - start) // st)) if st > 0 else max(0, -(-(start - stop) // -st))
        base += start * in_strides[k]
        lengths.append(n)
        strides.append(st * in_strides[k])
    lead = MAX_DIMS - len(dims)
    return GatherParams(out_dims=(1,) * lead + tuple(lengths), in_strides=(0,) * lead + tuple(strides), base=base)


@register("SLICE", max_version=5)
def prepare_slice(graph: TfliteModel, op: Operator) -> Prepared:
    """begin and size (size -1: to the end) as TFLite's Prepare resolves them: the converter writes
    unit-step slices as SLICE."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    begin, size = (constant(graph, op, k, what).reshape(-1).tolist() for k, what in ((1, "begin"), (2, "size")))
    dims = list(inp.shape)
    if len(begin) != len(dims) or len(size) != len(dims):
        raise UnsupportedOp(f"SLICE of a {len(dims)}-D tensor with {len(begin)} begins and {len(size)} sizes")
    lengths = [dim - int(b) if int(n) == -1 else int(n) for dim, b, n in zip(dims, begin, size, strict=True)]
    if any(int(b) < 0 or n < 0 or int(b) + n > dim for dim, b, n in zip(dims, begin, lengths, strict=True)):
        raise UnsupportedOp(f"SLICE begin {begin} size {size} outside the input {dims}")
    if lengths != list(out.shape):
        raise UnsupportedOp(f"SLICE resolved to {lengths}, output is {list(out.shape)}")
    in_strides = row_major_strides(dims)
    lead = MAX_DIMS - len(dims)
    params = GatherParams(out_dims=(1,) * lead + tuple(lengths), in_strides=(0,) * lead + tuple(in_strides),
                          base=sum(int(b) * st for b, st in zip(begin, in_strides, strict=True)))
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]))
