"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (kernels/resize_nearest_neighbor.c,
kernels/resize_bilinear.c): every source coordinate is computed at generation time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import I32, I32Array, Kernel, Params, Prepared, register
from firmware.aot.quant import F32
from nlpool.core.fixedpoint import round_half_away
from nlpool.core.tflite import Operator, TfliteModel


@dataclass(frozen=True)
class ResizeNearestParams(Params):
    """RESIZE_NEAREST_NEIGHBOR: the source row/column of every output row/column is precomputed."""

    batches: I32
    in_h: I32
    in_w: I32
    channels: I32
    out_h: I32
    out_w: I32
    y_map: I32Array
    x_map: I32Array


@dataclass(frozen=True)
class ResizeBilinearParams(Params):
    """RESIZE_BILINEAR, TFLite's 10-bit integer interpolation; coordinates precomputed
    (y_scaled: per output row, y * scale in Q10)."""

    batches: I32
    in_h: I32
    in_w: I32
    channels: I32
    out_h: I32
    out_w: I32
    y_scaled: I32Array
    y_lo: I32Array
    y_hi: I32Array
    x_scaled: I32Array
    x_lo: I32Array
    x_hi: I32Array


NEAREST = Kernel("nl_resize_nearest_neighbor", ResizeNearestParams)
BILINEAR = Kernel("nl_resize_bilinear", ResizeBilinearParams)


def _scale(in_size: int, out_size: int, align: bool) -> np.float32:
    """TFLite's float32 resize scale (align_corners maps corner to corner)."""
    if align and out_size > 1:
        return F32(in_size - 1) / F32(out_size - 1)
    return F32(in_size) / F32(out_size)


def _resize_geometry(graph: TfliteModel, op: Operator) -> tuple[bool, bool, tuple[int, ...], tuple[int, int]]:
    """align_corners, half_pixel_centers, the input's (batches, h, w, channels) and the output's (h, w)."""
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, inp, out)
    _, oh, ow, _ = out.shape
    return bool(op.options.alignCorners), bool(op.options.halfPixelCenters), inp.shape, (oh, ow)


@register("RESIZE_NEAREST_NEIGHBOR", max_version=3)
def prepare_nearest(graph: TfliteModel, op: Operator) -> Prepared:
    """Source index per output row and column, in float32 as the interpreter computes it."""
    align, half, (b, ih, iw, c), (oh, ow) = _resize_geometry(graph, op)

    def index_map(in_size: int, out_size: int) -> np.ndarray:
        scale = _scale(in_size, out_size, align)
        offset = F32(0.5) if half else F32(0.0)
        res = []
        for v in range(out_size):
            x = (F32(v) + offset) * scale
            idx = round_half_away(float(x)) if align else int(np.floor(x))
            idx = min(idx, in_size - 1)
            res.append(max(0, idx) if half else idx)
        return np.asarray(res)

    params = ResizeNearestParams(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                                 y_map=index_map(ih, oh), x_map=index_map(iw, ow))
    return Prepared(NEAREST, params, (op.inputs[0], op.outputs[0]))


@register("RESIZE_BILINEAR", max_version=3)
def prepare_bilinear(graph: TfliteModel, op: Operator) -> Prepared:
    """Q10 source coordinate and its two neighbours per output row and column."""
    align, half, (b, ih, iw, c), (oh, ow) = _resize_geometry(graph, op)

    def coords(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale_10 = round_half_away(float(_scale(in_size, out_size, align) * F32(1 << 10)))
        scaled, lo, hi = [], [], []
        for v in range(out_size):
            s = v * scale_10 + scale_10 // 2 - (1 << 9) if half else v * scale_10
            scaled.append(s)
            lo.append(max(int(s / (1 << 10)), 0))
            hi.append(min(int((s + (1 << 10) - 1) / (1 << 10)), in_size - 1))
        return np.asarray(scaled), np.asarray(lo), np.asarray(hi)

    ys, yl, yh = coords(ih, oh)
    xs, xl, xh = coords(iw, ow)
    params = ResizeBilinearParams(batches=b, in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow,
                                  y_scaled=ys, y_lo=yl, y_hi=yh, x_scaled=xs, x_lo=xl, x_hi=xh)
    return Prepared(BILINEAR, params, (op.inputs[0], op.outputs[0]))
