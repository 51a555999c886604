/*
 * DEPTHWISE_CONV_2D (channel multiplier 1, channels % 4 == 0) body that nlpool's generator
 * specialises per layer (literal shapes in the generated call, as nlg_conv.h).
 *
 * Four channels at a time: one input word per tap holds them; SXTB16 splits it into (c0, c2) and
 * (c1, c3) halves, which SMLABB/SMLATT multiply with the weights, stored offline as int16 halves in
 * that order (per group of 4 channels, per tap: (w0, w2), (w1, w3)). The input offset is folded into
 * the bias (nlg_quant_t), so a tap outside the input reads a word of zero points and needs no other
 * case; pixels whose whole window is inside skip that test.
 */
#ifndef NLG_DEPTHWISE_H
#define NLG_DEPTHWISE_H

#include "nlg_simd.h"

NLG_INLINE void nlg_dw_pixel(const int8_t *in, int8_t *y0, const uint32_t *w, const nlg_quant_t *q, const int8_t *fill,
                             const uint8_t *groups, int32_t n_groups, int32_t iy0, int32_t ix0, int32_t inside, int32_t in_h, int32_t in_w, int32_t c, int32_t fh, int32_t fw, int32_t dil_h,
                             int32_t dil_w, uint32_t zp4, int32_t fast, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int8_t *x0 = in + (iy0 * in_w + ix0) * c;
    if (fill) {
        nlg_fill(y0, fill, c);
    }
    for (int32_t j = 0; j < n_groups; ++j, q += 4) {
        const int32_t g = 4 * (groups ? groups[j] : j);
        const int8_t *x = x0 + g;
        int8_t *y = y0 + g;
        int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
        const uint32_t *wt = w;
#pragma GCC unroll 8
        for (int32_t fy = 0; fy < fh; ++fy) {
#pragma GCC unroll 8
            for (int32_t fx = 0; fx < fw; ++fx, wt += 2) {
                uint32_t v;
                if (inside) {
                    v = nlg_ld32(x + (fy * dil_h * in_w + fx * dil_w) * c);
                } else {
                    const int32_t iy = iy0 + fy * dil_h, ix = ix0 + fx * dil_w;
                    v = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? nlg_ld32(x + (fy * dil_h * in_w + fx * dil_w) * c) : zp4;
                }
                const uint32_t v02 = nlg_sxtb16(v), v13 = nlg_sxtb16_hi(v);
                a0 = nlg_smlabb(v02, wt[0], a0);
                a2 = nlg_smlatt(v02, wt[0], a2);
                a1 = nlg_smlabb(v13, wt[1], a1);
                a3 = nlg_smlatt(v13, wt[1], a3);
            }
        }
        w += 2 * fh * fw;
        y[0] = (int8_t)nlg_requant(a0, q, fast, out_zp, lo, hi);
        y[1] = (int8_t)nlg_requant(a1, q + 1, fast, out_zp, lo, hi);
        y[2] = (int8_t)nlg_requant(a2, q + 2, fast, out_zp, lo, hi);
        y[3] = (int8_t)nlg_requant(a3, q + 3, fast, out_zp, lo, hi);
    }
}

/* fill: the constant channels' row (0: none); groups: the n_groups groups of 4 channels computed (0: all). */
NLG_INLINE void nlg_depthwise(const int8_t *in, int8_t *out, const uint32_t *w, const nlg_quant_t *q, const int8_t *fill,
                              const uint8_t *groups, int32_t n_groups, int32_t in_h,
                              int32_t in_w, int32_t c, int32_t out_h, int32_t out_w, int32_t fh, int32_t fw,
                              int32_t stride_h, int32_t stride_w, int32_t dil_h, int32_t dil_w, int32_t pad_h,
                              int32_t pad_w, int32_t fast, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi)
{
    const uint32_t zp4 = (uint32_t)(uint8_t)in_zp * 0x01010101u;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        const int rows_inside = iy0 >= 0 && iy0 + (fh - 1) * dil_h < in_h;
        int8_t *y = out + oy * out_w * c;
        for (int32_t ox = 0; ox < out_w; ++ox, y += c) {
            const int32_t ix0 = ox * stride_w - pad_w;
            if (rows_inside && ix0 >= 0 && ix0 + (fw - 1) * dil_w < in_w) {
                nlg_dw_pixel(in, y, w, q, fill, groups, n_groups, iy0, ix0, 1, in_h, in_w, c, fh, fw, dil_h, dil_w, zp4, fast, out_zp, lo, hi);
            } else {
                nlg_dw_pixel(in, y, w, q, fill, groups, n_groups, iy0, ix0, 0, in_h, in_w, c, fh, fw, dil_h, dil_w, zp4, fast, out_zp, lo, hi);
            }
        }
    }
}

#endif /* NLG_DEPTHWISE_H */
