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

/*
 * High 32 bits of 2*a*b with rounding; the single overflow case saturates.
 *
 * gemmlowp nudges by 2^30 or 1 - 2^30 and divides truncating; both cases are one floor,
 * (a b + 2^30) >> 31 (for a b < 0, truncating (x + 1 - 2^30) / 2^31 floors x + 2^30 over it), which
 * an Arm compiler makes an SMLAL and a shift instead of a sign test and a 64-bit division. Only the
 * Cortex-M builds use that form: it needs the arithmetic >> of a negative int64 that every Arm
 * compiler does (implementation-defined in C); the portable form is the reference's literally.
 */
static inline int32_t nl_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FEATURE_DSP)
    return (int32_t)(((int64_t)a * b + (1 << 30)) >> 31);
#else
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    /* Division (not a shift) truncates toward zero, as the reference does. */
    return (int32_t)((ab + nudge) / (1LL << 31));
#endif
}

/* x / 2^exponent rounded to nearest, ties away from zero (exponent 0..31; the mask fits 32 bits). */
static inline int32_t nl_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
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

/* --- upstream TFLM's reference int8 SOFTMAX (gemmlowp fixed point) --------------------------- */

enum { NL_SOFTMAX_ACCUM_BITS = 12, NL_SOFTMAX_OUTPUT_BITS = 8 };

static inline int32_t nl_sat_shl(int64_t x, int32_t exponent)
{
    const int64_t v = x * ((int64_t)1 << exponent);
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

/* 1 / total in Q0.31 scaled into [1/2, 1) and the bits it was scaled by, for a Q12.19 sum > 0:
 * three Newton-Raphson steps in Q2.29 from 48/17 - 32/17 d (gemmlowp's GetReciprocal). */
static inline int32_t nl_softmax_reciprocal(int32_t total, int32_t *bits_over_unit)
{
    int32_t headroom = 0;
    while (!((uint32_t)total & (0x80000000u >> headroom))) {
        ++headroom;
    }
    *bits_over_unit = NL_SOFTMAX_ACCUM_BITS - headroom;
    const int64_t shifted_minus_one = (int64_t)((uint32_t)total << headroom) - ((int64_t)1 << 31);
    const int64_t sum = shifted_minus_one + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + 1) / 2);
    int32_t x = 1515870810 + nl_srdhm(half_denominator, -1010580540);
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - nl_srdhm(half_denominator, x);
        x = x + nl_sat_shl(nl_srdhm(x, one_minus), 2);
    }
    return nl_sat_shl(x >> 1, 2);
}

/*
 * x / 2^exponent rounded to nearest, ties away from zero, for exponents beyond int32's 31 too (the
 * softmax of a long row): the same rounding, computed in 64 bits.
 */
static inline int32_t nl_rdbpot_wide(int32_t x, int32_t exponent)
{
    if (exponent <= 31) {
        return nl_rdbpot(x, exponent);
    }
    const int64_t mask = ((int64_t)1 << exponent) - 1;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> exponent) + ((((int64_t)x) & mask) > threshold ? 1 : 0));
}

/*
 * One row of n int8 scores to int8 probabilities (output scale 1/256, zero point -128), in place
 * allowed (in == out). exp_table[i] is the fixed-point exp of a difference of -i from the row maximum
 * (nlpool.core.fixedpoint.softmax_exp_table: the value the reference kernel evaluates with a
 * polynomial); differences below diff_min do not contribute. A row whose exps sum to 512 or more (a
 * row of 512+ values near its maximum) needs an output shift beyond 31 bits: TFLM's reference kernel
 * aborts there (TFLITE_CHECK) and CMSIS-NN shifts an int32 by 32 or more (undefined in C); nlpool
 * rounds the same fixed-point quotient exactly (nl_rdbpot_wide), for rows of up to 4,095 values (the
 * Q12.19 sum stays in int32). Below 512 it is TFLM's arithmetic, bit for bit.
 */
static inline void nl_softmax_row(const int32_t *exp_table, int32_t diff_min, const int8_t *in, int8_t *out, int32_t n)
{
    int32_t max_val = -128;
    for (int32_t m = 0; m < n; ++m) {
        max_val = nl_max_i32(max_val, in[m]);
    }
    int32_t total = 0;
    for (int32_t m = 0; m < n; ++m) {
        const int32_t diff = in[m] - max_val;
        if (diff >= diff_min) {
            total += nl_rdbpot(exp_table[-diff], NL_SOFTMAX_ACCUM_BITS);
        }
    }
    int32_t bits_over_unit;
    const int32_t scale = nl_softmax_reciprocal(total, &bits_over_unit);
    const int32_t exponent = bits_over_unit + 31 - NL_SOFTMAX_OUTPUT_BITS;
    for (int32_t m = 0; m < n; ++m) {
        const int32_t diff = in[m] - max_val;
        int32_t q = -128;
        if (diff >= diff_min) {
            q = nl_rdbpot_wide(nl_srdhm(exp_table[-diff], scale), exponent) - 128;
        }
        out[m] = nl_sat_i8(q);
    }
}

#endif /* NLPOOL_FIXEDPOINT_H */
