/*
 * AVERAGE_POOL_2D body that nlpool's generator specialises per layer (literal sizes in the generated
 * call, as nlg_conv.h). TFLM's arithmetic: per output and channel, the sum over the in-bounds part of
 * the window, divided by that part's tap count rounding half away from zero, then the clamp.
 *
 * Eight channels (two input words) at a time: SXTAB16 adds the sign-extended bytes (0, 2) and (1, 3)
 * of each word to int16 halves, 3 instructions per 4 channel taps. The generator takes the kernel only
 * for windows of at most 256 taps, where an int16 sum of int8 values cannot overflow (|sum| <= 128 *
 * 256). A window inside the input runs with literal bounds (its loops unrolled); one on the padding
 * with the clipped ones. Channels % 8 end with one word, then bytes.
 */
#ifndef NLG_AVGPOOL_H
#define NLG_AVGPOOL_H

#include "nlg_simd.h"

/* TFLM's rounded mean of `sum` over `count` taps, clamped. */
NLG_INLINE int8_t nlg_mean(int32_t sum, int32_t count, int32_t lo, int32_t hi)
{
    const int32_t v = (sum > 0 ? sum + count / 2 : sum - count / 2) / count;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* The sums of `words` (1 or 2) input words of channels from x over taps (fy0..fy1) x (fx0..fx1), to y. */
NLG_INLINE void nlg_pool_words(const int8_t *x, int8_t *y, int32_t words, int32_t fy0, int32_t fy1, int32_t fx0, int32_t fx1,
                               int32_t row, int32_t c, int32_t lo, int32_t hi)
{
    uint32_t s02 = 0, s13 = 0, t02 = 0, t13 = 0;
#pragma GCC unroll 32
    for (int32_t fy = fy0; fy < fy1; ++fy) {
#pragma GCC unroll 8
        for (int32_t fx = fx0; fx < fx1; ++fx) {
            const int8_t *p = x + fy * row + fx * c;
            const uint32_t v = nlg_ld32(p);
            s02 = nlg_sxtab16(s02, v);
            s13 = nlg_sxtab16_hi(s13, v);
            if (words == 2) {
                const uint32_t u = nlg_ld32(p + 4);
                t02 = nlg_sxtab16(t02, u);
                t13 = nlg_sxtab16_hi(t13, u);
            }
        }
    }
    const int32_t count = (fy1 - fy0) * (fx1 - fx0);
    y[0] = nlg_mean((int16_t)s02, count, lo, hi);
    y[1] = nlg_mean((int16_t)s13, count, lo, hi);
    y[2] = nlg_mean((int16_t)(s02 >> 16), count, lo, hi);
    y[3] = nlg_mean((int16_t)(s13 >> 16), count, lo, hi);
    if (words == 2) {
        y[4] = nlg_mean((int16_t)t02, count, lo, hi);
        y[5] = nlg_mean((int16_t)t13, count, lo, hi);
        y[6] = nlg_mean((int16_t)(t02 >> 16), count, lo, hi);
        y[7] = nlg_mean((int16_t)(t13 >> 16), count, lo, hi);
    }
}

/* One output pixel: its window's taps (fy0..fy1) x (fx0..fx1) from x, the window's first tap. */
NLG_INLINE void nlg_pool_pixel(const int8_t *x, int8_t *y, int32_t fy0, int32_t fy1, int32_t fx0, int32_t fx1, int32_t row,
                               int32_t c, int32_t lo, int32_t hi)
{
    int32_t ch = 0;
    for (; ch + 8 <= c; ch += 8) {
        nlg_pool_words(x + ch, y + ch, 2, fy0, fy1, fx0, fx1, row, c, lo, hi);
    }
    if (c - ch >= 4) {
        nlg_pool_words(x + ch, y + ch, 1, fy0, fy1, fx0, fx1, row, c, lo, hi);
        ch += 4;
    }
    for (; ch < c; ++ch) {
        int32_t sum = 0;
        for (int32_t fy = fy0; fy < fy1; ++fy) {
            for (int32_t fx = fx0; fx < fx1; ++fx) {
                sum += x[fy * row + fx * c + ch];
            }
        }
        y[ch] = nlg_mean(sum, (fy1 - fy0) * (fx1 - fx0), lo, hi);
    }
}

NLG_INLINE void nlg_avgpool(const int8_t *in, int8_t *out, int32_t batches, int32_t in_h, int32_t in_w, int32_t c, int32_t out_h,
                            int32_t out_w, int32_t fh, int32_t fw, int32_t stride_h, int32_t stride_w, int32_t pad_h, int32_t pad_w,
                            int32_t lo, int32_t hi)
{
    const int32_t row = in_w * c;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *image = in + b * in_h * row;
        int8_t *y = out + b * out_h * out_w * c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t fy0 = iy0 < 0 ? -iy0 : 0, fy1 = in_h - iy0 < fh ? in_h - iy0 : fh;
            for (int32_t ox = 0; ox < out_w; ++ox, y += c) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int8_t *x = image + iy0 * row + ix0 * c;
                if (iy0 >= 0 && iy0 + fh <= in_h && ix0 >= 0 && ix0 + fw <= in_w) {
                    nlg_pool_pixel(x, y, 0, fh, 0, fw, row, c, lo, hi);
                } else {
                    const int32_t fx0 = ix0 < 0 ? -ix0 : 0, fx1 = in_w - ix0 < fw ? in_w - ix0 : fw;
                    nlg_pool_pixel(x, y, fy0, fy1, fx0, fx1, row, c, lo, hi);
                }
            }
        }
    }
}

#endif /* NLG_AVGPOOL_H */
