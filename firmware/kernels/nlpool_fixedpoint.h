/*
 * Fixed-point helpers shared by every int8 kernel.
 *
 * They reproduce upstream TFLM's default integer semantics exactly (double rounding: a saturating
 * rounding doubling high multiply followed by a rounding divide by a power of two, as TFLM's
 * reference kernels and CMSIS-NN do with TFLITE_SINGLE_ROUNDING / CMSIS_NN_USE_SINGLE_ROUNDING
 * unset), because bit-exactness with TFLM on the device is the contract of this runtime (where the
 * host TFLite interpreter differs: docs/rounding.md). Portable C99, no dependencies.
 */
#ifndef NLPOOL_FIXEDPOINT_H
#define NLPOOL_FIXEDPOINT_H

#include <stdint.h>

static inline int32_t nl_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t nl_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

static inline int32_t nl_clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* High 32 bits of 2*a*b with rounding; the single overflow case saturates. */
static inline int32_t nl_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    /* Division (not a shift) truncates toward zero, as the reference does. */
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
static inline int32_t nl_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift, multiplier in Q31, shift positive = left. */
static inline int32_t nl_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return nl_rdbpot(nl_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int8_t nl_sat_i8(int32_t v)
{
    return (int8_t)nl_clamp_i32(v, -128, 127);
}

#endif /* NLPOOL_FIXEDPOINT_H */
