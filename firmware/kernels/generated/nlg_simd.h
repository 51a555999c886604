/*
 * The few SIMD operations nlpool's generated kernels are written with, and their fused
 * requantisation. On cores with the DSP extension (Cortex-M4/M7/M55) each is one instruction; the
 * plain-C versions below compute the same bits on any other compiler target (the host build), so a
 * generated kernel is one piece of C that is bit-exact everywhere.
 */
#ifndef NLG_SIMD_H
#define NLG_SIMD_H

#include <stdint.h>
#include <string.h>

#include "nlpool_fixedpoint.h"

#define NLG_INLINE static inline __attribute__((always_inline))

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* 4 bytes from any address (one LDR on Cortex-M4/M7/M55, which load unaligned words). */
NLG_INLINE uint32_t nlg_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

NLG_INLINE void nlg_st32(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* n bytes from a constant row (a multiple of 4: word copies; else bytes). */
NLG_INLINE void nlg_fill(int8_t *y, const int8_t *row, int32_t n)
{
    if (n % 4 == 0) {
        for (int32_t i = 0; i < n; i += 4) {
            nlg_st32(y + i, nlg_ld32(row + i));
        }
    } else {
        for (int32_t i = 0; i < n; ++i) {
            y[i] = row[i];
        }
    }
}

#if defined(__ARM_FEATURE_DSP)
/* bytes 0 and 2 sign-extended to two int16 halves */
NLG_INLINE uint32_t nlg_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
/* bytes 1 and 3 sign-extended to two int16 halves */
NLG_INLINE uint32_t nlg_sxtb16_hi(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* acc's int16 halves + bytes 0 and 2 of x, sign-extended (each half wraps alone) */
NLG_INLINE uint32_t nlg_sxtab16(uint32_t acc, uint32_t x) { return (uint32_t)__sxtab16((int16x2_t)acc, (int8x4_t)x); }
/* acc's int16 halves + bytes 1 and 3 of x, sign-extended */
NLG_INLINE uint32_t nlg_sxtab16_hi(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}
/* acc + x.lo * y.lo + x.hi * y.hi (int16 halves) */
NLG_INLINE int32_t nlg_smlad(uint32_t x, uint32_t y, int32_t acc) { return __smlad((int16x2_t)x, (int16x2_t)y, acc); }
NLG_INLINE int32_t nlg_smlabb(uint32_t x, uint32_t y, int32_t acc) { return __smlabb((int32_t)x, (int32_t)y, acc); }
NLG_INLINE int32_t nlg_smlatt(uint32_t x, uint32_t y, int32_t acc) { return __smlatt((int32_t)x, (int32_t)y, acc); }
/* acc + the high word of a * b, rounded: acc + ((a b + 2^31) >> 32) */
NLG_INLINE int32_t nlg_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + a * b, modulo 2^32: one MLA (written out, or GCC splits a sum of products into MUL, MLA, ADD) */
NLG_INLINE int32_t nlg_mla(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("mla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* x saturated to int8 */
NLG_INLINE int32_t nlg_ssat8(int32_t x) { return __ssat(x, 8); }
#else
NLG_INLINE uint32_t nlg_halves(int32_t lo, int32_t hi) { return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16); }
NLG_INLINE int32_t nlg_lo(uint32_t x) { return (int16_t)(x & 0xffffu); }
NLG_INLINE int32_t nlg_hi(uint32_t x) { return (int16_t)(x >> 16); }
NLG_INLINE uint32_t nlg_sxtb16(uint32_t x) { return nlg_halves((int8_t)(x & 0xffu), (int8_t)((x >> 16) & 0xffu)); }
NLG_INLINE uint32_t nlg_sxtb16_hi(uint32_t x) { return nlg_halves((int8_t)((x >> 8) & 0xffu), (int8_t)(x >> 24)); }
NLG_INLINE uint32_t nlg_sxtab16(uint32_t acc, uint32_t x)
{
    return nlg_halves(nlg_lo(acc) + (int8_t)(x & 0xffu), nlg_hi(acc) + (int8_t)((x >> 16) & 0xffu));
}
NLG_INLINE uint32_t nlg_sxtab16_hi(uint32_t acc, uint32_t x)
{
    return nlg_halves(nlg_lo(acc) + (int8_t)((x >> 8) & 0xffu), nlg_hi(acc) + (int8_t)(x >> 24));
}
NLG_INLINE int32_t nlg_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nlg_lo(x) * nlg_lo(y)) + (uint32_t)(nlg_hi(x) * nlg_hi(y)));
}
NLG_INLINE int32_t nlg_smlabb(uint32_t x, uint32_t y, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(nlg_lo(x) * nlg_lo(y))); }
NLG_INLINE int32_t nlg_smlatt(uint32_t x, uint32_t y, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(nlg_hi(x) * nlg_hi(y))); }
NLG_INLINE int32_t nlg_smmlar(int32_t a, int32_t b, int32_t acc)
{
    const int64_t p = (int64_t)a * b + ((int64_t)1 << 31);
    return (int32_t)((uint32_t)acc + (uint32_t)(p >= 0 ? p / ((int64_t)1 << 32) : -((-p + ((int64_t)1 << 32) - 1) / ((int64_t)1 << 32))));
}
NLG_INLINE int32_t nlg_mla(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)a * (uint32_t)b); }
NLG_INLINE int32_t nlg_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#endif

/* Per output channel: the bias with the input offset folded in (bias + input_offset * sum of the
 * channel's weights), the Q31 multiplier, and either (fast layers) the right shift with its rounding
 * term 2^(right-1) + (output zero point << right), or (other layers) TFLite's signed shift and 0. */
typedef struct {
    int32_t bias, mult, shift, round;
} nlg_quant_t;

/*
 * TFLM's requantisation (double rounding: SaturatingRoundingDoublingHighMul, then
 * RoundingDivideByPOT), the output zero point and the clamp. `fast` (a literal per layer) takes five
 * instructions (LSL, SMMLAR, ADD with ASR #31, ASR, SSAT), exact under conditions the generator proves
 * from the layer's numbers (firmware/aot/codegen/requant.py: |acc| < 2^30, right shifts 1..31, the zero
 * point folded into the rounding term without overflow). Other layers take nl_mbqm, the runtime's
 * reference requantisation. lo/hi lie in [-128, 127], so saturating to int8 first changes nothing.
 */
NLG_INLINE int32_t nlg_requant(int32_t acc, const nlg_quant_t *q, int32_t fast, int32_t zero_point, int32_t lo, int32_t hi)
{
    int32_t x;
    if (fast) {
        const int32_t twice = acc * 2;
        x = nlg_smmlar(twice, q->mult, q->round);
        x = nlg_ssat8((x + (twice >> 31)) >> q->shift);
        /* lo, hi are literals: an int8 range bound is no test */
        x = lo > -128 && x < lo ? lo : x;
        return hi < 127 && x > hi ? hi : x;
    }
    x = nl_mbqm(acc, q->mult, q->shift) + zero_point;
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* NLG_SIMD_H */
