/*
 * CONV_2D body that nlpool's generator specialises per layer: every argument after the pointers is
 * a literal in the generated call, so the compiler folds loop bounds, strides and offsets (an
 * always-inline template, one instance per layer in nl_generated.c).
 *
 * Layout prepared offline (firmware/aot/codegen/conv.py):
 * - weights: output channels in pairs (an odd last channel paired with zeros); per pair, K padded to
 *   KP (a multiple of 4, zero weights) and read in groups of 4: 4 bytes of channel o, 4 of o + 1.
 * - quant: nlg_quant_t per channel, the input offset folded into the bias, so the inner loop is a
 *   plain dot product and a padded tap is the input zero point (it then adds w * (zp + off) = 0).
 *
 * The tile is 2 output pixels x 2 output channels: 4 accumulators, each 32-bit weight word feeds 4
 * SMLADs. Two input paths:
 * - direct (1x1, no padding, in_c % 4 == 0): both pixels' input words are sign-extended in the loop;
 * - im2col (anything else): the two pixels' windows are first copied to int16 columns in the
 *   scratch (2 x KP halves, interleaved per group of 4), padded taps as the zero point, each group
 *   stored as (x0, x2, x1, x3) so SXTB16 of a weight word lines up with them.
 */
#ifndef NLG_CONV_H
#define NLG_CONV_H

#include "nlg_simd.h"

/* The assembly needs 14 free registers: an unoptimised build (-O0) keeps r7 as its frame pointer, and
 * takes the C loop. */
#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
#define NLG_MAC_ASM 1
#else
#define NLG_MAC_ASM 0
#endif

#if NLG_MAC_ASM
/* The 2 x 2 tile's multiply-adds once both pixels' words (x0a/x0b, x1a/x1b: taps 0, 2 and 1, 3 as int16
 * pairs) and both channels' weight words (wa, wb) are loaded: 4 SXTB16 and 8 SMLAD. */
#define NLG_MAC_TILE                                    \
    "sxtb16 %[t], %[wa]\n\t"                           \
    "sxtb16 %[wa], %[wa], ror #8\n\t"                  \
    "smlad %[a0], %[x0a], %[t], %[a0]\n\t"             \
    "smlad %[a1], %[x1a], %[t], %[a1]\n\t"             \
    "smlad %[a0], %[x0b], %[wa], %[a0]\n\t"            \
    "smlad %[a1], %[x1b], %[wa], %[a1]\n\t"            \
    "sxtb16 %[t], %[wb]\n\t"                           \
    "sxtb16 %[wb], %[wb], ror #8\n\t"                  \
    "smlad %[a2], %[x0a], %[t], %[a2]\n\t"             \
    "smlad %[a3], %[x1a], %[t], %[a3]\n\t"             \
    "smlad %[a2], %[x0b], %[wb], %[a2]\n\t"            \
    "smlad %[a3], %[x1b], %[wb], %[a3]\n\t"

/* One group of 4 taps of the 2 x 2 tile: both pixels' column words and both channels' weight words
 * as one LDRD each, then NLG_MAC_TILE. */
#define NLG_MAC_GROUP                                   \
    "ldrd %[x0a], %[x0b], [%[c]], #8\n\t"              \
    "ldrd %[x1a], %[x1b], [%[c]], #8\n\t"              \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"                \
    NLG_MAC_TILE

/* The registers of the 2 x 2 tile's assembly: accumulators, pointers, column and weight words. */
#define NLG_MAC_OPERANDS                                                                                                 \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [c] "+r"(c), [w] "+r"(w), [x0a] "=&r"(x0a),              \
        [x0b] "=&r"(x0b), [x1a] "=&r"(x1a), [x1b] "=&r"(x1b), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)

/*
 * The 2 x 2 tile's dot products in assembly: 4 accumulators, 4 column words, 2 weight words and one
 * temporary, plus 3 pointers, are the 14 registers a Cortex-M core has; GCC's own allocation spilled
 * accumulators to the stack in every group. Four groups per loop iteration (the count's remainder
 * mod 4 before the loop: `groups` is a literal, so only the blocks it needs are compiled). The
 * columns lie in the op's scratch (the arena's slots are 16-byte aligned) and the weights in
 * 4-aligned arrays, 8 bytes a group: LDRD's word alignment holds.
 */
NLG_INLINE void nlg_mac_cols2(const int16_t *c, const int8_t *w, int32_t groups, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t x0a, x0b, x1a, x1b, wa, wb, t;
    if (groups & 1) {
        __asm__(NLG_MAC_GROUP : NLG_MAC_OPERANDS : : "memory");
    }
    if (groups & 2) {
        __asm__(NLG_MAC_GROUP NLG_MAC_GROUP : NLG_MAC_OPERANDS : : "memory");
    }
    if (groups >= 4) {
        const int8_t *end = w + 8 * (groups & ~3);
        __asm__("1:\n\t" NLG_MAC_GROUP NLG_MAC_GROUP NLG_MAC_GROUP NLG_MAC_GROUP
                "cmp %[w], %[end]\n\t"
                "bne 1b\n\t"
                : NLG_MAC_OPERANDS
                : [end] "r"(end)
                : "cc", "memory");
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* One group of 4 input channels of the direct (1x1) tile: each pixel's input word (pixel 1 `step`
 * bytes on, an immediate offset) split by SXTB16 in place, then the weights as in NLG_MAC_GROUP. */
#define NLG_MAC_DIRECT_GROUP                            \
    "ldr %[x1a], [%[c], %[step]]\n\t"                  \
    "ldr %[x0a], [%[c]], #4\n\t"                       \
    "ldrd %[wa], %[wb], [%[w]], #8\n\t"                \
    "sxtb16 %[x0b], %[x0a], ror #8\n\t"                \
    "sxtb16 %[x0a], %[x0a]\n\t"                        \
    "sxtb16 %[x1b], %[x1a], ror #8\n\t"                \
    "sxtb16 %[x1a], %[x1a]\n\t"                        \
    NLG_MAC_TILE

/* The direct path's 2 x 2 tile in assembly, as nlg_mac_cols2 but over the input words in place.
 * `step` (the second pixel's offset, a literal) must fit a load's 12-bit immediate. */
NLG_INLINE void nlg_mac_direct2(const int8_t *c, int32_t step, const int8_t *w, int32_t groups, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t x0a, x0b, x1a, x1b, wa, wb, t;
    if (groups & 1) {
        __asm__(NLG_MAC_DIRECT_GROUP : NLG_MAC_OPERANDS : [step] "i"(step) : "memory");
    }
    if (groups & 2) {
        __asm__(NLG_MAC_DIRECT_GROUP NLG_MAC_DIRECT_GROUP : NLG_MAC_OPERANDS : [step] "i"(step) : "memory");
    }
    if (groups >= 4) {
        const int8_t *end = w + 8 * (groups & ~3);
        __asm__("1:\n\t" NLG_MAC_DIRECT_GROUP NLG_MAC_DIRECT_GROUP NLG_MAC_DIRECT_GROUP NLG_MAC_DIRECT_GROUP
                "cmp %[w], %[end]\n\t"
                "bne 1b\n\t"
                : NLG_MAC_OPERANDS
                : [end] "r"(end), [step] "i"(step)
                : "cc", "memory");
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
#endif

/* acc[0..3] = (pixel 0, ch o), (pixel 1, ch o), (pixel 0, ch o+1), (pixel 1, ch o+1) over KP/4 groups
 * of the int16 columns, interleaved per group: 4 halves of pixel 0, then 4 of pixel 1. */
NLG_INLINE void nlg_mac_cols(const int16_t *c, const int8_t *w, int32_t kp, int32_t *acc, int32_t pixels)
{
#if NLG_MAC_ASM
    if (pixels == 2) {
        nlg_mac_cols2(c, w, kp / 4, acc);
        return;
    }
#endif
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#pragma GCC unroll 4
    for (int32_t g = 0; g < kp / 4; ++g) {
        const uint32_t x0a = nlg_ld32(c), x0b = nlg_ld32(c + 2);
        uint32_t wl = nlg_ld32(w);
        uint32_t wh = nlg_sxtb16_hi(wl);
        wl = nlg_sxtb16(wl);
        a0 = nlg_smlad(x0a, wl, a0);
        a0 = nlg_smlad(x0b, wh, a0);
        if (pixels == 2) {
            const uint32_t x1a = nlg_ld32(c + 4), x1b = nlg_ld32(c + 6);
            a1 = nlg_smlad(x1a, wl, a1);
            a1 = nlg_smlad(x1b, wh, a1);
            wl = nlg_ld32(w + 4);
            wh = nlg_sxtb16_hi(wl);
            wl = nlg_sxtb16(wl);
            a3 = nlg_smlad(x1a, wl, a3);
            a3 = nlg_smlad(x1b, wh, a3);
        } else {
            wl = nlg_ld32(w + 4);
            wh = nlg_sxtb16_hi(wl);
            wl = nlg_sxtb16(wl);
        }
        a2 = nlg_smlad(x0a, wl, a2);
        a2 = nlg_smlad(x0b, wh, a2);
        c += 8;
        w += 8;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* The same over int8 input words read in place (direct path): x1 = x0 + x_step bytes. */
NLG_INLINE void nlg_mac_direct(const int8_t *x0, int32_t x_step, const int8_t *w, int32_t k, int32_t *acc, int32_t pixels)
{
#if NLG_MAC_ASM
    if (pixels == 2 && x_step > 0 && x_step < 4096) {
        nlg_mac_direct2(x0, x_step, w, k / 4, acc);
        return;
    }
#endif
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t g = 0; g < k / 4; ++g) {
        const uint32_t xa = nlg_ld32(x0);
        const uint32_t x0a = nlg_sxtb16(xa), x0b = nlg_sxtb16_hi(xa);
        const uint32_t wa = nlg_ld32(w), wb = nlg_ld32(w + 4);
        const uint32_t wa02 = nlg_sxtb16(wa), wa13 = nlg_sxtb16_hi(wa);
        a0 = nlg_smlad(x0a, wa02, a0);
        a0 = nlg_smlad(x0b, wa13, a0);
        if (pixels == 2) {
            const uint32_t xb = nlg_ld32(x0 + x_step);
            const uint32_t x1a = nlg_sxtb16(xb), x1b = nlg_sxtb16_hi(xb);
            a1 = nlg_smlad(x1a, wa02, a1);
            a1 = nlg_smlad(x1b, wa13, a1);
            const uint32_t wb02 = nlg_sxtb16(wb), wb13 = nlg_sxtb16_hi(wb);
            a2 = nlg_smlad(x0a, wb02, a2);
            a2 = nlg_smlad(x0b, wb13, a2);
            a3 = nlg_smlad(x1a, wb02, a3);
            a3 = nlg_smlad(x1b, wb13, a3);
        } else {
            const uint32_t wb02 = nlg_sxtb16(wb), wb13 = nlg_sxtb16_hi(wb);
            a2 = nlg_smlad(x0a, wb02, a2);
            a2 = nlg_smlad(x0b, wb13, a2);
        }
        x0 += 4;
        w += 8;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* Where element n of the K order goes: group n / 4 (8 halves apart: the other pixel's group is in
 * between), slot (0, 2, 1, 3)[n % 4], as SXTB16 of a weight word lines up with them. */
NLG_INLINE int32_t nlg_slot(int32_t n) { return (n >> 2) * 8 + ((n & 1) << 1) + ((n >> 1) & 1); }

/*
 * One pixel's window as KP int16 halves from col. The K order (the weights are laid out offline in
 * it, codegen/conv.py) takes each window row's fw * in_c bytes, which are contiguous in the input: its
 * first W = 4 floor(fw in_c / 4) as words, row after row, then the other T = fw in_c - W of every
 * row, then zeros up to KP. A window inside the input (dilation 1 along the row) is copied a word at
 * a time; one that touches the padding tap by tap, a word at a time where in_c % 4 == 0 (else element
 * by element), outside taps as the zero point.
 */
NLG_INLINE void nlg_im2col(const int8_t *in, int16_t *col, int32_t iy0, int32_t ix0, int32_t in_h, int32_t in_w,
                           int32_t in_c, int32_t fh, int32_t fw, int32_t dil_h, int32_t dil_w, int32_t kp, int32_t zp)
{
    const int32_t row = fw * in_c, words = row & ~3, tail = row - words;
    const int inside = iy0 >= 0 && iy0 + (fh - 1) * dil_h < in_h && ix0 >= 0 && ix0 + (fw - 1) * dil_w < in_w;
    if (inside && (dil_w == 1 || fw == 1)) {
        for (int32_t fy = 0; fy < fh; ++fy) {
            const int8_t *x = in + ((iy0 + fy * dil_h) * in_w + ix0) * in_c;
            int16_t *g = col + fy * words * 2;
            for (int32_t j = 0; j < words; j += 4, g += 8) {
                const uint32_t v = nlg_ld32(x + j);
                nlg_st32(g, nlg_sxtb16(v));
                nlg_st32(g + 2, nlg_sxtb16_hi(v));
            }
            for (int32_t t = 0; t < tail; ++t) {
                col[nlg_slot(fh * words + fy * tail + t)] = x[words + t];
            }
        }
    } else if (in_c % 4 == 0) {
        /* whole words per tap (the K order is then (fy, fx, c)): the input's, or the zero point's */
        const uint32_t zp2 = (uint32_t)(uint16_t)zp * 0x00010001u;
        for (int32_t fy = 0; fy < fh; ++fy) {
            const int32_t iy = iy0 + fy * dil_h;
            for (int32_t fx = 0; fx < fw; ++fx) {
                const int32_t ix = ix0 + fx * dil_w;
                const int8_t *x = in + (iy * in_w + ix) * in_c;
                int16_t *g = col + (fy * row + fx * in_c) * 2;
                if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                    for (int32_t c = 0; c < in_c; c += 4, g += 8) {
                        const uint32_t v = nlg_ld32(x + c);
                        nlg_st32(g, nlg_sxtb16(v));
                        nlg_st32(g + 2, nlg_sxtb16_hi(v));
                    }
                } else {
                    for (int32_t c = 0; c < in_c; c += 4, g += 8) {
                        nlg_st32(g, zp2);
                        nlg_st32(g + 2, zp2);
                    }
                }
            }
        }
    } else {
        for (int32_t fy = 0; fy < fh; ++fy) {
            const int32_t iy = iy0 + fy * dil_h;
            for (int32_t fx = 0; fx < fw; ++fx) {
                const int32_t ix = ix0 + fx * dil_w;
                const int tap_inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
                const int8_t *x = in + (iy * in_w + ix) * in_c;
                for (int32_t c = 0; c < in_c; ++c) {
                    const int32_t r = fx * in_c + c;
                    const int32_t n = r < words ? fy * words + r : fh * words + fy * tail + (r - words);
                    col[nlg_slot(n)] = tap_inside ? x[c] : (int16_t)zp;
                }
            }
        }
    }
    for (int32_t n = fh * row; n < kp; ++n) {
        col[nlg_slot(n)] = 0;
    }
}

/* The live channels o, o + 1 (of n_live) of 1 or 2 pixels; idx (0: the identity) gives each one's place. */
NLG_INLINE void nlg_store(int8_t *y, const uint8_t *idx, int32_t out_c, int32_t n_live, int32_t o, const int32_t *acc,
                          const nlg_quant_t *q, int32_t pixels, int32_t fast, int32_t zp, int32_t lo, int32_t hi)
{
    /* copies: a byte store may alias the table, so reading it through q would reload it after each */
    const nlg_quant_t q0 = q[0], q1 = q[1];
    const int32_t c0 = idx ? idx[o] : o;
    const int32_t y0 = nlg_requant(acc[0], &q0, fast, zp, lo, hi);
    const int32_t y1 = pixels == 2 ? nlg_requant(acc[1], &q0, fast, zp, lo, hi) : 0;
    y[c0] = (int8_t)y0;
    if (pixels == 2) {
        y[out_c + c0] = (int8_t)y1;
    }
    if (o + 1 < n_live) {
        const int32_t y2 = nlg_requant(acc[2], &q1, fast, zp, lo, hi);
        const int32_t y3 = pixels == 2 ? nlg_requant(acc[3], &q1, fast, zp, lo, hi) : 0;
        const int32_t c1 = idx ? idx[o + 1] : o + 1;
        y[c1] = (int8_t)y2;
        if (pixels == 2) {
            y[out_c + c1] = (int8_t)y3;
        }
    }
}

/* `pixels` (1 or 2) output pixels at y, whose windows start at (iy0, ix0) and (iy0, ix0 + stride_w). */
NLG_INLINE void nlg_conv_pixels(const int8_t *in, int8_t *y, int16_t *cols, const int8_t *w, const nlg_quant_t *q,
                                const int8_t *fill, const uint8_t *idx, int32_t n_live, int32_t iy0, int32_t ix0,
                                int32_t pixels, int32_t direct, int32_t in_h, int32_t in_w, int32_t in_c, int32_t out_c,
                                int32_t fh, int32_t fw, int32_t stride_w, int32_t dil_h, int32_t dil_w, int32_t kp,
                                int32_t fast, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi)
{
    const int8_t *x0 = in + (iy0 * in_w + ix0) * in_c;
    if (fill) {
        nlg_fill(y, fill, out_c);
        if (pixels == 2) {
            nlg_fill(y + out_c, fill, out_c);
        }
    }
    if (!direct) {
        nlg_im2col(in, cols, iy0, ix0, in_h, in_w, in_c, fh, fw, dil_h, dil_w, kp, in_zp);
        if (pixels == 2) {
            nlg_im2col(in, cols + 4, iy0, ix0 + stride_w, in_h, in_w, in_c, fh, fw, dil_h, dil_w, kp, in_zp);
        }
    }
    for (int32_t o = 0; o < n_live; o += 2, w += 2 * kp, q += 2) {
        int32_t acc[4] = {q[0].bias, q[0].bias, q[1].bias, q[1].bias};
        if (direct) {
            nlg_mac_direct(x0, stride_w * in_c, w, kp, acc, pixels);
        } else {
            nlg_mac_cols(cols, w, kp, acc, pixels);
        }
        nlg_store(y, idx, out_c, n_live, o, acc, q, pixels, fast, out_zp, lo, hi);
    }
}

/* fill: the constant channels' row (0: none), idx: where each of the n_live computed channels goes (0: in order). */
NLG_INLINE void nlg_conv(const int8_t *in, int8_t *out, int8_t *scratch, const int8_t *w, const nlg_quant_t *q,
                         const int8_t *fill, const uint8_t *idx, int32_t n_live, int32_t direct, int32_t in_h, int32_t in_w,
                         int32_t in_c, int32_t out_h, int32_t out_w, int32_t out_c, int32_t fh, int32_t fw, int32_t stride_h,
                         int32_t stride_w, int32_t dil_h, int32_t dil_w, int32_t pad_h, int32_t pad_w, int32_t kp, int32_t fast,
                         int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi)
{
    int16_t *cols = (int16_t *)(void *)scratch;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        int8_t *y = out + oy * out_w * out_c;
        int32_t ox = 0;
        for (; ox + 2 <= out_w; ox += 2, y += 2 * out_c) {
            nlg_conv_pixels(in, y, cols, w, q, fill, idx, n_live, iy0, ox * stride_w - pad_w, 2, direct, in_h, in_w, in_c,
                            out_c, fh, fw, stride_w, dil_h, dil_w, kp, fast, in_zp, out_zp, lo, hi);
        }
        if (ox < out_w) {
            nlg_conv_pixels(in, y, cols, w, q, fill, idx, n_live, iy0, ox * stride_w - pad_w, 1, direct, in_h, in_w, in_c,
                            out_c, fh, fw, stride_w, dil_h, dil_w, kp, fast, in_zp, out_zp, lo, hi);
        }
    }
}

#endif /* NLG_CONV_H */
