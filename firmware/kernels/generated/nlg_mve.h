/*
 * What nlpool's generated Helium (MVE) kernels share: their per-channel quantisation table and TFLM's
 * requantisation on four int32 lanes. Compiled only where the core has MVE (Cortex-M55); elsewhere
 * this header is empty and the generated MVE functions are not built.
 */
#ifndef NLG_MVE_H
#define NLG_MVE_H

#include <stdint.h>

#define NLG_INLINE static inline __attribute__((always_inline))

#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>

/* Four output channels' requantisation, laid out to be loaded as vectors: the bias with the input
 * offset folded in (bias + input_offset * sum of the channel's weights, wrapped to int32 like TFLM's
 * accumulator), the Q31 multiplier, TFLite's left shift (max(shift, 0)) and minus its right shift
 * (min(shift, 0)): the count VRSHL takes to shift right. */
typedef struct {
    int32_t bias[4], mult[4], left[4], neg_right[4];
} nlg_mve_quant_t;

/*
 * TFLM's MultiplyByQuantizedMultiplier (nl_mbqm) on four lanes, plus the output zero point and the clamp.
 * - the left shift wraps as nl_mbqm's (VSHL by register does not saturate); `any_left` (a literal per
 *   layer) leaves it out where every shift is a right shift;
 * - VQRDMULH is SaturatingRoundingDoublingHighMul exactly: both are floor((a b + 2^30) / 2^31) for
 *   a b >= 0 and -floor((-a b + 2^30 - 1) / 2^31) below, saturating the one case INT32_MIN * INT32_MIN;
 * - RoundingDivideByPOT rounds half away from zero, VRSHL half up: a negative lane (only where the
 *   shift is a right shift: the sign bit of x & neg_right) first takes 1 off, saturating, which makes
 *   them equal (tests/test_generated_kernels.py checks this arithmetic against TFLM's in numpy);
 * lo/hi lie in [-128, 127], so the clamped lanes fit the byte a narrowing store keeps.
 */
NLG_INLINE int32x4_t nlg_mve_requant(int32x4_t acc, const nlg_mve_quant_t *q, int32_t any_left, int32_t zero_point,
                                     int32_t lo, int32_t hi)
{
    if (any_left) {
        acc = vshlq_s32(acc, vldrwq_s32(q->left));
    }
    const int32x4_t neg_right = vldrwq_s32(q->neg_right);
    int32x4_t x = vqrdmulhq_s32(acc, vldrwq_s32(q->mult));
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, neg_right), 31));
    x = vrshlq_s32(x, neg_right);
    x = vaddq_n_s32(x, zero_point);
    return vminq_s32(vmaxq_s32(x, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* n bytes (a literal) copied 16 at a time, the tail predicated. */
NLG_INLINE void nlg_mve_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (int32_t i = 0; i < n; i += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        vstrbq_p_s8(dst + i, vldrbq_z_s8(src + i, p), p);
    }
}
#endif /* __ARM_FEATURE_MVE */

#endif /* NLG_MVE_H */
