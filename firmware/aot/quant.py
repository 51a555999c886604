"""Generation-time tables and ranges: what TFLite's Prepare functions compute for builtin ops.

The requantisation multiplier itself comes from nlpool.core.fixedpoint (one rule for every package).

Float32 steps are emulated with NumPy float32 so that tables and ranges match the interpreter.
"""

from __future__ import annotations

import numpy as np

from nlpool.core.fixedpoint import quantize_multiplier, round_half_away

F32 = np.float32


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (fused NONE, RELU, RELU_N1_TO_1, RELU6)."""

    def q(f: float) -> int:
        return zero_point + round_half_away(float(F32(f) / F32(scale)))

    if activation == 0:
        return -128, 127
    if activation == 1:
        return max(-128, q(0.0)), 127
    if activation == 2:
        return max(-128, q(-1.0)), min(127, q(1.0))
    if activation == 3:
        return max(-128, q(0.0)), min(127, q(6.0))
    raise ValueError(f"fused activation {activation}")


# --- TFLM's reference int8 HARD_SWISH (16-bit fixed point), tabulated over the 256 inputs ----------

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def _int16(x: int) -> int:
    """A value stored into an int16_t: two's-complement wrap (what the target's compilers do)."""
    return (x + (1 << 15)) % (1 << 16) - (1 << 15)


def _q15_multiplier(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15 (saturating at its top)."""
    return INT16_MAX if multiplier >= (1 << 31) - 1 - (1 << 15) else (multiplier + (1 << 15)) >> 16


def _divide_truncating(x: int, divisor: int) -> int:
    """C's integer division: the quotient rounded toward zero (Python's // floors)."""
    return x // divisor if x >= 0 else -((-x) // divisor)


def _rounding_high_mul16(a: int, b: int) -> int:
    """gemmlowp's int16 SaturatingRoundingDoublingHighMul: the product, nudged half a step away
    from zero, divided by 2^15."""
    if a == b == INT16_MIN:
        return INT16_MAX
    product = a * b
    return _int16(_divide_truncating(product + ((1 << 14) if product >= 0 else 1 - (1 << 14)), 1 << 15))


def _high_mul16(a: int, b: int) -> int:
    """The HARD_SWISH kernel's SaturatingDoublingHighMul: the product divided by 2^15, truncated."""
    if a == b == INT16_MIN:
        return INT16_MAX
    return _int16(_divide_truncating(a * b, 1 << 15))


def _saturating_left_shift16(value: int, amount: int) -> int:
    return min(max(value * (1 << amount), INT16_MIN), INT16_MAX)


def _rounding_divide_by_pot16(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT on int16: the mask is (1 << exponent) - 1 stored in an int16."""
    mask = _int16((1 << exponent) - 1)
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return _int16((x >> exponent) + (1 if (x & mask) > threshold else 0))


def hard_swish_int8_table(in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int) -> np.ndarray:
    """TFLM's reference int8 HARD_SWISH of every input q = -128..127 (entry q + 128).

    Prepare (HardSwishPrepare): the input on a 2^7 finer scale, two multipliers from float32
    quotients rounded to Q15, the output one on the output scale and the "relu-ish" one mapping
    [-3, 3] onto the int16 range. Eval (reference_ops::HardSwish): the relu-ish factor in [0, 1]
    times the input on the output scale, all in int16, rounded as each step there rounds. Raises
    ValueError where TFLM's Prepare fails (an output multiplier of 1 or more)."""
    hires_scale = F32(1.0 / 128.0) * F32(in_scale)
    out_multiplier, out_exponent = quantize_multiplier(float(hires_scale / F32(out_scale)))
    relu_multiplier, relu_exponent = quantize_multiplier(float(hires_scale / F32(3.0 / 32768.0)))
    if out_exponent > 0:
        raise ValueError(f"HARD_SWISH input scale {in_scale} over output scale {out_scale} is 128 or more "
                         "(TFLM's Prepare requires a smaller ratio)")
    out_q15, relu_q15 = _q15_multiplier(out_multiplier), _q15_multiplier(relu_multiplier)
    table = []
    for q in range(-128, 128):
        hires = _int16(_int16(q - in_zero_point) * (1 << 7))
        on_output_scale = _rounding_high_mul16(hires, out_q15)
        reluish = hires
        if relu_exponent > 0:
            reluish = _saturating_left_shift16(reluish, relu_exponent - 1)
        reluish = _rounding_high_mul16(reluish, relu_q15)
        if relu_exponent > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if relu_exponent < 0:
            reluish = _rounding_divide_by_pot16(reluish, -relu_exponent)
        reluish = _int16((reluish + (1 << 15)) >> 1)
        value = _rounding_divide_by_pot16(_high_mul16(reluish, on_output_scale), -out_exponent)
        table.append(min(max(_int16(value + out_zero_point), -128), 127))
    return np.asarray(table, dtype=np.int8)
