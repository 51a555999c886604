"""The custom operators' contract: their names, options and FlexBuffer encoding, spelled once.

docs/custom_op.md is the contract in prose; this module is its single Python spelling. The fusion
pass writes the options, the golden model and both firmware generators read them back through
`WeightedPoolParams.from_flexbuffer`, which validates what it decodes: options written by anything
else (or corrupted on the way) are a one-line `CustomOptionsError`, not a KeyError in a generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from flatbuffers import flexbuffers

from .errors import NlpoolError
from .fixedpoint import quantize_multiplier

WEIGHTED_POOL_OP_NAME = "NLPOOL_WEIGHTED_POOL"
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


def _decode_integer_map(op_name: str, blob: bytes | bytearray | np.ndarray, fields: dict[str, Any]) -> dict[str, object]:
    """A FlexBuffer map holding exactly integer or integer-vector values for `fields` (vectors for fields
    typed as tuples), as {field: int or tuple}; CustomOptionsError names the first bad field."""
    try:
        data = flexbuffers.Loads(bytearray(bytes(blob)))
    except Exception as err:  # the FlexBuffer reader raises whatever a bad offset leads to
        raise CustomOptionsError(f"{op_name} options are not a valid FlexBuffer ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise CustomOptionsError(f"{op_name} options are not a FlexBuffer map")
    missing = [key for key in fields if key not in data]
    if missing:
        raise CustomOptionsError(f"{op_name} options lack {', '.join(missing)}")
    values: dict[str, object] = {}
    for key, field in fields.items():
        value = data[key]
        if "tuple" in str(field.type):
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise CustomOptionsError(f"{op_name} option {key} must be a vector of integers")
            values[key] = tuple(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise CustomOptionsError(f"{op_name} option {key} must be an integer, got {value!r}")
        else:
            values[key] = value
    return values


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
        values = _decode_integer_map(WEIGHTED_POOL_OP_NAME, blob, cls.__dataclass_fields__)
        if len(values["table"]) != TABLE_SIZE:
            raise CustomOptionsError(f"{WEIGHTED_POOL_OP_NAME} option table must be {TABLE_SIZE} integers")
        params = cls(**values)  # type: ignore[arg-type]
        params.check()
        return params

    def check(self) -> None:
        """The ranges docs/custom_op.md guarantees to a kernel (window, strides, zero points, table)."""
        if min(self.filter_h, self.filter_w, self.stride_h, self.stride_w) < 1:
            raise CustomOptionsError(f"{WEIGHTED_POOL_OP_NAME} window and strides must be >= 1")
        if self.filter_h * self.filter_w > MAX_WINDOW_ELEMENTS:
            raise CustomOptionsError(
                f"{WEIGHTED_POOL_OP_NAME} window {self.filter_h}x{self.filter_w} exceeds {MAX_WINDOW_ELEMENTS} elements")
        if not all(-128 <= z <= 127 for z in (self.x_zero_point, self.r_zero_point, self.out_zero_point)):
            raise CustomOptionsError(f"{WEIGHTED_POOL_OP_NAME} zero points must be int8")
        if self.table_shift != TABLE_SHIFT or not all(TABLE_MIN <= v <= TABLE_MAX for v in self.table):
            raise CustomOptionsError(
                f"{WEIGHTED_POOL_OP_NAME} table must hold Q{TABLE_SHIFT} values of exp(sigmoid(.)) in [{TABLE_MIN}, {TABLE_MAX}]")
        if not (0 < self.out_multiplier < 1 << 31 and MIN_OUT_SHIFT <= self.out_shift <= MAX_OUT_SHIFT):
            raise CustomOptionsError(f"{WEIGHTED_POOL_OP_NAME} output multiplier/shift are outside the op's fixed-point range")



# --- NLPOOL_ATTENTION: the streamed self-attention block (docs/custom_op.md, second part) ----------

ATTENTION_OP_NAME = "NLPOOL_ATTENTION"
ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD headroom: both operands are scaled up by 2^20 before rescaling
STEP_ADD, STEP_MUL = 0, 1
# One element-wise step with a constant operand c, as 10 ints:
# kind, x_offset, c_offset, x_multiplier, x_shift, c_multiplier, c_shift, out_multiplier, out_shift, out_offset
STEP_FIELDS = 10
MAX_STEPS = 4
# Inputs of the op; an absent optional input is -1 as everywhere in TFLite.
# TFLite's int8 SOFTMAX writes probabilities at scale 1/256, zero point -128; the next matmul adds 128.
SOFTMAX_OUTPUT_SCALE, SOFTMAX_OUTPUT_ZERO_POINT = 1.0 / 256.0, -128
SOFTMAX_OUTPUT_OFFSET = -SOFTMAX_OUTPUT_ZERO_POINT
ATTENTION_INPUTS = ("tokens", "pos_table", "qkv_weights", "qkv_bias", "out_weights", "out_bias")


def add_step(x_qp: tuple[float, int], c_qp: tuple[float, int], out_qp: tuple[float, int]) -> tuple[int, ...]:
    """TFLite's int8 ADD Prepare for x + c: both rescaled to twice the larger scale, then to the output."""
    (sx, zx), (sc, zc), (so, zo) = x_qp, c_qp, out_qp
    twice_max = 2.0 * max(sx, sc)
    xm, xs = quantize_multiplier(sx / twice_max)
    cm, cs = quantize_multiplier(sc / twice_max)
    om, os_ = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * so))
    return (STEP_ADD, -zx, -zc, xm, xs, cm, cs, om, os_, zo)


def mul_step(x_qp: tuple[float, int], c_qp: tuple[float, int], out_qp: tuple[float, int]) -> tuple[int, ...]:
    """TFLite's int8 MUL Prepare for x * c: one multiplier for sx * sc / so."""
    (sx, zx), (sc, zc), (so, zo) = x_qp, c_qp, out_qp
    om, os_ = quantize_multiplier(sx * sc / so)
    return (STEP_MUL, -zx, -zc, 0, 0, 0, 0, om, os_, zo)


@dataclass(frozen=True)
class AttentionParams:
    """Everything the streamed attention kernel needs besides its constant tensors.

    The block is TFLite's int8 ops composed: an optional positional ADD on the tokens (N, E), one
    FULLY_CONNECTED to (N, 3E), per branch (q, k, v) a column window and a chain of ADD/MUL steps
    with per-column constants, BATCH_MATMUL q k^T per head, SOFTMAX per row, BATCH_MATMUL with v,
    and the output FULLY_CONNECTED. Every multiplier is what that op's TFLite Prepare computes, so
    the fused op is bit-exact with the unfused graph. Field names are the FlexBuffer keys.
    """

    tokens: int
    width: int
    heads: int
    input_zero_point: int
    output_zero_point: int
    pos_step: tuple[int, ...]  # one STEP_ADD record, or () without a positional table
    qkv_input_offset: int
    qkv_filter_offset: int
    qkv_output_offset: int
    qkv_multiplier: tuple[int, ...]  # 3E (per output channel; per-tensor weights repeat one value)
    qkv_shift: tuple[int, ...]
    q_column: int
    k_column: int
    v_column: int
    q_steps: tuple[int, ...]  # STEP_FIELDS ints per step
    k_steps: tuple[int, ...]
    v_steps: tuple[int, ...]
    q_consts: tuple[int, ...]  # E int8 per step: the constant operand per column of the branch
    k_consts: tuple[int, ...]
    v_consts: tuple[int, ...]
    score_lhs_offset: int
    score_rhs_offset: int
    score_multiplier: int
    score_shift: int
    score_output_offset: int
    softmax_multiplier: int  # TFLite's reference int8 SOFTMAX (fixed point; output scale 1/256, zero point -128)
    softmax_left_shift: int
    softmax_diff_min: int
    mix_rhs_offset: int
    mix_multiplier: int
    mix_shift: int
    mix_output_offset: int
    out_input_offset: int
    out_filter_offset: int
    out_multiplier: tuple[int, ...]  # E
    out_shift: tuple[int, ...]
    fc_double_rounding: int  # 0: TFLite interpreter (FULLY_CONNECTED rounds once); 1: TFLM's default

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def steps(self, branch: str) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """(step record, constant per column) for branch 'q', 'k' or 'v', in evaluation order."""
        flat, consts = getattr(self, f"{branch}_steps"), getattr(self, f"{branch}_consts")
        count = len(flat) // STEP_FIELDS
        return [
            (flat[i * STEP_FIELDS : (i + 1) * STEP_FIELDS], np.asarray(consts[i * self.width : (i + 1) * self.width], dtype=np.int8))
            for i in range(count)
        ]

    def scratch_bytes(self) -> int:
        """The kernel's scratch (`attention_scratch_bytes`)."""
        return attention_scratch_bytes(self.tokens, self.width)

    def to_flexbuffer(self) -> bytes:
        data = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        return bytes(flexbuffers.Dumps(data))

    @classmethod
    def from_flexbuffer(cls, blob: bytes | bytearray | np.ndarray) -> AttentionParams:
        """Decode and validate options; CustomOptionsError names the first bad field."""
        values = _decode_integer_map(ATTENTION_OP_NAME, blob, cls.__dataclass_fields__)
        params = cls(**values)  # type: ignore[arg-type]
        params.check()
        return params

    def check(self) -> None:
        """The shapes and ranges a kernel relies on (vector lengths, int8 zero points, Q31 multipliers)."""
        name, n, e = ATTENTION_OP_NAME, self.tokens, self.width
        if min(n, e, self.heads) < 1 or e % self.heads:
            raise CustomOptionsError(f"{name} needs tokens, width, heads >= 1 and width divisible by heads")
        lengths = {"qkv_multiplier": 3 * e, "qkv_shift": 3 * e, "out_multiplier": e, "out_shift": e}
        for key, length in lengths.items():
            if len(getattr(self, key)) != length:
                raise CustomOptionsError(f"{name} option {key} must have {length} entries")
        if len(self.pos_step) not in (0, STEP_FIELDS) or (self.pos_step and self.pos_step[0] != STEP_ADD):
            raise CustomOptionsError(f"{name} option pos_step must be empty or one ADD step")
        for branch in "qkv":
            flat, consts = getattr(self, f"{branch}_steps"), getattr(self, f"{branch}_consts")
            count = len(flat) // STEP_FIELDS
            if len(flat) % STEP_FIELDS or count > MAX_STEPS or len(consts) != count * e:
                raise CustomOptionsError(f"{name} {branch} steps must be up to {MAX_STEPS} records with {e} constants each")
            if any(flat[i * STEP_FIELDS] not in (STEP_ADD, STEP_MUL) for i in range(count)):
                raise CustomOptionsError(f"{name} {branch} step kinds must be ADD or MUL")
            if not all(-128 <= c <= 127 for c in consts):
                raise CustomOptionsError(f"{name} {branch} constants must be int8")
            if not 0 <= getattr(self, f"{branch}_column") <= 2 * e:
                raise CustomOptionsError(f"{name} {branch}_column must select {e} of the {3 * e} projected columns")
        zero_points = (self.input_zero_point, self.output_zero_point, self.qkv_output_offset,
                       self.score_output_offset, self.mix_output_offset, -self.qkv_input_offset, -self.out_input_offset)
        if not all(-128 <= z <= 127 for z in zero_points):
            raise CustomOptionsError(f"{name} zero points must be int8")
        multipliers = (*self.qkv_multiplier, *self.out_multiplier, self.score_multiplier, self.mix_multiplier)
        shifts = (*self.qkv_shift, *self.out_shift, self.score_shift, self.mix_shift)
        if not all(0 <= m < 1 << 31 for m in multipliers) or not all(-31 <= s <= 30 for s in shifts):
            raise CustomOptionsError(f"{name} multipliers must be Q31 with shifts in [-31, 30]")
        if not (0 < self.softmax_multiplier < 1 << 31 and 0 <= self.softmax_left_shift <= 30 and self.softmax_diff_min <= 0):
            raise CustomOptionsError(f"{name} softmax parameters are outside TFLite's fixed-point softmax")
        if self.fc_double_rounding not in (0, 1):
            raise CustomOptionsError(f"{name} option fc_double_rounding must be 0 or 1")


# Every custom op nlpool writes, by custom code, with the class that encodes and decodes its options.
CUSTOM_OPS: dict[str, type[WeightedPoolParams] | type[AttentionParams]] = {
    WEIGHTED_POOL_OP_NAME: WeightedPoolParams, ATTENTION_OP_NAME: AttentionParams}


class Operand(Protocol):
    """What the operand contract reads of a tensor (nlpool.core.tflite.Tensor has it)."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int: ...

    @property
    def constant(self) -> bool: ...


@dataclass(frozen=True)
class CustomArity:
    """A custom op's inputs in order (an absent optional one is -1, as everywhere in TFLite) and its one output."""

    inputs: tuple[str, ...]
    optional: frozenset[str] = frozenset()


CUSTOM_ARITY: dict[str, CustomArity] = {
    WEIGHTED_POOL_OP_NAME: CustomArity(("x", "r")),
    ATTENTION_OP_NAME: CustomArity(ATTENTION_INPUTS, frozenset({"pos_table", "qkv_bias", "out_bias"})),
}


def check_operands(params: WeightedPoolParams | AttentionParams, inputs: tuple[Operand | None, ...], output: Operand) -> None:
    """The op's tensors against its decoded options (what a kernel's Prepare relies on before it indexes
    them); `inputs` follow CUSTOM_ARITY, None for an absent optional one. Raises CustomOptionsError."""
    if isinstance(params, WeightedPoolParams):
        if any(t is None or len(t.shape) != 4 for t in (*inputs, output)):
            raise CustomOptionsError(f"{WEIGHTED_POOL_OP_NAME} needs 4-D (NHWC) inputs and output")
        return
    name, n, e = ATTENTION_OP_NAME, params.tokens, params.width
    operands = dict(zip(ATTENTION_INPUTS, inputs, strict=True))
    for what, tensor in (("tokens", operands["tokens"]), ("output", output)):
        if tensor is None or tensor.size != n * e or tensor.dtype != "int8":
            raise CustomOptionsError(f"{name} {what} must be int8 with {n} x {e} elements, as its options say")
    if bool(params.pos_step) != (operands["pos_table"] is not None):
        raise CustomOptionsError(f"{name} positional step and table do not come together")
    expected = {"pos_table": (n * e, "int8"), "qkv_weights": (3 * e * e, "int8"), "qkv_bias": (3 * e, "int32"),
                "out_weights": (e * e, "int8"), "out_bias": (e, "int32")}
    for what, (size, dtype) in expected.items():
        tensor = operands[what]
        if tensor is None:
            continue
        if not tensor.constant or tensor.size != size or tensor.dtype != dtype:
            raise CustomOptionsError(f"{name} {what} must be a constant {dtype} tensor of {size} elements")


def attention_scratch_bytes(tokens: int, width: int) -> int:
    """NLPOOL_ATTENTION's scratch for N tokens of width E: K and V of every token (2 N E) plus one
    query row, one score row and one mixed row (E + N + E) — O(N E), never heads x N x N."""
    return 2 * tokens * width + tokens + 2 * width


def scratch_bytes(name: str, options: bytes | bytearray | np.ndarray) -> int:
    """Bytes of scratch memory the kernel of custom op `name` needs besides its tensors, for a memory
    plan that must hold it (0 for ops without scratch). Raises CustomOptionsError on bad options."""
    if name == ATTENTION_OP_NAME:
        return AttentionParams.from_flexbuffer(options).scratch_bytes()
    return 0
