/*
 * ADD (same-shape int8 inputs) body that nlpool's generator specialises per layer: TFLM's three
 * double-rounding rescales replaced by one affine form, y = clamp(floor((A a + B b + C) / 2^k)),
 * whose integers the generator found and proved equal to TFLM's arithmetic on all 65,536 input pairs
 * (firmware/aot/codegen/add.py). With the literals folded it is two multiply-accumulates and an
 * SSAT with its shift per element (plus a compare where the clamp is narrower than int8).
 */
#ifndef NLG_ADD_H
#define NLG_ADD_H

#include "nlg_simd.h"

NLG_INLINE void nlg_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, int32_t a_mult, int32_t b_mult,
                        int32_t constant, int32_t shift, int32_t lo, int32_t hi)
{
#pragma GCC unroll 8
    for (int32_t i = 0; i < n; ++i) {
        /* modulo 2^32: the sum is proved inside int32, a partial sum need not be (it wraps back) */
        const int32_t t = nlg_mla(b_mult, b[i], nlg_mla(a_mult, a[i], constant));
        int32_t x = nlg_ssat8(t >> shift);
        /* lo, hi are literals: an int8 range bound is no test */
        x = lo > -128 && x < lo ? lo : x;
        y[i] = (int8_t)(hi < 127 && x > hi ? hi : x);
    }
}

#endif /* NLG_ADD_H */
