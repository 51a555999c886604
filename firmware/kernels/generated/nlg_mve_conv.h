/*
 * CONV_2D with Helium (MVE), specialised per layer by nlpool's generator (every argument after the
 * pointers a literal, as nlg_conv.h).
 *
 * Per output pixel, its window as K = fh fw in_c bytes in the filter's own (fy, fx, c) order: for a
 * 1x1 layer without padding (`direct`) that is the input pixel itself; otherwise the window is copied
 * into the scratch (a window row's fw in_c bytes are contiguous in the input: one predicated vector
 * copy each; a window on the padding tap by tap, outside taps as the zero point). Four output channels
 * at a time, VMLAVA.S8 (vmladavaq_s8) adds 16 products of a window chunk and a weight chunk into each channel's
 * accumulator; the weights are laid out offline per group of 4 channels, per chunk of 16, the 4
 * channels' 16 bytes (codegen/mve_conv.py), K padded with zero weights to KP, a multiple of 16, and the
 * window's last chunk loaded predicated (its lanes past K read as 0). The input offset is folded into
 * the bias. The 4 accumulators go into one vector and are requantised together.
 */
#ifndef NLG_MVE_CONV_H
#define NLG_MVE_CONV_H

#include "nlg_mve.h"

#if defined(__ARM_FEATURE_MVE)

/* (a0, a1, a2, a3) as one vector: a VDUP and three lane moves. (The two-register form VMOV Qd[2], Qd[0],
 * Rt, Rt2 as inline assembly would save two instructions, but did not give the intended lanes under
 * QEMU 7.2: the default model's outputs differed; not investigated further, so the intrinsics.) */
NLG_INLINE int32x4_t nlg_mve_lanes(int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
    int32x4_t v = vdupq_n_s32(a0);
    v = vsetq_lane_s32(a1, v, 1);
    v = vsetq_lane_s32(a2, v, 2);
    return vsetq_lane_s32(a3, v, 3);
}

/* Every output channel of one pixel from its window `col` (K bytes). */
NLG_INLINE void nlg_mve_conv_pixel(const int8_t *col, int8_t *y, const int8_t *w, const nlg_mve_quant_t *q, int32_t k,
                                   int32_t kp, int32_t out_c, int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    for (int32_t o = 0; o < out_c; o += 4, ++q) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma GCC unroll 64
        for (int32_t j = 0; j < kp; j += 16, w += 64) {
            const int8x16_t x = k - j >= 16 ? vldrbq_s8(col + j) : vldrbq_z_s8(col + j, vctp8q((uint32_t)(k - j)));
            a0 = vmladavaq_s8(a0, x, vldrbq_s8(w));
            a1 = vmladavaq_s8(a1, x, vldrbq_s8(w + 16));
            a2 = vmladavaq_s8(a2, x, vldrbq_s8(w + 32));
            a3 = vmladavaq_s8(a3, x, vldrbq_s8(w + 48));
        }
        const int32x4_t acc = vaddq_s32(nlg_mve_lanes(a0, a1, a2, a3), vldrwq_s32(q->bias));
        const int32x4_t out = nlg_mve_requant(acc, q, any_left, out_zp, lo, hi);
        if (out_c - o >= 4) {
            vstrbq_s32(y + o, out);
        } else {
            vstrbq_p_s32(y + o, out, vctp32q((uint32_t)(out_c - o)));
        }
    }
}

/* n bytes of the zero point (predicated stores). */
NLG_INLINE void nlg_mve_fill(int8_t *dst, int32_t n, int32_t zp)
{
    const int8x16_t v = vdupq_n_s8((int8_t)zp);
    for (int32_t i = 0; i < n; i += 16) {
        vstrbq_p_s8(dst + i, v, vctp8q((uint32_t)(n - i)));
    }
}

/* The window of the output pixel whose first tap is input (iy0, ix0), as K bytes at col. */
NLG_INLINE void nlg_mve_im2col(const int8_t *in, int8_t *col, int32_t iy0, int32_t ix0, int32_t in_h, int32_t in_w, int32_t in_c,
                               int32_t fh, int32_t fw, int32_t dil_h, int32_t dil_w, int32_t zp)
{
    const int32_t row = fw * in_c;
    const int inside = iy0 >= 0 && iy0 + (fh - 1) * dil_h < in_h && ix0 >= 0 && ix0 + (fw - 1) * dil_w < in_w;
    if (inside && (dil_w == 1 || fw == 1)) {
#pragma GCC unroll 16
        for (int32_t fy = 0; fy < fh; ++fy) {
            nlg_mve_copy(col + fy * row, in + ((iy0 + fy * dil_h) * in_w + ix0) * in_c, row);
        }
        return;
    }
    for (int32_t fy = 0; fy < fh; ++fy) {
        const int32_t iy = iy0 + fy * dil_h;
        for (int32_t fx = 0; fx < fw; ++fx) {
            const int32_t ix = ix0 + fx * dil_w;
            int8_t *dst = col + fy * row + fx * in_c;
            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                nlg_mve_copy(dst, in + (iy * in_w + ix) * in_c, in_c);
            } else {
                nlg_mve_fill(dst, in_c, zp);
            }
        }
    }
}

NLG_INLINE void nlg_mve_conv(const int8_t *in, int8_t *out, int8_t *scratch, const int8_t *w, const nlg_mve_quant_t *q,
                             int32_t direct, int32_t in_h, int32_t in_w, int32_t in_c, int32_t out_h, int32_t out_w, int32_t out_c,
                             int32_t fh, int32_t fw, int32_t stride_h, int32_t stride_w, int32_t dil_h, int32_t dil_w,
                             int32_t pad_h, int32_t pad_w, int32_t kp, int32_t in_zp, int32_t any_left, int32_t out_zp, int32_t lo,
                             int32_t hi)
{
    const int32_t k = fh * fw * in_c;
    int8_t *y = out;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        for (int32_t ox = 0; ox < out_w; ++ox, y += out_c) {
            const int32_t ix0 = ox * stride_w - pad_w;
            const int8_t *col = in + (iy0 * in_w + ix0) * in_c;
            if (!direct) {
                nlg_mve_im2col(in, scratch, iy0, ix0, in_h, in_w, in_c, fh, fw, dil_h, dil_w, in_zp);
                col = scratch;
            }
            nlg_mve_conv_pixel(col, y, w, q, k, kp, out_c, any_left, out_zp, lo, hi);
        }
    }
}

#endif /* __ARM_FEATURE_MVE */

#endif /* NLG_MVE_CONV_H */
