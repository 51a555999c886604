/*
 * DEPTHWISE_CONV_2D (channel multiplier 1, channels % 4 == 0) with Helium (MVE), specialised per layer
 * by nlpool's generator (every argument after the pointers a literal, as nlg_depthwise.h).
 *
 * Four channels per vector: VLDRB.S32 widens a tap's 4 input bytes (contiguous in HWC) to int32 lanes
 * and VMUL.I32 + VADD.I32 add their products with the tap's 4 weights (laid out offline per group of 4 channels,
 * tap after tap, codegen/mve_depthwise.py). Two output pixels share each weight load. The input
 * offset is folded into the bias, so a tap outside the input reads the zero point; pixels and rows
 * whose whole window is inside skip that test (the `inside` arguments are literals in each call).
 *
 * In place (`inplace`: the memory plan put the output over the input, stride 1, output shape = input
 * shape): output row oy is written over input row oy, after that row is copied into a ring of
 * pad_h + 1 rows in the scratch; the rows above it that later outputs still read (oy - pad_h .. oy)
 * are read from the ring, the ones below from the tensor, which still holds them. The ring is
 * (pad_h + 1) W C bytes, at most the plane the portable in-place kernel holds (the generator checks).
 */
#ifndef NLG_MVE_DEPTHWISE_H
#define NLG_MVE_DEPTHWISE_H

#include "nlg_mve.h"

#if defined(__ARM_FEATURE_MVE)

#define NLG_MVE_DW_MAX_FH 16

/* 1 or 2 output pixels (y, y + c) at output column ox, every channel group; rows[fy] is the input row
 * of tap row fy (any pointer when that row is outside the input and inside_y is 0: not read). */
NLG_INLINE void nlg_mve_dw_pixels(const int8_t *const *rows, const uint8_t *row_ok, int8_t *y, const int8_t *w,
                                  const nlg_mve_quant_t *q, int32_t ox, int32_t pixels, int32_t inside_y, int32_t inside_x,
                                  int32_t in_w, int32_t c, int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_w,
                                  int32_t pad_w, int32_t in_zp, int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int32x4_t zp = vdupq_n_s32(in_zp);
    const int32_t ix0 = ox * stride_w - pad_w;
    const int8_t *base[NLG_MVE_DW_MAX_FH];  /* each tap row's first tap of pixel 0: loads then take literal offsets */
#pragma GCC unroll 16
    for (int32_t fy = 0; fy < fh; ++fy) {
        base[fy] = rows[fy] + ix0 * c;
    }
    for (int32_t g = 0; g < c; g += 4, ++q, w += 4 * fh * fw) {
        int32x4_t a0 = vldrwq_s32(q->bias);
        int32x4_t a1 = a0;
#pragma GCC unroll 16
        for (int32_t fy = 0; fy < fh; ++fy) {
            const int8_t *row = base[fy] + g;
            const int ok_y = inside_y || row_ok[fy];
#pragma GCC unroll 16
            for (int32_t fx = 0; fx < fw; ++fx) {
                const int32x4_t wv = vldrbq_s32(w + 4 * (fy * fw + fx));
                const int32_t ix = ix0 + fx * dil_w;
                const int32x4_t x0 = (ok_y && (inside_x || (ix >= 0 && ix < in_w))) ? vldrbq_s32(row + fx * dil_w * c) : zp;
                a0 = vaddq_s32(a0, vmulq_s32(x0, wv));
                if (pixels == 2) {
                    const int32_t ix1 = ix + stride_w;
                    const int32x4_t x1 = (ok_y && (inside_x || (ix1 >= 0 && ix1 < in_w))) ? vldrbq_s32(row + (fx * dil_w + stride_w) * c) : zp;
                    a1 = vaddq_s32(a1, vmulq_s32(x1, wv));
                }
            }
        }
        vstrbq_s32(y + g, nlg_mve_requant(a0, q, any_left, out_zp, lo, hi));
        if (pixels == 2) {
            vstrbq_s32(y + c + g, nlg_mve_requant(a1, q, any_left, out_zp, lo, hi));
        }
    }
}

/* One output row: pixel pairs, each with its window inside the row or not, then an odd last pixel. */
NLG_INLINE void nlg_mve_dw_row(const int8_t *const *rows, const uint8_t *row_ok, int8_t *y, const int8_t *w,
                               const nlg_mve_quant_t *q, int32_t inside_y, int32_t in_w, int32_t c, int32_t out_w,
                               int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_w, int32_t pad_w, int32_t in_zp,
                               int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    int32_t ox = 0;
    for (; ox + 2 <= out_w; ox += 2, y += 2 * c) {
        const int32_t first = ox * stride_w - pad_w, last = (ox + 1) * stride_w - pad_w + (fw - 1) * dil_w;
        if (first >= 0 && last < in_w) {
            nlg_mve_dw_pixels(rows, row_ok, y, w, q, ox, 2, inside_y, 1, in_w, c, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left,
                              out_zp, lo, hi);
        } else {
            nlg_mve_dw_pixels(rows, row_ok, y, w, q, ox, 2, inside_y, 0, in_w, c, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left,
                              out_zp, lo, hi);
        }
    }
    if (ox < out_w) {
        nlg_mve_dw_pixels(rows, row_ok, y, w, q, ox, 1, inside_y, 0, in_w, c, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left,
                          out_zp, lo, hi);
    }
}

NLG_INLINE void nlg_mve_depthwise(const int8_t *in, int8_t *out, int8_t *scratch, const int8_t *w, const nlg_mve_quant_t *q,
                                  int32_t inplace, int32_t in_h, int32_t in_w, int32_t c, int32_t out_h, int32_t out_w,
                                  int32_t fh, int32_t fw, int32_t stride_h, int32_t stride_w, int32_t dil_h, int32_t dil_w,
                                  int32_t pad_h, int32_t pad_w, int32_t in_zp, int32_t any_left, int32_t out_zp, int32_t lo,
                                  int32_t hi)
{
    const int32_t row_bytes = in_w * c;
    const int32_t ring = pad_h + 1;
    const int8_t *rows[NLG_MVE_DW_MAX_FH];
    uint8_t row_ok[NLG_MVE_DW_MAX_FH];
    for (int32_t oy = 0; oy < out_h; ++oy) {
        if (inplace) {
            nlg_mve_copy(scratch + (oy % ring) * row_bytes, in + oy * row_bytes, row_bytes);
        }
        int inside_y = 1;
        for (int32_t fy = 0; fy < fh; ++fy) {
            const int32_t iy = oy * stride_h - pad_h + fy * dil_h;
            row_ok[fy] = iy >= 0 && iy < in_h;
            inside_y &= row_ok[fy];
            rows[fy] = !row_ok[fy] ? in : (inplace && iy <= oy) ? scratch + (iy % ring) * row_bytes : in + iy * row_bytes;
        }
        int8_t *y = out + oy * out_w * c;
        if (inside_y) {
            nlg_mve_dw_row(rows, row_ok, y, w, q, 1, in_w, c, out_w, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left, out_zp, lo, hi);
        } else {
            nlg_mve_dw_row(rows, row_ok, y, w, q, 0, in_w, c, out_w, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left, out_zp, lo, hi);
        }
    }
}

#endif /* __ARM_FEATURE_MVE */

#endif /* NLG_MVE_DEPTHWISE_H */
