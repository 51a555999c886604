"""TFLite's fixed-point arithmetic, once: requantisation multipliers and the integer rescaling.

`quantize_multiplier` is what TFLite's (and TFLM's) `QuantizeMultiplier` computes in every Prepare;
the NumPy functions are the integer Eval path, exact to the bit, so that NumPy models can stand as
golden references for the C kernels. The export's custom-op options, the golden model and the
firmware generators all take their multipliers from here, so the two can never round differently.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real = multiplier * 2^(shift - 31); shift positive = left.

    TFLite's rule: the Q31 mantissa is rounded half away from zero (TfLiteRound), a mantissa that
    rounds up to 2^31 is halved with the shift raised by one, a shift below -31 gives (0, 0) (every
    bit would be shifted out) and one above 30 saturates to the largest multiplier at shift 30.
    """
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"a requantisation multiplier must be a finite number >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    multiplier = round_half_away(fraction * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return INT32_MAX, 30
    return int(multiplier), int(shift)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    """High 32 bits of 2*a*b, rounded half away from zero; (INT32_MIN, INT32_MIN) saturates."""
    a = np.asarray(a, dtype=np.int64)
    ab = a * np.int64(b)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    # C's signed division truncates toward zero; NumPy's // floors, so divide magnitudes.
    result = np.sign(total) * (np.abs(total) // np.int64(1 << 31))
    if b == INT32_MIN:
        result = np.where(a == INT32_MIN, INT32_MAX, result)
    return result.astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero (x int32-valued). gemmlowp stops at 31;
    beyond it (a softmax row whose exps sum to 512 or more) this is the same rounding in 64 bits,
    nlpool's definition where TFLM's reference aborts (docs/rounding.md)."""
    if not 0 <= exponent <= 62:
        raise ValueError(f"rounding shift must be in [0, 62], got {exponent}")
    x = np.asarray(x, dtype=np.int64)
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """x * multiplier * 2^(shift - 31) with TFLite's double rounding; x must fit int32 after the left shift."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = np.asarray(x, dtype=np.int64) << left
    if shifted.size and (shifted.max() > INT32_MAX or shifted.min() < INT32_MIN):
        raise OverflowError("x << left shift leaves int32: the requantisation parameters are out of range")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # TFLite's reference int8 SOFTMAX: input differences in Q5.26


def softmax_fixed_params(in_scale: float, beta: float) -> tuple[int, int, int]:
    """(input multiplier, input left shift, diff_min) of TFLite's reference int8 SOFTMAX Prepare.

    beta * scale scaled to Q5.26 (capped at the largest int32) as a multiplier >= 1, and the
    smallest input difference that still contributes: anything further below the row maximum
    has an exp that rounds to zero.
    """
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(beta) * float(np.float32(in_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"softmax input scale {in_scale} x beta {beta} is too small for the fixed-point softmax")
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << shift))
    return multiplier, shift, -radius


# --- the fixed-point exp of TFLite's reference int8 SOFTMAX (gemmlowp), element-wise ------------

# gemmlowp's exp barrel shifter: exp(-2^k) in Q0.31 for the bits 2^k of a Q5.26 difference (k = -2..4)
_EXP_BARREL = tuple((26 + k, round(math.exp(-(2.0**k)) * 2**31)) for k in range(-2, 5))


def srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays (element-wise b)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    total = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    out = np.sign(total) * (np.abs(total) // np.int64(1 << 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """x * 2^exponent clamped to int32."""
    return np.clip(np.asarray(x, dtype=np.int64) << exponent, INT32_MIN, INT32_MAX)


def _exp_on_negative_values(a: np.ndarray, integer_bits: int = SOFTMAX_SCALED_DIFF_INTEGER_BITS) -> np.ndarray:
    """exp(a) in Q0.31 for a <= 0 in Q(integer_bits).(31 - integer_bits), at most 5 integer bits
    (gemmlowp's exp_on_negative_values): a Taylor polynomial on [-1/4, 0) times barrel factors."""
    fractional = 31 - integer_bits
    quarter = np.int64(1 << (fractional - 2))
    a_mod = (a & (quarter - 1)) - quarter  # in [-1/4, 0)
    x = (a_mod << integer_bits) + np.int64(1 << 28)  # Q0.31, + 1/8: the expansion point
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, 715827883) + x2, 1)  # 715827883: 1/3 in Q0.31
    exp_minus_eighth = np.int64(1895147668)  # exp(-1/8) in Q0.31
    result = exp_minus_eighth + srdhm(exp_minus_eighth, x + poly)
    remainder = a_mod - a
    for bit, factor in _EXP_BARREL:
        k = bit - 26  # the barrel's power of two: exp(-2^k)
        if integer_bits > k:
            result = np.where(remainder & np.int64(1 << (fractional + k)), srdhm(result, factor), result)
    return np.where(a == 0, INT32_MAX, result)


def softmax_exp(diff: np.ndarray, multiplier: int, left_shift: int) -> np.ndarray:
    """exp of (input - row maximum) in Q0.31, as TFLite's reference int8 SOFTMAX computes it from its
    Prepare's multiplier and left shift (`softmax_fixed_params`)."""
    return _exp_on_negative_values(srdhm(saturating_shift_left(diff, left_shift), multiplier))


def softmax_exp_table(multiplier: int, left_shift: int) -> np.ndarray:
    """`softmax_exp` of every int8 difference: entry i is the exp of a difference of -i (i = 0..255).

    The exp depends on nothing but the difference, so a kernel can look it up (1 KiB) instead of
    evaluating the polynomial twice per score; the bytes are the same by construction."""
    return softmax_exp(-np.arange(256, dtype=np.int64), multiplier, left_shift).astype(np.int32)


# --- TFLM's reference int8 LOGISTIC (gemmlowp fixed point), tabulated over the 256 inputs ----------

LOGISTIC_INPUT_INTEGER_BITS = 4  # input differences rescaled to Q4.27


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) in Q0.31 for a in [0, 1] in Q0.31: gemmlowp's three Newton-Raphson steps in Q2.29."""
    total = a + np.int64(INT32_MAX)
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))  # RoundingHalfSum
    x = np.int64(1515870810) + srdhm(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = np.int64(1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_shift_left(srdhm(x, one_minus), 2)
    return saturating_shift_left(x, 1)


def logistic_int8_table(in_scale: float, in_zero_point: int) -> np.ndarray:
    """TFLM's reference int8 LOGISTIC of every input q = -128..127 (entry q + 128), output scale 1/256
    and zero point -128: Prepare's multiplier (frexp of scale * 2^27) and input radius, then
    gemmlowp's fixed-point logistic of the rescaled input, rounded by 2^23."""
    fraction, left_shift = math.frexp(float(in_scale) * (1 << (31 - LOGISTIC_INPUT_INTEGER_BITS)))
    multiplier = int(round_half_away(fraction * (1 << 31)))
    radius = math.floor(((1 << LOGISTIC_INPUT_INTEGER_BITS) - 1) * (1 << (31 - LOGISTIC_INPUT_INTEGER_BITS))
                        / 2.0**left_shift)
    q = np.arange(-128, 128, dtype=np.int64) - int(in_zero_point)
    inside = (q > -radius) & (q < radius)
    a = multiply_by_quantized_multiplier(np.where(inside, q, 0), multiplier, left_shift)
    positive = _one_over_one_plus_x(_exp_on_negative_values(-np.abs(a), LOGISTIC_INPUT_INTEGER_BITS))
    value = np.where(a > 0, positive, np.int64(INT32_MAX) - positive)
    value = np.where(a == 0, np.int64(1 << 30), value)
    out = np.clip(rounding_divide_by_pot(value, 31 - 8) - 128, -128, 127)
    out = np.where(inside, out, np.where(q <= -radius, -128, 127))
    return out.astype(np.int8)
