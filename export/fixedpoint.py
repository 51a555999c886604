"""TFLite's integer requantisation arithmetic in NumPy (reference-kernel semantics, vectorised).

The C kernels in firmware/ implement the same three functions; keeping them here, exact to the bit,
is what lets a NumPy model stand as the golden reference for them.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real = multiplier * 2^(shift - 31); shift positive = left (TFLite)."""
    if real <= 0:
        raise ValueError(f"a requantisation multiplier must be positive, got {real}")
    fraction, shift = math.frexp(real)
    multiplier = round(fraction * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
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
    """x / 2^exponent rounded to nearest, ties away from zero (x int32-valued)."""
    if not 0 <= exponent <= 31:
        raise ValueError(f"rounding shift must be in [0, 31], got {exponent}")
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
