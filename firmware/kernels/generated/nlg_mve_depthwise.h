/*
 * DEPTHWISE_CONV_2D (channel multiplier 1, channels % 4 == 0) with Helium (MVE), specialised per layer
 * by nlpool's generator (every argument after the pointers a literal, as nlg_depthwise.h).
 *
 * Four channels per vector: VLDRB.S32 widens a tap's 4 input bytes (contiguous in HWC) to int32 lanes
 * and VMUL.I32 + VADD.I32 add their products with the tap's 4 weights (laid out offline per group of 4 channels,
 * tap after tap, codegen/mve_depthwise.py). A row goes one channel group at a time, two output pixels
 * sharing each weight load, so the tap rows are a few pointers that step along the row. The input
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

/* One channel group (4 channels) of 1 or 2 output pixels: x[fy] points at pixel 0's first tap in tap row
 * fy (channel offset included); the second pixel's taps are stride_w pixels on. Literals: inside_y, every
 * tap row is in the input (else row_ok says which are); inside_x, every tap column is (else ix0, pixel 0's
 * first input column, says which are). */
NLG_INLINE void nlg_mve_dw_group(const int8_t *const *x, const uint8_t *row_ok, int8_t *y, const int8_t *w,
                                 const nlg_mve_quant_t *q, int32_t ix0, int32_t pixels, int32_t inside_y, int32_t inside_x,
                                 int32_t in_w,
                                 int32_t c, int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_w, int32_t in_zp,
                                 int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int32x4_t zp = vdupq_n_s32(in_zp);
    int32x4_t a0 = vldrwq_s32(q->bias);
    int32x4_t a1 = a0;
#pragma GCC unroll 16
    for (int32_t fy = 0; fy < fh; ++fy) {
#pragma GCC unroll 16
        for (int32_t fx = 0; fx < fw; ++fx) {
            const int32x4_t wv = vldrbq_s32(w + 4 * (fy * fw + fx));
            const int32_t ix = ix0 + fx * dil_w;
            const int ok_y = inside_y || row_ok[fy];
            const int ok0 = ok_y && (inside_x || (ix >= 0 && ix < in_w));
            a0 = vaddq_s32(a0, vmulq_s32(ok0 ? vldrbq_s32(x[fy] + fx * dil_w * c) : zp, wv));
            if (pixels == 2) {
                const int ok1 = ok_y && (inside_x || (ix + stride_w >= 0 && ix + stride_w < in_w));
                a1 = vaddq_s32(a1, vmulq_s32(ok1 ? vldrbq_s32(x[fy] + (fx * dil_w + stride_w) * c) : zp, wv));
            }
        }
    }
    vstrbq_s32(y, nlg_mve_requant(a0, q, any_left, out_zp, lo, hi));
    if (pixels == 2) {
        vstrbq_s32(y + c, nlg_mve_requant(a1, q, any_left, out_zp, lo, hi));
    }
}

/* Output columns [begin, end) of one channel group, one pixel at a time, each tap tested; unrolled where
 * the range is a literal (the border columns), so the tests fold. */
NLG_INLINE void nlg_mve_dw_edge(const int8_t *const *rows, const uint8_t *row_ok, int8_t *y, const int8_t *w,
                                const nlg_mve_quant_t *q, int32_t g, int32_t begin, int32_t end, int32_t inside_y, int32_t in_w,
                                int32_t c,
                                int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_w, int32_t pad_w, int32_t in_zp,
                                int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int8_t *x[NLG_MVE_DW_MAX_FH];
#pragma GCC unroll 16
    for (int32_t ox = begin; ox < end; ++ox) {
        const int32_t ix0 = ox * stride_w - pad_w;
#pragma GCC unroll 16
        for (int32_t fy = 0; fy < fh; ++fy) {
            x[fy] = rows[fy] + ix0 * c + g;
        }
        nlg_mve_dw_group(x, row_ok, y + ox * c + g, w, q, ix0, 1, inside_y, 0, in_w, c, fh, fw, stride_w, dil_w, in_zp, any_left,
                         out_zp, lo, hi);
    }
}

/*
 * One output row, one channel group at a time. The columns whose window is inside the input row,
 * [first, last], go in pairs without column tests; the border columns take the tested path, one pixel
 * at a time, unrolled. A row with tap rows outside the input (not inside_y) tests those rows by
 * row_ok, which holds literals there: the caller unrolls the border rows.
 */
NLG_INLINE void nlg_mve_dw_row(const int8_t *const *rows, const uint8_t *row_ok, int8_t *y, const int8_t *w,
                               const nlg_mve_quant_t *q, int32_t inside_y, int32_t in_w, int32_t c, int32_t out_w,
                               int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_w, int32_t pad_w, int32_t in_zp,
                               int32_t any_left, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int32_t first = (pad_w + stride_w - 1) / stride_w;
    const int32_t last = (in_w - 1 - (fw - 1) * dil_w + pad_w) / stride_w;
    const int32_t left = first < out_w ? first : out_w;  /* [0, left): left border */
    const int32_t right = last + 1 > left ? (last + 1 < out_w ? last + 1 : out_w) : left;  /* [right, out_w): right border */
    for (int32_t g = 0; g < c; g += 4, ++q, w += 4 * fh * fw) {
        nlg_mve_dw_edge(rows, row_ok, y, w, q, g, 0, left, inside_y, in_w, c, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left, out_zp,
                        lo, hi);
        const int8_t *x[NLG_MVE_DW_MAX_FH];
#pragma GCC unroll 16
        for (int32_t fy = 0; fy < fh; ++fy) {
            x[fy] = rows[fy] + (left * stride_w - pad_w) * c + g;
        }
        int32_t ox = left;
        for (; ox + 2 <= right; ox += 2) {
            nlg_mve_dw_group(x, row_ok, y + ox * c + g, w, q, 0, 2, inside_y, 1, in_w, c, fh, fw, stride_w, dil_w, in_zp, any_left,
                             out_zp, lo, hi);
#pragma GCC unroll 16
            for (int32_t fy = 0; fy < fh; ++fy) {
                x[fy] += 2 * stride_w * c;
            }
        }
        if (ox < right) {
            nlg_mve_dw_group(x, row_ok, y + ox * c + g, w, q, 0, 1, inside_y, 1, in_w, c, fh, fw, stride_w, dil_w, in_zp, any_left,
                             out_zp, lo, hi);
        }
        nlg_mve_dw_edge(rows, row_ok, y, w, q, g, right, out_w, inside_y, in_w, c, fh, fw, stride_w, dil_w, pad_w, in_zp, any_left,
                        out_zp, lo, hi);
    }
}

/* Output row oy: its tap rows (from the ring in place), then the row. */
NLG_INLINE void nlg_mve_dw_out_row(const int8_t *in, int8_t *out, int8_t *scratch, const int8_t *w, const nlg_mve_quant_t *q,
                                   int32_t oy, int32_t inside_y, int32_t inplace, int32_t in_h, int32_t in_w, int32_t c,
                                   int32_t out_w, int32_t fh, int32_t fw, int32_t stride_h, int32_t stride_w, int32_t dil_h,
                                   int32_t dil_w, int32_t pad_h, int32_t pad_w, int32_t in_zp, int32_t any_left, int32_t out_zp,
                                   int32_t lo, int32_t hi)
{
    const int32_t row_bytes = in_w * c;
    const int32_t ring = pad_h + 1;
    const int8_t *rows[NLG_MVE_DW_MAX_FH];
    uint8_t row_ok[NLG_MVE_DW_MAX_FH];
    if (inplace) {
        nlg_mve_copy(scratch + (oy % ring) * row_bytes, in + oy * row_bytes, row_bytes);
    }
#pragma GCC unroll 16
    for (int32_t fy = 0; fy < fh; ++fy) {
        const int32_t iy = oy * stride_h - pad_h + fy * dil_h;
        row_ok[fy] = inside_y || (iy >= 0 && iy < in_h);
        rows[fy] = !row_ok[fy] ? in : (inplace && iy <= oy) ? scratch + (iy % ring) * row_bytes : in + iy * row_bytes;
    }
    nlg_mve_dw_row(rows, row_ok, out + oy * out_w * c, w, q, inside_y, in_w, c, out_w, fh, fw, stride_w, dil_w, pad_w, in_zp,
                   any_left, out_zp, lo, hi);
}

/* The rows whose every tap row is inside the input, [first, last], in a loop; the border rows above and
 * below unrolled (a few: pad_h / stride_h), so their tests are literals. */
NLG_INLINE void nlg_mve_depthwise(const int8_t *in, int8_t *out, int8_t *scratch, const int8_t *w, const nlg_mve_quant_t *q,
                                  int32_t inplace, int32_t in_h, int32_t in_w, int32_t c, int32_t out_h, int32_t out_w,
                                  int32_t fh, int32_t fw, int32_t stride_h, int32_t stride_w, int32_t dil_h, int32_t dil_w,
                                  int32_t pad_h, int32_t pad_w, int32_t in_zp, int32_t any_left, int32_t out_zp, int32_t lo,
                                  int32_t hi)
{
    const int32_t first = (pad_h + stride_h - 1) / stride_h;
    const int32_t last = (in_h - 1 - (fh - 1) * dil_h + pad_h) / stride_h;
    const int32_t top = first < out_h ? first : out_h;
    const int32_t bottom = last + 1 > top ? (last + 1 < out_h ? last + 1 : out_h) : top;
#pragma GCC unroll 16
    for (int32_t oy = 0; oy < top; ++oy) {
        nlg_mve_dw_out_row(in, out, scratch, w, q, oy, 0, inplace, in_h, in_w, c, out_w, fh, fw, stride_h, stride_w, dil_h, dil_w,
                           pad_h, pad_w, in_zp, any_left, out_zp, lo, hi);
    }
    for (int32_t oy = top; oy < bottom; ++oy) {
        nlg_mve_dw_out_row(in, out, scratch, w, q, oy, 1, inplace, in_h, in_w, c, out_w, fh, fw, stride_h, stride_w, dil_h, dil_w,
                           pad_h, pad_w, in_zp, any_left, out_zp, lo, hi);
    }
#pragma GCC unroll 16
    for (int32_t oy = bottom; oy < out_h; ++oy) {
        nlg_mve_dw_out_row(in, out, scratch, w, q, oy, 0, inplace, in_h, in_w, c, out_w, fh, fw, stride_h, stride_w, dil_h, dil_w,
                           pad_h, pad_w, in_zp, any_left, out_zp, lo, hi);
    }
}

#endif /* __ARM_FEATURE_MVE */

#endif /* NLG_MVE_DEPTHWISE_H */
