/*
 * FULLY_CONNECTED body that nlpool's generator specialises per layer (literal sizes in the generated
 * call, as nlg_conv.h). out[b][o] = requant(bias'[o] + sum_k w[o][k] x[b][k]), the input offset
 * folded into bias' offline (nlg_quant_t), so the inner loop is a plain int8 dot product.
 *
 * A pass computes 2 pairs of output rows (the last pass of a layer with rows % 4 in 1..2 one pair; an
 * odd last row is paired with zero weights) over one input word at a time: the word is sign-extended
 * once (SXTB16: (x0, x2), (x1, x3)) and read by all four rows. Per pair and input word the weights are
 * two words laid out offline (codegen/fully_connected.py), word 0 for (x0, x2), word 1 for (x1, x3).
 *
 * Packed pairs (`packed`, where the generator proved it exact for the layer): each int16 half of a
 * weight word holds row o's weight in its low byte and row o+1's, minus 1 where o's is negative, in
 * its high byte, so the half read as an int16 is 256 w[o+1] + w[o]. One SMLAD of the raw word then
 * accumulates A = sum 256 w[o+1] x + w[o] x and one SMLAD of its SXTB16 B = sum w[o] x: row o is B,
 * row o+1 is (A - B) / 256, exact (in 32-bit wrapping arithmetic) while |sum w[o+1] x| < 2^23. That is
 * 8 instructions per pair for 8 multiply-adds (2 LDR, 2 SXTB16, 4 SMLAD) instead of 10.
 * Otherwise (`packed` 0) each weight word is 4 bytes of one row (word 0 row o, word 1 row o + 1, per
 * group of 4 inputs), sign-extended as SXTB16 (w0, w2), (w1, w3).
 *
 * An input length not a multiple of 4 ends with a word built from the last bytes (zeros after them;
 * the weights are zero-padded), so no byte past the input is read.
 */
#ifndef NLG_FC_H
#define NLG_FC_H

#include "nlg_simd.h"

/* One pair's 2 weight words (w[0], w[1]) against one sign-extended input word (x02, x13):
 * a += row o + 1's part (packed: the raw words' 256 w[o + 1] + w[o]), b += row o's. */
NLG_INLINE void nlg_fc_pair(uint32_t x02, uint32_t x13, const uint32_t *w, int32_t packed, int32_t *a, int32_t *b)
{
    if (packed) {
        *a = nlg_smlad(x02, w[0], *a);
        *a = nlg_smlad(x13, w[1], *a);
        *b = nlg_smlad(x02, nlg_sxtb16(w[0]), *b);
        *b = nlg_smlad(x13, nlg_sxtb16(w[1]), *b);
    } else {
        *b = nlg_smlad(x02, nlg_sxtb16(w[0]), *b);
        *b = nlg_smlad(x13, nlg_sxtb16_hi(w[0]), *b);
        *a = nlg_smlad(x02, nlg_sxtb16(w[1]), *a);
        *a = nlg_smlad(x13, nlg_sxtb16_hi(w[1]), *a);
    }
}

#if defined(__ARM_FEATURE_DSP)
/* The inner loop in assembly (GCC's allocator moved the four accumulators between registers on every
 * unrolled iteration: 45 instructions per 2 words and 2 pairs, 38 here incl. the loop's 2). One step:
 * an input word, sign-extended to x02 and (in place) x13, then each pair's two weight words by LDRD. */
#define NLG_FC_X "ldr %[v], [%[x]], #4\n\tsxtb16 %[x02], %[v]\n\tsxtb16 %[v], %[v], ror #8\n\t"
#define NLG_FC_PACKED(a, b)                                                                                               \
    "ldrd %[w0], %[w1], [%[w]], #8\n\tsmlad %[" a "], %[x02], %[w0], %[" a "]\n\tsxtb16 %[w0], %[w0]\n\t"                 \
    "smlad %[" b "], %[x02], %[w0], %[" b "]\n\tsmlad %[" a "], %[v], %[w1], %[" a "]\n\tsxtb16 %[w1], %[w1]\n\t"         \
    "smlad %[" b "], %[v], %[w1], %[" b "]\n\t"
#define NLG_FC_ROWS(a, b)                                                                                                 \
    "ldrd %[w0], %[w1], [%[w]], #8\n\tsxtb16 %[t], %[w0]\n\tsmlad %[" b "], %[x02], %[t], %[" b "]\n\t"                   \
    "sxtb16 %[w0], %[w0], ror #8\n\tsmlad %[" b "], %[v], %[w0], %[" b "]\n\tsxtb16 %[t], %[w1]\n\t"                      \
    "smlad %[" a "], %[x02], %[t], %[" a "]\n\tsxtb16 %[w1], %[w1], ror #8\n\tsmlad %[" a "], %[v], %[w1], %[" a "]\n\t"
#define NLG_FC_OPERANDS                                                                                                   \
    : [a0] "+r"(a0), [b0] "+r"(b0), [a1] "+r"(a1), [b1] "+r"(b1), [x] "+r"(x), [w] "+r"(w), [v] "=&r"(v),               \
      [x02] "=&r"(x02), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)                                                      \
    : [end] "r"(end)                                                                                                      \
    : "cc", "memory"
#define NLG_FC_LOOP(step) __asm__ volatile("1:\n\t" step step "cmp %[x], %[end]\n\tbne 1b" NLG_FC_OPERANDS)
#define NLG_FC_ONCE(step) __asm__ volatile(step NLG_FC_OPERANDS)
/* Three packed pairs: 13 registers (6 accumulators, no room for the unpacked layout's temporary). */
#define NLG_FC_STEP3 NLG_FC_X NLG_FC_PACKED("a0", "b0") NLG_FC_PACKED("a1", "b1") NLG_FC_PACKED("a2", "b2")
#define NLG_FC_OPERANDS3                                                                                                  \
    : [a0] "+r"(a0), [b0] "+r"(b0), [a1] "+r"(a1), [b1] "+r"(b1), [a2] "+r"(a2), [b2] "+r"(b2), [x] "+r"(x),             \
      [w] "+r"(w), [v] "=&r"(v), [x02] "=&r"(x02), [w0] "=&r"(w0), [w1] "=&r"(w1)                                          \
    : [end] "r"(end)                                                                                                      \
    : "cc", "memory"
#endif

/* One pass of `pairs` (1 to 3; 3 only packed) row pairs over the whole input: acc[] = rows o, o + 1, ... */
NLG_INLINE void nlg_fc_pass(const int8_t *x, const uint32_t *w, int32_t k, int32_t pairs, int32_t packed, int32_t *acc)
{
    int32_t a0 = 0, b0 = 0, a1 = 0, b1 = 0, a2 = 0, b2 = 0;
    const int32_t words = k / 4;
#if defined(__ARM_FEATURE_DSP)
    uint32_t v, x02, w0, w1, t;
    if (words >= 2) {
        const int8_t *const end = x + 8 * (words / 2);
        if (pairs == 3) {
            __asm__ volatile("1:\n\t" NLG_FC_STEP3 NLG_FC_STEP3 "cmp %[x], %[end]\n\tbne 1b" NLG_FC_OPERANDS3);
        } else if (pairs == 2 && packed) {
            NLG_FC_LOOP(NLG_FC_X NLG_FC_PACKED("a0", "b0") NLG_FC_PACKED("a1", "b1"));
        } else if (pairs == 2) {
            NLG_FC_LOOP(NLG_FC_X NLG_FC_ROWS("a0", "b0") NLG_FC_ROWS("a1", "b1"));
        } else if (packed) {
            NLG_FC_LOOP(NLG_FC_X NLG_FC_PACKED("a0", "b0"));
        } else {
            NLG_FC_LOOP(NLG_FC_X NLG_FC_ROWS("a0", "b0"));
        }
    }
    if (words & 1) {
        const int8_t *const end = x;
        if (pairs == 3) {
            __asm__ volatile(NLG_FC_STEP3 NLG_FC_OPERANDS3);
        } else if (pairs == 2 && packed) {
            NLG_FC_ONCE(NLG_FC_X NLG_FC_PACKED("a0", "b0") NLG_FC_PACKED("a1", "b1"));
        } else if (pairs == 2) {
            NLG_FC_ONCE(NLG_FC_X NLG_FC_ROWS("a0", "b0") NLG_FC_ROWS("a1", "b1"));
        } else if (packed) {
            NLG_FC_ONCE(NLG_FC_X NLG_FC_PACKED("a0", "b0"));
        } else {
            NLG_FC_ONCE(NLG_FC_X NLG_FC_ROWS("a0", "b0"));
        }
    }
#else
    for (int32_t g = 0; g < words; ++g, x += 4, w += 2 * pairs) {
        const uint32_t v = nlg_ld32(x);
        nlg_fc_pair(nlg_sxtb16(v), nlg_sxtb16_hi(v), w, packed, &a0, &b0);
        if (pairs >= 2) {
            nlg_fc_pair(nlg_sxtb16(v), nlg_sxtb16_hi(v), w + 2, packed, &a1, &b1);
        }
        if (pairs == 3) {
            nlg_fc_pair(nlg_sxtb16(v), nlg_sxtb16_hi(v), w + 4, packed, &a2, &b2);
        }
    }
#endif
    if (k & 3) { /* the last bytes, zeros after them (their weights are zero too) */
        uint32_t last = 0;
        memcpy(&last, x, (size_t)(k & 3));
        nlg_fc_pair(nlg_sxtb16(last), nlg_sxtb16_hi(last), w, packed, &a0, &b0);
        if (pairs >= 2) {
            nlg_fc_pair(nlg_sxtb16(last), nlg_sxtb16_hi(last), w + 2, packed, &a1, &b1);
        }
        if (pairs == 3) {
            nlg_fc_pair(nlg_sxtb16(last), nlg_sxtb16_hi(last), w + 4, packed, &a2, &b2);
        }
    }
    acc[0] = b0;
    acc[1] = packed ? (int32_t)((uint32_t)a0 - (uint32_t)b0) >> 8 : a0;
    acc[2] = b1;
    acc[3] = packed ? (int32_t)((uint32_t)a1 - (uint32_t)b1) >> 8 : a1;
    acc[4] = b2;
    acc[5] = packed ? (int32_t)((uint32_t)a2 - (uint32_t)b2) >> 8 : a2;
}

/* Rows o .. o + n - 1 (n <= 6) from one pass of ceil(n / 2) pairs. */
NLG_INLINE void nlg_fc_rows(const int8_t *x, int8_t *y, const uint32_t *w, const nlg_quant_t *q, int32_t k, int32_t n,
                            int32_t packed, int32_t fast, int32_t out_zp, int32_t lo, int32_t hi)
{
    int32_t acc[6];
    nlg_fc_pass(x, w, k, (n + 1) / 2, packed, acc);
    for (int32_t r = 0; r < n; ++r) {
        y[r] = (int8_t)nlg_requant(q[r].bias + acc[r], q + r, fast, out_zp, lo, hi);
    }
}

/* rows: the output length; k: the input length, kw = ceil(k / 4) words; w: ceil(rows / 2) pairs' words in
 * passes of `group` pairs (3 where packed, else 2), the last pass of the pairs left. */
NLG_INLINE void nlg_fc(const int8_t *in, int8_t *out, const uint32_t *w, const nlg_quant_t *q, int32_t batches, int32_t k,
                       int32_t kw, int32_t rows, int32_t group, int32_t packed, int32_t fast, int32_t out_zp, int32_t lo,
                       int32_t hi)
{
    const int32_t step = 2 * group, full = rows / step * step, rest = rows - full;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *x = in + b * k;
        int8_t *y = out + b * rows;
        for (int32_t o = 0; o < full; o += step) {
            nlg_fc_rows(x, y + o, w + o * kw, q + o, k, step, packed, fast, out_zp, lo, hi);
        }
        if (rest) {
            nlg_fc_rows(x, y + full, w + full * kw, q + full, k, rest, packed, fast, out_zp, lo, hi);
        }
    }
}

#endif /* NLG_FC_H */
