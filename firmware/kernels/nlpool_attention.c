/*
 * Integer evaluation of NLPOOL_ATTENTION exactly as export/golden.py's attention() computes it,
 * streamed one query row at a time (docs/custom_op.md). The softmax is TFLite's reference int8
 * SOFTMAX in gemmlowp fixed point (what TFLM runs too): nlpool_fixedpoint.h's nl_softmax_row, which
 * softmax.c calls too. The unfused graph's bytes depend on it. Its exps come from a Prepare-time
 * table (nlpool.core.fixedpoint.softmax_exp_table: the value the reference evaluates per score).
 */
#include "nlpool_attention.h"

#include "nlpool_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
#elif defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#include <string.h>
#endif

enum { ADD_LEFT_SHIFT = 20 };


/* --- int8 products with zero-point offsets: the hot loops of the op -------------------------------
 *
 * Every product of the op is (a + a_off) * (b + b_off) summed in int32. The SIMD paths add the
 * offset in 16-bit lanes (an int8 plus an offset in [OFFSET_MIN, OFFSET_MAX] cannot leave int16)
 * and multiply-accumulate exactly in 32 bits, so they give the portable sums bit for bit. The
 * offsets are negated int8 zero points, well inside that range; lanes_fit() checks it once per
 * call so that any other value still takes the portable loops, never a wrapped lane.
 */
enum { OFFSET_MIN = -32768 + 128, OFFSET_MAX = 32767 - 127 };

static int offset_fits(int32_t off) { return off >= OFFSET_MIN && off <= OFFSET_MAX; }

static int lanes_fit(const nlpool_attention_params_t *p)
{
    return offset_fits(p->qkv_input_offset) && offset_fits(p->qkv_filter_offset) &&
           offset_fits(p->score_lhs_offset) && offset_fits(p->score_rhs_offset) &&
           offset_fits(p->mix_lhs_offset) && offset_fits(p->mix_rhs_offset) &&
           offset_fits(p->out_input_offset) && offset_fits(p->out_filter_offset);
}

/* sum_k (a[k] + a_off) * (b[k] + b_off) over len contiguous values, the portable way. */
static int32_t dot_c(const int8_t *a, int32_t a_off, const int8_t *b, int32_t b_off, int32_t len)
{
    int32_t acc = 0;
    for (int32_t k = 0; k < len; ++k) {
        acc += ((int32_t)a[k] + a_off) * ((int32_t)b[k] + b_off);
    }
    return acc;
}

#if defined(__ARM_FEATURE_MVE)

/* Eight lanes at a time: int8 widened to int16 on load, offset added in int16, and one
 * multiply-accumulate-across-vector into the int32 sum; the tail is a predicated (shorter) vector. */
static inline int32_t dot_simd(const int8_t *a, int32_t a_off, const int8_t *b, int32_t b_off, int32_t len)
{
    int32_t acc = 0;
    for (; len > 0; len -= 8, a += 8, b += 8) {
        const mve_pred16_t lanes = vctp16q((uint32_t)len);
        const int16x8_t va = vaddq_n_s16(vldrbq_z_s16(a, lanes), (int16_t)a_off);
        const int16x8_t vb = vaddq_n_s16(vldrbq_z_s16(b, lanes), (int16_t)b_off);
        acc = vmladavaq_p_s16(acc, va, vb, lanes);
    }
    return acc;
}

#elif defined(__ARM_FEATURE_DSP)

/* Four int8 as one word (an unaligned LDR on these cores; memcpy says so portably). */
static uint32_t load4(const int8_t *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Both offsets in both halfwords, for SXTAB16. */
static uint32_t offset_pair(int32_t off) { return ((uint32_t)off & 0xFFFFu) * 0x10001u; }

/* Bytes 0 and 2 of w plus the offset pair, as two int16 lanes; bytes 1 and 3 with w rotated by 8. */
static int32_t lanes02(uint32_t w, uint32_t off2) { return __sxtab16((int32_t)off2, (int32_t)w); }
static int32_t lanes13(uint32_t w, uint32_t off2) { return __sxtab16((int32_t)off2, (int32_t)((w >> 8) | (w << 24))); }

/* Four products per step as two dual 16-bit multiply-accumulates (SMLAD); the tail is scalar. */
static inline int32_t dot_simd(const int8_t *a, int32_t a_off, const int8_t *b, int32_t b_off, int32_t len)
{
    const uint32_t a2 = offset_pair(a_off), b2 = offset_pair(b_off);
    int32_t acc = 0;
    int32_t k = 0;
    for (; k + 4 <= len; k += 4) {
        const uint32_t wa = load4(a + k), wb = load4(b + k);
        acc = __smlad(lanes02(wa, a2), lanes02(wb, b2), acc);
        acc = __smlad(lanes13(wa, a2), lanes13(wb, b2), acc);
    }
    return acc + dot_c(a + k, a_off, b + k, b_off, len - k);
}

#endif

#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FEATURE_DSP)
static inline int32_t dot(int simd, const int8_t *a, int32_t a_off, const int8_t *b, int32_t b_off, int32_t len)
{
    return simd ? dot_simd(a, a_off, b, b_off, len) : dot_c(a, a_off, b, b_off, len);
}
#else
static inline int32_t dot(int simd, const int8_t *a, int32_t a_off, const int8_t *b, int32_t b_off, int32_t len)
{
    (void)simd;
    return dot_c(a, a_off, b, b_off, len);
}
#endif

/*
 * Single rounding, (x * multiplier + 2^(30 - shift)) >> (31 - shift): the host TFLite interpreter's
 * FULLY_CONNECTED (docs/rounding.md). Only fc_double_rounding = 0 uses it; nlpool's exports set 1, the
 * double rounding (nl_mbqm) of kernels/fully_connected.c and upstream TFLM.
 */
static int32_t mbqm_single(int32_t x, int32_t multiplier, int32_t shift)
{
    const int total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total_shift);
}

/* The requantisation of FULLY_CONNECTED: rounded twice (TFLM, nlpool's exports) or once (TFLite interpreter). */
static int32_t fc_requantize(const nlpool_attention_params_t *p, int32_t acc, int32_t m, int32_t s)
{
    return p->fc_double_rounding ? nl_mbqm(acc, m, s) : mbqm_single(acc, m, s);
}

/* One int8 ADD or MUL of x with a constant c (TFLite reference arithmetic, no activation). */
static int8_t apply_step(const int32_t *r, int32_t x, int32_t c)
{
    const int32_t xv = x + r[1];
    const int32_t cv = c + r[2];
    int32_t total;
    if (r[0] == NLPOOL_STEP_ADD) {
        total = nl_mbqm(xv * (1 << ADD_LEFT_SHIFT), r[3], r[4]) + nl_mbqm(cv * (1 << ADD_LEFT_SHIFT), r[5], r[6]);
    } else {
        total = xv * cv;
    }
    return nl_sat_i8(nl_mbqm(total, r[7], r[8]) + r[9]);
}

/*
 * Row x (E values) through the projection's columns [column, column + E) and the branch's steps,
 * into dst (E values): each column is independent, so only this branch's third is computed.
 */
static void project_branch(const nlpool_attention_params_t *p, int simd, const int8_t *x, int32_t column,
                           int32_t step_count, const int32_t *steps, const int8_t *consts, int8_t *dst)
{
    const int32_t e = p->width;
    for (int32_t j = 0; j < e; ++j) {
        const int32_t o = column + j;
        const int8_t *w = p->qkv_weights + o * e;
        int32_t acc = dot(simd, w, p->qkv_filter_offset, x, p->qkv_input_offset, e);
        if (p->qkv_bias) {
            acc += p->qkv_bias[o];
        }
        int8_t v = nl_sat_i8(fc_requantize(p, acc, p->qkv_multiplier[o], p->qkv_shift[o]) + p->qkv_output_offset);
        for (int32_t s = 0; s < step_count; ++s) {
            v = apply_step(steps + s * NLPOOL_STEP_FIELDS, v, consts[s * e + j]);
        }
        dst[j] = v;
    }
}

/* Token n's row after the positional ADD, in row (or the input row itself without a table). */
static const int8_t *token_row(const nlpool_attention_params_t *p, const int8_t *tokens, int32_t n, int8_t *row)
{
    const int32_t e = p->width;
    const int8_t *x = tokens + n * e;
    if (!p->pos_table) {
        return x;
    }
    for (int32_t j = 0; j < e; ++j) {
        row[j] = apply_step(p->pos_step, x[j], p->pos_table[n * e + j]);
    }
    return row;
}

/* --- scores ------------------------------------------------------------------------------------- */

/* One score: the requantised product of the query's head with one key's. */
static int8_t score_of(const nlpool_attention_params_t *p, int32_t acc)
{
    return nl_sat_i8(nl_mbqm(acc, p->score_multiplier, p->score_shift) + p->score_output_offset);
}

#if defined(__ARM_FEATURE_MVE)
/*
 * nl_mbqm on four lanes, for right shifts > 0 (the caller takes the others). VQRDMULH is gemmlowp's
 * SRDHM exactly: floor((a b + 2^30) / 2^31), saturating the one overflow. VRSHL by -right rounds
 * half up, (x + 2^(right-1)) >> right without overflow; rounding half away from zero is that of
 * x - 1 for negative x (saturating: INT32_MIN has no remainder, so it stays exact).
 */
static int32x4_t mbqm_x4(int32x4_t x, int32_t multiplier, int32_t left, int32_t right)
{
    const int32x4_t high = vqrdmulhq_n_s32(vshlq_r_s32(x, left), multiplier);
    return vrshlq_n_s32(vqaddq_s32(high, vshrq_n_s32(high, 31)), -right);
}
#endif

/*
 * scores[m] for every key m: the head's query (qh, head_dim values) against each key's head
 * (k, rows E apart). The query is the same for every key, so the SIMD paths widen it once: DSP keeps
 * its int16 lanes in registers; MVE turns the loop round and takes four keys per vector (a gather
 * of one column of four key rows per step), requantised four at a time.
 */
static void score_row(const nlpool_attention_params_t *p, int simd, const int8_t *qh, const int8_t *k, int8_t *scores)
{
    const int32_t n_tok = p->tokens, e = p->width, d_n = p->head_dim;
    int32_t m = 0;
#if defined(__ARM_FEATURE_MVE)
    const int32_t left = p->score_shift > 0 ? p->score_shift : 0;
    const int32_t right = p->score_shift > 0 ? 0 : -p->score_shift;
    if (simd && right > 0) {
        const uint32_t rows[4] = {0u, (uint32_t)e, 2u * (uint32_t)e, 3u * (uint32_t)e};
        const uint32x4_t offsets = vld1q_u32(rows);
        for (; m < n_tok; m += 4) {
            const mve_pred16_t keys = vctp32q((uint32_t)(n_tok - m));
            int32x4_t acc = vdupq_n_s32(0);
            for (int32_t d = 0; d < d_n; ++d) {
                const int32x4_t kd = vldrbq_gather_offset_z_s32(k + m * e + d, offsets, keys);
                acc = vmlaq_n_s32(acc, vaddq_n_s32(kd, p->score_rhs_offset), (int32_t)qh[d] + p->score_lhs_offset);
            }
            int32x4_t y = vaddq_n_s32(mbqm_x4(acc, p->score_multiplier, left, right), p->score_output_offset);
            y = vminq_s32(vmaxq_s32(y, vdupq_n_s32(-128)), vdupq_n_s32(127));
            vstrbq_p_s32(scores + m, y, keys);
        }
        return;
    }
#elif defined(__ARM_FEATURE_DSP)
    enum { MAX_WORDS = 4 }; /* heads of up to 16 values keep the widened query in registers */
    if (simd && d_n % 4 == 0 && d_n <= 4 * MAX_WORDS) {
        const uint32_t lhs2 = offset_pair(p->score_lhs_offset), rhs2 = offset_pair(p->score_rhs_offset);
        int32_t q02[MAX_WORDS], q13[MAX_WORDS];
        const int32_t words = d_n / 4;
        for (int32_t c = 0; c < words; ++c) {
            const uint32_t w = load4(qh + 4 * c);
            q02[c] = lanes02(w, lhs2);
            q13[c] = lanes13(w, lhs2);
        }
        for (; m < n_tok; ++m) {
            const int8_t *km = k + m * e;
            int32_t acc = 0;
            for (int32_t c = 0; c < words; ++c) {
                const uint32_t w = load4(km + 4 * c);
                acc = __smlad(q02[c], lanes02(w, rhs2), acc);
                acc = __smlad(q13[c], lanes13(w, rhs2), acc);
            }
            scores[m] = score_of(p, acc);
        }
        return;
    }
#endif
    for (; m < n_tok; ++m) {
        scores[m] = score_of(p, dot(simd, qh, p->score_lhs_offset, k + m * e, p->score_rhs_offset, d_n));
    }
}

/* One value of the weighted sum: sum_m (scores[m] + lhs) * (v[m * E] + rhs), v strided by E. */
static int32_t mix_one_c(const nlpool_attention_params_t *p, const int8_t *scores, const int8_t *v)
{
    int32_t acc = 0;
    for (int32_t m = 0; m < p->tokens; ++m) {
        acc += ((int32_t)scores[m] + p->mix_lhs_offset) * ((int32_t)v[m * p->width] + p->mix_rhs_offset);
    }
    return acc;
}

/*
 * One head's weighted sum of values: mixed[d] for d < head_dim, from the softmaxed score row and
 * V's columns of the head (v = v_all + h * head_dim, rows E apart). V's column is strided, so the
 * SIMD paths turn the loops round: four adjacent columns of one V row are one 32-bit load, each
 * times the same score, into four accumulators; the remaining columns (head_dim % 4) go one by one.
 */
static void mix_head(const nlpool_attention_params_t *p, int simd, const int8_t *scores, const int8_t *v,
                     int8_t *mixed)
{
    const int32_t n_tok = p->tokens, e = p->width, d_n = p->head_dim;
    int32_t d = 0;
    int32_t acc[4];
#if defined(__ARM_FEATURE_MVE)
    for (; simd && d + 4 <= d_n; d += 4) {
        int32x4_t sum = vdupq_n_s32(0);
        for (int32_t m = 0; m < n_tok; ++m) {
            const int32x4_t vv = vaddq_n_s32(vldrbq_s32(v + m * e + d), p->mix_rhs_offset);
            sum = vmlaq_n_s32(sum, vv, (int32_t)scores[m] + p->mix_lhs_offset);
        }
        vst1q_s32(acc, sum);
        for (int32_t i = 0; i < 4; ++i) {
            mixed[d + i] = nl_sat_i8(nl_mbqm(acc[i], p->mix_multiplier, p->mix_shift) + p->mix_output_offset);
        }
    }
#elif defined(__ARM_FEATURE_DSP)
    const uint32_t rhs2 = offset_pair(p->mix_rhs_offset);
    for (; simd && d + 4 <= d_n; d += 4) {
        acc[0] = acc[1] = acc[2] = acc[3] = 0;
        for (int32_t m = 0; m < n_tok; ++m) {
            const int32_t s = (int32_t)scores[m] + p->mix_lhs_offset; /* int16 in the bottom half */
            const uint32_t w = load4(v + m * e + d);
            const int32_t v02 = lanes02(w, rhs2), v13 = lanes13(w, rhs2);
            acc[0] = __smlabb(s, v02, acc[0]);
            acc[1] = __smlabb(s, v13, acc[1]);
            acc[2] = __smlabt(s, v02, acc[2]);
            acc[3] = __smlabt(s, v13, acc[3]);
        }
        for (int32_t i = 0; i < 4; ++i) {
            mixed[d + i] = nl_sat_i8(nl_mbqm(acc[i], p->mix_multiplier, p->mix_shift) + p->mix_output_offset);
        }
    }
#else
    (void)simd;
    (void)acc;
    (void)n_tok;
    (void)e;
#endif
    for (; d < d_n; ++d) {
        mixed[d] = nl_sat_i8(nl_mbqm(mix_one_c(p, scores, v + d), p->mix_multiplier, p->mix_shift) + p->mix_output_offset);
    }
}

/* --- the op --------------------------------------------------------------------------------- */

int32_t nlpool_attention_scratch_bytes(const nlpool_attention_params_t *p)
{
    return 2 * p->tokens * p->width + p->tokens + 2 * p->width;
}

void nlpool_attention(const nlpool_attention_params_t *p, const int8_t *tokens, int8_t *out,
                      int8_t *scratch)
{
    const int32_t n_tok = p->tokens, e = p->width, d_n = p->head_dim;
    int8_t *k_all = scratch;          /* (N, E) */
    int8_t *v_all = k_all + n_tok * e; /* (N, E) */
    int8_t *q = v_all + n_tok * e;     /* E */
    int8_t *mixed = q + e;             /* E; also the positional row before q is projected */
    int8_t *scores = mixed + e;        /* N */
    const int simd = lanes_fit(p);

    for (int32_t n = 0; n < n_tok; ++n) {
        const int8_t *x = token_row(p, tokens, n, mixed);
        project_branch(p, simd, x, p->k_column, p->k_step_count, p->k_steps, p->k_consts, k_all + n * e);
        project_branch(p, simd, x, p->v_column, p->v_step_count, p->v_steps, p->v_consts, v_all + n * e);
    }
    for (int32_t n = 0; n < n_tok; ++n) {
        project_branch(p, simd, token_row(p, tokens, n, mixed), p->q_column, p->q_step_count, p->q_steps, p->q_consts, q);
        for (int32_t h = 0; h < p->heads; ++h) {
            const int8_t *qh = q + h * d_n;
            score_row(p, simd, qh, k_all + h * d_n, scores);
            nl_softmax_row(p->softmax_exp_table, p->softmax_diff_min, scores, scores, n_tok);
            mix_head(p, simd, scores, v_all + h * d_n, mixed + h * d_n);
        }
        /* Input row n was last read above: output row n may overwrite it. */
        int8_t *y = out + n * e;
        for (int32_t o = 0; o < e; ++o) {
            const int8_t *w = p->out_weights + o * e;
            int32_t acc = dot(simd, w, p->out_filter_offset, mixed, p->out_input_offset, e);
            if (p->out_bias) {
                acc += p->out_bias[o];
            }
            y[o] = nl_sat_i8(fc_requantize(p, acc, p->out_multiplier[o], p->out_shift[o]) + p->output_offset);
        }
    }
}
