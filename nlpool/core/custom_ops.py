"""The custom operators' contract: their names, options and FlexBuffer encoding, spelled once.

docs/custom_op.md is the contract in prose; this module is its single Python spelling. The fusion
pass writes the options, the golden model and both firmware generators read them back through
`WeightedPoolParams.from_flexbuffer`, which validates what it decodes: options written by anything
else (or corrupted on the way) are a one-line `CustomOptionsError`, not a KeyError in a generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from flatbuffers import flexbuffers

from .errors import NlpoolError
from .fixedpoint import quantize_multiplier

OP_NAME = "NLPOOL_WEIGHTED_POOL"
TABLE_SHIFT = 14
TABLE_SIZE = 256
# exp(sigmoid(v)) lies in [1, e]: Q14 table entries lie in [2^14, round(e * 2^14)].
TABLE_MIN, TABLE_MAX = 1 << TABLE_SHIFT, 44536
# num = sum(w * (x - zx)) must fit int32: 44536 * 255 * K < 2^31 holds for windows up to 64 elements.
MAX_WINDOW_ELEMENTS = 64
# mean is Q16 with |mean| <= 255 * 2^16 < 2^24: the kernel's total shift (out_shift - 16) must keep
# `mean << left` inside int32 (left <= 7) and the rounding right shift within 31 bits.
MIN_OUT_SHIFT, MAX_OUT_SHIFT = -15, 23


class CustomOptionsError(NlpoolError):
    """Custom-op options that do not follow the contract (written by another tool, or corrupted)."""


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
        """Decode and validate options; CustomOptionsError names the first bad field."""
        try:
            data = flexbuffers.Loads(bytearray(bytes(blob)))
        except Exception as err:  # the FlexBuffer reader raises whatever a bad offset leads to
            raise CustomOptionsError(f"{OP_NAME} options are not a valid FlexBuffer ({type(err).__name__})") from None
        if not isinstance(data, dict):
            raise CustomOptionsError(f"{OP_NAME} options are not a FlexBuffer map")
        missing = [key for key in cls.__dataclass_fields__ if key not in data]
        if missing:
            raise CustomOptionsError(f"{OP_NAME} options lack {', '.join(missing)}")
        table = data["table"]
        if not isinstance(table, list) or len(table) != TABLE_SIZE or not all(isinstance(v, int) for v in table):
            raise CustomOptionsError(f"{OP_NAME} option table must be {TABLE_SIZE} integers")
        scalars = {key: data[key] for key in cls.__dataclass_fields__ if key != "table"}
        bad = [key for key, value in scalars.items() if not isinstance(value, int) or isinstance(value, bool)]
        if bad:
            raise CustomOptionsError(f"{OP_NAME} option {bad[0]} must be an integer, got {scalars[bad[0]]!r}")
        params = cls(**scalars, table=tuple(table))
        params.check()
        return params

    def check(self) -> None:
        """The ranges docs/custom_op.md guarantees to a kernel (window, strides, zero points, table)."""
        if min(self.filter_h, self.filter_w, self.stride_h, self.stride_w) < 1:
            raise CustomOptionsError(f"{OP_NAME} window and strides must be >= 1")
        if self.filter_h * self.filter_w > MAX_WINDOW_ELEMENTS:
            raise CustomOptionsError(f"{OP_NAME} window {self.filter_h}x{self.filter_w} exceeds {MAX_WINDOW_ELEMENTS} elements")
        if not all(-128 <= z <= 127 for z in (self.x_zero_point, self.r_zero_point, self.out_zero_point)):
            raise CustomOptionsError(f"{OP_NAME} zero points must be int8")
        if self.table_shift != TABLE_SHIFT or not all(TABLE_MIN <= v <= TABLE_MAX for v in self.table):
            raise CustomOptionsError(f"{OP_NAME} table must hold Q{TABLE_SHIFT} values of exp(sigmoid(.)) in [{TABLE_MIN}, {TABLE_MAX}]")
        if not (0 < self.out_multiplier < 1 << 31 and MIN_OUT_SHIFT <= self.out_shift <= MAX_OUT_SHIFT):
            raise CustomOptionsError(f"{OP_NAME} output multiplier/shift are outside the op's fixed-point range")


# Every custom op nlpool writes, by custom code, with the class that encodes and decodes its options.
CUSTOM_OPS: dict[str, type[WeightedPoolParams]] = {OP_NAME: WeightedPoolParams}
