"""One emitter per supported TFLite op: Prepare-time parameters in Python, one C call per op.

Each emitter reads the op's tensors and options, computes what TFLite's Prepare computes
(multipliers, shifts, padding, tables, index maps) and returns a C parameter initialiser plus the
call into the matching kernel file of firmware/kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from firmware.aot.quant import F32, activation_range, logistic_table, softmax_table
from nlpool.core.custom_ops import OP_NAME, CustomOptionsError, WeightedPoolParams
from nlpool.core.fixedpoint import quantize_multiplier, round_half_away
from nlpool.core.tflite import Operator, Tensor, TfliteModel

MAX_DIMS = 6


class UnsupportedOp(Exception):
    """An op (or an op configuration) the AOT runtime has no kernel for."""


class EmitContext(Protocol):
    """What emitters need from the generator: tensor addresses and constant arrays."""

    graph: TfliteModel

    def ptr(self, index: int, ctype: str = "int8_t") -> str:
        """C expression for the data pointer of tensor `index`."""

    def const(self, values: np.ndarray | list, ctype: str) -> str:
        """Registers a constant array, returns its C name."""


@dataclass
class Emitted:
    """C for one op: the kernel file it needs, a static parameter definition and the call."""

    kernel: str
    decl: str
    call: str


def _struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    body = ",\n".join(f"    .{k} = {_c_value(v)}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n{body}\n}};"


def _c_value(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_c_value(x) for x in v) + "}"
    if isinstance(v, float):
        return f"{float(np.float32(v))!r}f"
    return str(v)


def _t(ctx: EmitContext, i: int) -> Tensor:
    return ctx.graph.tensors[i]


def _pad6(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > MAX_DIMS:
        raise UnsupportedOp(f"{len(shape)}-D tensor (at most {MAX_DIMS})")
    return [1] * (MAX_DIMS - len(shape)) + list(shape)


def _strides(dims: list[int]) -> list[int]:
    out = [0] * len(dims)
    acc = 1
    for k in range(len(dims) - 1, -1, -1):
        out[k] = acc
        acc *= dims[k]
    return out


def _broadcast_strides(in_shape: tuple[int, ...], out6: list[int]) -> list[int]:
    d = _pad6(in_shape)
    s = _strides(d)
    return [0 if d[k] == 1 and out6[k] != 1 else s[k] for k in range(MAX_DIMS)]


def _same_pad(in_size: int, out_size: int, filt: int, stride: int, dil: int) -> int:
    eff = (filt - 1) * dil + 1
    return max(0, (out_size - 1) * stride + eff - in_size) // 2


def _per_channel(ctx: EmitContext, inp: Tensor, filt: Tensor, out: Tensor, n: int) -> tuple[str, str]:
    scales = filt.scales if filt.scales.size == n else np.full(n, filt.scale)
    mults, shifts = zip(*(quantize_multiplier(float(inp.scale) * float(s) / float(out.scale)) for s in scales), strict=True)
    return ctx.const(list(mults), "int32_t"), ctx.const(list(shifts), "int32_t")


def _bias(ctx: EmitContext, op: Operator) -> str:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = _t(ctx, op.inputs[2])
        if b.data is None or b.dtype != "int32":
            raise UnsupportedOp("non-constant or non-int32 bias")
        return ctx.const(b.data.reshape(-1), "int32_t")
    return "NULL"


def _require_int8(op: Operator, *tensors: Tensor) -> None:
    for t in tensors:
        if t.dtype != "int8":
            raise UnsupportedOp(f"{op.name} on {t.dtype} tensor '{t.name}' (only int8)")


def _window_fields(o: Any, shapes: tuple[int, int, int, int, int, int]) -> dict[str, int]:
    """Stride, dilation and SAME/VALID padding of a conv-like op: (in_h, in_w, out_h, out_w, filter_h, filter_w)."""
    ih, iw, oh, ow, fh, fw = shapes
    return dict(filter_h=fh, filter_w=fw, stride_h=o.strideH, stride_w=o.strideW,
                dil_h=o.dilationHFactor, dil_w=o.dilationWFactor,
                pad_h=_same_pad(ih, oh, fh, o.strideH, o.dilationHFactor),
                pad_w=_same_pad(iw, ow, fw, o.strideW, o.dilationWFactor))


def _weighted_fields(ctx: EmitContext, op: Operator, inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> dict[str, object]:
    """What every op with int8 weights needs: offsets, the fused activation's clamp, weights, bias and
    the per-channel (or per-tensor, `channels` = 1) requantisation."""
    mult, shift = _per_channel(ctx, inp, filt, out, channels)
    lo, hi = activation_range(op.options.fusedActivationFunction, out.scale, out.zero_point)
    return dict(input_offset=-inp.zero_point, output_offset=out.zero_point, act_min=lo, act_max=hi,
                filter=ctx.const(filt.data.reshape(-1), "int8_t"), bias=_bias(ctx, op),
                out_mult=mult, out_shift=shift)


def conv_2d(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, filt, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, filt, out)
    o = op.options
    b, ih, iw, ic = inp.shape
    _, oh, ow, oc = out.shape
    _, fh, fw, fc = filt.shape
    if fc != ic:
        raise UnsupportedOp("grouped CONV_2D")
    fields = dict(batches=b, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc,
                  **_window_fields(o, (ih, iw, oh, ow, fh, fw)), **_weighted_fields(ctx, op, inp, filt, out, oc),
                  filter_sums=ctx.const(filt.data.reshape(oc, -1).astype(np.int64).sum(axis=1), "int32_t"))
    return Emitted("conv2d", _struct("nl_conv2d_params_t", name, fields),
                   f"nl_conv2d(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def depthwise_conv_2d(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, filt, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, filt, out)
    o = op.options
    b, ih, iw, ic = inp.shape
    _, oh, ow, oc = out.shape
    _, fh, fw, _ = filt.shape
    fields = dict(batches=b, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, depth_mult=oc // ic,
                  **_window_fields(o, (ih, iw, oh, ow, fh, fw)), **_weighted_fields(ctx, op, inp, filt, out, oc))
    return Emitted("depthwise_conv2d", _struct("nl_depthwise_conv2d_params_t", name, fields),
                   f"nl_depthwise_conv2d(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def fully_connected(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, filt, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, filt, out)
    if filt.data is None:
        raise UnsupportedOp("FULLY_CONNECTED with non-constant weights")
    depth_out, depth = filt.shape
    per_channel = filt.scales.size > 1
    fields = dict(batches=inp.size // depth, accum_depth=depth, out_depth=depth_out,
                  per_channel=int(per_channel), filter_offset=-filt.zero_point,
                  **_weighted_fields(ctx, op, inp, filt, out, depth_out if per_channel else 1))
    return Emitted("fully_connected", _struct("nl_fully_connected_params_t", name, fields),
                   f"nl_fully_connected(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def add(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    a, b, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, a, b, out)
    left_shift = 20
    twice_max = 2.0 * max(a.scale, b.scale)
    m1, s1 = quantize_multiplier(a.scale / twice_max)
    m2, s2 = quantize_multiplier(b.scale / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * out.scale))
    lo, hi = activation_range(op.options.fusedActivationFunction, out.scale, out.zero_point)
    out6 = _pad6(out.shape)
    fields = dict(out_dims=out6, in1_strides=_broadcast_strides(a.shape, out6),
                  in2_strides=_broadcast_strides(b.shape, out6), in1_offset=-a.zero_point,
                  in2_offset=-b.zero_point, output_offset=out.zero_point, left_shift=left_shift,
                  in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so,
                  act_min=lo, act_max=hi)
    return Emitted("add", _struct("nl_add_params_t", name, fields),
                   f"nl_add(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, "
                   f"{ctx.ptr(op.outputs[0])});")


def mul(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    a, b, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, a, b, out)
    mo, so = quantize_multiplier(a.scale * b.scale / out.scale)
    lo, hi = activation_range(op.options.fusedActivationFunction, out.scale, out.zero_point)
    out6 = _pad6(out.shape)
    fields = dict(out_dims=out6, in1_strides=_broadcast_strides(a.shape, out6),
                  in2_strides=_broadcast_strides(b.shape, out6), in1_offset=-a.zero_point,
                  in2_offset=-b.zero_point, output_offset=out.zero_point, out_mult=mo, out_shift=so,
                  act_min=lo, act_max=hi)
    return Emitted("mul", _struct("nl_mul_params_t", name, fields),
                   f"nl_mul(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, "
                   f"{ctx.ptr(op.outputs[0])});")


def _pool(ctx: EmitContext, op: Operator, name: str, fn: str, kernel: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    o = op.options
    b, ih, iw, c = inp.shape
    _, oh, ow, _ = out.shape
    lo, hi = activation_range(o.fusedActivationFunction, out.scale, out.zero_point)
    fields = dict(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                  filter_h=o.filterHeight, filter_w=o.filterWidth, stride_h=o.strideH,
                  stride_w=o.strideW, pad_h=_same_pad(ih, oh, o.filterHeight, o.strideH, 1),
                  pad_w=_same_pad(iw, ow, o.filterWidth, o.strideW, 1), act_min=lo, act_max=hi)
    return Emitted(kernel, _struct("nl_pool_params_t", name, fields),
                   f"{fn}(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def average_pool_2d(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    return _pool(ctx, op, name, "nl_avg_pool2d", "avg_pool2d")


def max_pool_2d(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    return _pool(ctx, op, name, "nl_max_pool2d", "max_pool2d")


def softmax(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    depth = inp.shape[-1]
    table = ctx.const(softmax_table(inp.scale, op.options.beta), "float")
    fields = dict(rows=inp.size // depth, depth=depth, output_zero_point=out.zero_point,
                  output_scale=float(out.scale), table=table)
    return Emitted("softmax", _struct("nl_softmax_params_t", name, fields),
                   f"nl_softmax(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def logistic(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    table = logistic_table(inp.scale, inp.zero_point, out.scale, out.zero_point)
    fields = dict(size=inp.size, table=ctx.const(table, "int8_t"))
    return Emitted("logistic", _struct("nl_lut_params_t", name, fields),
                   f"nl_logistic(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def mean(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, axis, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    axes = sorted(int(a) % len(inp.shape) for a in axis.data.reshape(-1))
    if len(inp.shape) != 4 or axes != [1, 2] or not op.options.keepDims:
        raise UnsupportedOp(f"MEAN over axes {axes} of a {len(inp.shape)}-D tensor "
                            "(only H,W of 4-D with keep_dims)")
    b, h, w, c = inp.shape
    # TFLite's QuantizedMeanOrSum: the in/out multiplier absorbs 1/(H*W) by an integer division
    # after a left shift of floor(log2(H*W)) (capped), not by requantising the float ratio.
    m0, s0 = quantize_multiplier(inp.scale / out.scale)
    count = h * w
    left = min(count.bit_length() - 1, 32, 31 + s0)
    m, s = (m0 << left) // count, s0 - left
    fields = dict(batches=b, in_h=h, in_w=w, channels=c, input_zero_point=inp.zero_point,
                  output_zero_point=out.zero_point, mult=m, shift=s)
    return Emitted("mean", _struct("nl_mean_params_t", name, fields),
                   f"nl_mean(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def _reshape_like(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp = _t(ctx, op.inputs[0])
    return Emitted("reshape", "", f"nl_reshape({inp.nbytes}, {ctx.ptr(op.inputs[0])}, "
                                  f"{ctx.ptr(op.outputs[0])});")


def transpose(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, perm, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    rank = len(inp.shape)
    in_strides = _strides(list(inp.shape))
    lead = MAX_DIMS - rank
    strides = [0] * lead + [in_strides[int(p)] for p in perm.data.reshape(-1)]
    fields = dict(out_dims=_pad6(out.shape), in_strides=strides, base=0)
    return Emitted("transpose", _struct("nl_gather_params_t", name, fields),
                   f"nl_transpose(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def strided_slice(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    o = op.options
    if o.ellipsisMask or o.newAxisMask:
        raise UnsupportedOp("STRIDED_SLICE with ellipsis or new-axis masks")
    begin, end, step = (_t(ctx, op.inputs[k]).data.reshape(-1).tolist() for k in (1, 2, 3))
    dims = list(inp.shape)
    in_strides = _strides(dims)
    base, lengths, strides = 0, [], []
    for k, dim in enumerate(dims):
        st = int(step[k]) if k < len(step) else 1
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
    if int(np.prod(lengths)) != out.size:
        raise UnsupportedOp(f"STRIDED_SLICE resolved to {lengths}, output is {list(out.shape)}")
    lead = MAX_DIMS - len(dims)
    fields = dict(out_dims=[1] * lead + lengths, in_strides=[0] * lead + strides, base=base)
    return Emitted("strided_slice", _struct("nl_gather_params_t", name, fields),
                   f"nl_strided_slice(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def concatenation(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    out = _t(ctx, op.outputs[0])
    ins = [_t(ctx, i) for i in op.inputs]
    _require_int8(op, out, *ins)
    for t in ins:
        if t.scale != out.scale or t.zero_point != out.zero_point:
            raise UnsupportedOp("CONCATENATION with inputs quantised differently from the output")
    if op.options.fusedActivationFunction:
        raise UnsupportedOp("CONCATENATION with a fused activation")
    axis = op.options.axis % len(out.shape)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = int(np.prod(out.shape[axis + 1:], dtype=np.int64))
    sizes = ctx.const([t.shape[axis] for t in ins], "int32_t")
    ptrs = ", ".join(ctx.ptr(i) for i in op.inputs)
    fields = dict(num_inputs=len(ins), outer=outer, inner=inner, axis_sizes=sizes)
    call = (f"{{ const int8_t *const ins[] = {{{ptrs}}}; "
            f"nl_concatenation(&{name}, ins, {ctx.ptr(op.outputs[0])}); }}")
    return Emitted("concatenation", _struct("nl_concat_params_t", name, fields), call)


def pad(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, pads, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    value = out.zero_point
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(_t(ctx, op.inputs[2]).data.reshape(-1)[0])
    before = [int(p) for p in pads.data.reshape(-1, 2)[:, 0]]
    lead = MAX_DIMS - len(inp.shape)
    fields = dict(out_dims=_pad6(out.shape), in_dims=_pad6(inp.shape), before=[0] * lead + before,
                  pad_value=value)
    return Emitted("pad", _struct("nl_pad_params_t", name, fields),
                   f"nl_pad(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def batch_matmul(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    lhs, rhs, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, lhs, rhs, out)
    adj_x, adj_y = bool(op.options.adjX), bool(op.options.adjY)
    lr, lc = lhs.shape[-2:]
    rr, rc = rhs.shape[-2:]
    rows, depth = (lc, lr) if adj_x else (lr, lc)
    cols = rr if adj_y else rc
    lb = int(np.prod(lhs.shape[:-2], dtype=np.int64))
    rb = int(np.prod(rhs.shape[:-2], dtype=np.int64))
    batches = max(lb, rb)
    if (lb != rb and min(lb, rb) != 1) or (lb == rb and lhs.shape[:-2] != rhs.shape[:-2]
                                           and len(lhs.shape) == len(rhs.shape)):
        raise UnsupportedOp("BATCH_MATMUL with partial batch broadcasting")
    mo, so = quantize_multiplier(lhs.scale * rhs.scale / out.scale)
    fields = dict(batches=batches, rows=rows, cols=cols, depth=depth,
                  lhs_batch_stride=0 if lb == 1 else lr * lc,
                  lhs_row_stride=1 if adj_x else lc, lhs_depth_stride=lc if adj_x else 1,
                  rhs_batch_stride=0 if rb == 1 else rr * rc,
                  rhs_depth_stride=1 if adj_y else rc, rhs_col_stride=rc if adj_y else 1,
                  lhs_offset=-lhs.zero_point, rhs_offset=-rhs.zero_point,
                  output_offset=out.zero_point, out_mult=mo, out_shift=so, act_min=-128, act_max=127)
    return Emitted("batch_matmul", _struct("nl_batch_matmul_params_t", name, fields),
                   f"nl_batch_matmul(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, "
                   f"{ctx.ptr(op.outputs[0])});")


def _resize_scale(in_size: int, out_size: int, align: bool) -> np.float32:
    if align and out_size > 1:
        return F32(in_size - 1) / F32(out_size - 1)
    return F32(in_size) / F32(out_size)


def resize_nearest_neighbor(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    align, half = bool(op.options.alignCorners), bool(op.options.halfPixelCenters)
    b, ih, iw, c = inp.shape
    _, oh, ow, _ = out.shape

    def index_map(in_size: int, out_size: int) -> list[int]:
        scale = _resize_scale(in_size, out_size, align)
        offset = F32(0.5) if half else F32(0.0)
        res = []
        for v in range(out_size):
            x = (F32(v) + offset) * scale
            idx = round_half_away(float(x)) if align else int(np.floor(x))
            idx = min(idx, in_size - 1)
            res.append(max(0, idx) if half else idx)
        return res

    fields = dict(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                  y_map=ctx.const(index_map(ih, oh), "int32_t"),
                  x_map=ctx.const(index_map(iw, ow), "int32_t"))
    return Emitted("resize_nearest_neighbor", _struct("nl_resize_nearest_params_t", name, fields),
                   f"nl_resize_nearest_neighbor(&{name}, {ctx.ptr(op.inputs[0])}, "
                   f"{ctx.ptr(op.outputs[0])});")


def resize_bilinear(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    align, half = bool(op.options.alignCorners), bool(op.options.halfPixelCenters)
    b, ih, iw, c = inp.shape
    _, oh, ow, _ = out.shape

    def coords(in_size: int, out_size: int) -> tuple[list[int], list[int], list[int]]:
        scale_10 = round_half_away(float(_resize_scale(in_size, out_size, align) * F32(1 << 10)))
        scaled, lo, hi = [], [], []
        for v in range(out_size):
            s = v * scale_10 + scale_10 // 2 - (1 << 9) if half else v * scale_10
            scaled.append(s)
            lo.append(max(int(s / (1 << 10)), 0))
            hi.append(min(int((s + (1 << 10) - 1) / (1 << 10)), in_size - 1))
        return scaled, lo, hi

    ys, yl, yh = coords(ih, oh)
    xs, xl, xh = coords(iw, ow)
    fields = dict(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                  y_scaled=ctx.const(ys, "int32_t"), y_lo=ctx.const(yl, "int32_t"),
                  y_hi=ctx.const(yh, "int32_t"), x_scaled=ctx.const(xs, "int32_t"),
                  x_lo=ctx.const(xl, "int32_t"), x_hi=ctx.const(xh, "int32_t"))
    return Emitted("resize_bilinear", _struct("nl_resize_bilinear_params_t", name, fields),
                   f"nl_resize_bilinear(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def quantize(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    if inp.dtype == "float32" and out.dtype == "int8":
        fields = dict(size=inp.size, zero_point=out.zero_point, scale=float(out.scale))
        return Emitted("quantize", _struct("nl_affine_params_t", name, fields),
                       f"nl_quantize_f32(&{name}, {ctx.ptr(op.inputs[0], 'float')}, "
                       f"{ctx.ptr(op.outputs[0])});")
    _require_int8(op, inp, out)
    m, s = quantize_multiplier(inp.scale / out.scale)
    fields = dict(size=inp.size, input_zero_point=inp.zero_point, output_zero_point=out.zero_point,
                  mult=m, shift=s)
    return Emitted("quantize", _struct("nl_requantize_params_t", name, fields),
                   f"nl_requantize(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def _relu(ctx: EmitContext, op: Operator, name: str, activation: int) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    _require_int8(op, inp, out)
    m, s = quantize_multiplier(inp.scale / out.scale)
    lo, hi = activation_range(activation, out.scale, out.zero_point)
    fields = dict(size=inp.size, input_zero_point=inp.zero_point, output_zero_point=out.zero_point,
                  mult=m, shift=s, act_min=lo, act_max=hi)
    return Emitted("relu", _struct("nl_relu_params_t", name, fields),
                   f"nl_relu(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])});")


def relu(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    return _relu(ctx, op, name, 1)


def relu6(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    return _relu(ctx, op, name, 3)


def dequantize(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    inp, out = _t(ctx, op.inputs[0]), _t(ctx, op.outputs[0])
    if inp.dtype != "int8" or out.dtype != "float32":
        raise UnsupportedOp(f"DEQUANTIZE {inp.dtype} -> {out.dtype}")
    fields = dict(size=inp.size, zero_point=inp.zero_point, scale=float(inp.scale))
    return Emitted("quantize", _struct("nl_affine_params_t", name, fields),
                   f"nl_dequantize(&{name}, {ctx.ptr(op.inputs[0])}, "
                   f"{ctx.ptr(op.outputs[0], 'float')});")


def weighted_pool(ctx: EmitContext, op: Operator, name: str) -> Emitted:
    x, r, out = _t(ctx, op.inputs[0]), _t(ctx, op.inputs[1]), _t(ctx, op.outputs[0])
    _require_int8(op, x, r, out)
    try:
        params = WeightedPoolParams.from_flexbuffer(op.custom_options)
    except CustomOptionsError as exc:
        raise UnsupportedOp(str(exc)) from None
    for key, t in (("x_zero_point", x), ("r_zero_point", r), ("out_zero_point", out)):
        if getattr(params, key) != t.zero_point:
            raise UnsupportedOp(f"{OP_NAME} option {key}={getattr(params, key)} differs from "
                                f"tensor zero point {t.zero_point}")
    b, ih, iw, c = x.shape
    _, oh, ow, _ = out.shape
    fields = dict(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                  filter_h=params.filter_h, filter_w=params.filter_w,
                  stride_h=params.stride_h, stride_w=params.stride_w,
                  x_zero_point=x.zero_point, out_zero_point=out.zero_point,
                  out_multiplier=params.out_multiplier, out_shift=params.out_shift,
                  table=ctx.const(list(params.table), "int32_t"))
    return Emitted("nlpool_weighted_pool", _struct("nlpool_weighted_pool_params_t", name, fields),
                   f"nlpool_weighted_pool(&{name}, {ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, "
                   f"{ctx.ptr(op.outputs[0])});")


EMITTERS: dict[str, Callable[[EmitContext, Operator, str], Emitted]] = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "MUL": mul,
    "AVERAGE_POOL_2D": average_pool_2d,
    "MAX_POOL_2D": max_pool_2d,
    "SOFTMAX": softmax,
    "LOGISTIC": logistic,
    "MEAN": mean,
    "RESHAPE": _reshape_like,
    "SQUEEZE": _reshape_like,
    "EXPAND_DIMS": _reshape_like,
    "TRANSPOSE": transpose,
    "STRIDED_SLICE": strided_slice,
    "CONCATENATION": concatenation,
    "PAD": pad,
    "PADV2": pad,
    "BATCH_MATMUL": batch_matmul,
    "RESIZE_NEAREST_NEIGHBOR": resize_nearest_neighbor,
    "RESIZE_BILINEAR": resize_bilinear,
    "QUANTIZE": quantize,
    "RELU": relu,
    "RELU6": relu6,
    "DEQUANTIZE": dequantize,
    OP_NAME: weighted_pool,
}
