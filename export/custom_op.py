"""The NLPOOL_WEIGHTED_POOL custom operator's parameters and their FlexBuffer encoding.

docs/custom_op.md is the contract; this module is its single Python spelling, used by the fusion pass
(which writes the options), the golden model (which evaluates them) and tests (which read them back).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from flatbuffers import flexbuffers

from .fixedpoint import quantize_multiplier

OP_NAME = "NLPOOL_WEIGHTED_POOL"
TABLE_SHIFT = 14
# num = sum(w * (x - zx)) must fit int32: 44536 * 255 * K < 2^31 holds for windows up to 64 elements.
MAX_WINDOW_ELEMENTS = 64
# mean is Q16 with |mean| <= 255 * 2^16 < 2^24: the kernel's total shift (out_shift - 16) must keep
# `mean << left` inside int32 (left <= 7) and the rounding right shift within 31 bits.
MIN_OUT_SHIFT, MAX_OUT_SHIFT = -15, 23


def weight_table(r_scale: float, r_zero_point: int) -> np.ndarray:
    """table[q + 128] = round(exp(sigmoid(sr * (q - zr))) * 2^14) for every int8 q, as int32."""
    q = np.arange(-128, 128, dtype=np.float64)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * r_scale * (q - r_zero_point)))  # sigmoid without exp overflow
    return np.round(np.exp(sigmoid) * (1 << TABLE_SHIFT)).astype(np.int32)


@dataclass(frozen=True)
class WeightedPoolParams:
    """Everything the integer kernel needs; field names are the FlexBuffer keys."""

    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    x_zero_point: int
    r_zero_point: int
    out_zero_point: int
    out_multiplier: int
    out_shift: int
    table: tuple[int, ...]
    table_shift: int = TABLE_SHIFT

    @classmethod
    def from_quantization(
        cls, window: tuple[int, int], stride: tuple[int, int], x_qp: tuple[float, int], r_qp: tuple[float, int], y_qp: tuple[float, int]
    ) -> WeightedPoolParams:
        """Derive the options from the (scale, zero point) of x, r and y; ValueError if out of the op's range."""
        (sx, zx), (sr, zr), (sy, zy) = x_qp, r_qp, y_qp
        if window[0] * window[1] > MAX_WINDOW_ELEMENTS:
            raise ValueError(f"window {window[0]}x{window[1]} exceeds the op's {MAX_WINDOW_ELEMENTS} elements (int32 accumulator)")
        multiplier, shift = quantize_multiplier(sx / sy)
        if not MIN_OUT_SHIFT <= shift <= MAX_OUT_SHIFT:
            raise ValueError(f"output rescale sx/sy = {sx / sy:.3g} is outside the op's fixed-point range")
        return cls(
            filter_h=int(window[0]),
            filter_w=int(window[1]),
            stride_h=int(stride[0]),
            stride_w=int(stride[1]),
            x_zero_point=int(zx),
            r_zero_point=int(zr),
            out_zero_point=int(zy),
            out_multiplier=multiplier,
            out_shift=shift,
            table=tuple(int(v) for v in weight_table(sr, zr)),
        )

    def to_flexbuffer(self) -> bytes:
        data = asdict(self)
        data["table"] = list(self.table)
        return bytes(flexbuffers.Dumps(data))

    @classmethod
    def from_flexbuffer(cls, blob: bytes | bytearray | np.ndarray) -> WeightedPoolParams:
        data = flexbuffers.Loads(bytearray(bytes(blob)))
        data["table"] = tuple(int(v) for v in data["table"])
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
