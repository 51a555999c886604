/*
 * Integer evaluation of NLPOOL_ATTENTION exactly as export/golden.py's attention() computes it,
 * streamed one query row at a time (docs/custom_op.md). The softmax is TFLite's reference int8
 * SOFTMAX in gemmlowp fixed point (what TFLM runs too; nl_softmax_row, shared with softmax.c): the
 * unfused graph's bytes depend on it. Its exps come from a Prepare-time table of the same values.
 */
#include "nlpool_attention.h"

#include "nlpool_fixedpoint.h"

enum { ADD_LEFT_SHIFT = 20 };

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
static void project_branch(const nlpool_attention_params_t *p, const int8_t *x, int32_t column,
                           int32_t step_count, const int32_t *steps, const int8_t *consts, int8_t *dst)
{
    const int32_t e = p->width;
    for (int32_t j = 0; j < e; ++j) {
        const int32_t o = column + j;
        const int8_t *w = p->qkv_weights + o * e;
        int32_t acc = 0;
        for (int32_t k = 0; k < e; ++k) {
            acc += ((int32_t)w[k] + p->qkv_filter_offset) * ((int32_t)x[k] + p->qkv_input_offset);
        }
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

    for (int32_t n = 0; n < n_tok; ++n) {
        const int8_t *x = token_row(p, tokens, n, mixed);
        project_branch(p, x, p->k_column, p->k_step_count, p->k_steps, p->k_consts, k_all + n * e);
        project_branch(p, x, p->v_column, p->v_step_count, p->v_steps, p->v_consts, v_all + n * e);
    }
    for (int32_t n = 0; n < n_tok; ++n) {
        project_branch(p, token_row(p, tokens, n, mixed), p->q_column, p->q_step_count, p->q_steps, p->q_consts, q);
        for (int32_t h = 0; h < p->heads; ++h) {
            const int8_t *qh = q + h * d_n;
            for (int32_t m = 0; m < n_tok; ++m) {
                const int8_t *kh = k_all + m * e + h * d_n;
                int32_t acc = 0;
                for (int32_t d = 0; d < d_n; ++d) {
                    acc += ((int32_t)qh[d] + p->score_lhs_offset) * ((int32_t)kh[d] + p->score_rhs_offset);
                }
                scores[m] = nl_sat_i8(nl_mbqm(acc, p->score_multiplier, p->score_shift) + p->score_output_offset);
            }
            nl_softmax_row(p->softmax_exp_table, p->softmax_diff_min, scores, scores, n_tok);
            for (int32_t d = 0; d < d_n; ++d) {
                int32_t acc = 0;
                for (int32_t m = 0; m < n_tok; ++m) {
                    acc += ((int32_t)scores[m] + p->mix_lhs_offset) * ((int32_t)v_all[m * e + h * d_n + d] + p->mix_rhs_offset);
                }
                mixed[h * d_n + d] = nl_sat_i8(nl_mbqm(acc, p->mix_multiplier, p->mix_shift) + p->mix_output_offset);
            }
        }
        /* Input row n was last read above: output row n may overwrite it. */
        int8_t *y = out + n * e;
        for (int32_t o = 0; o < e; ++o) {
            const int8_t *w = p->out_weights + o * e;
            int32_t acc = 0;
            for (int32_t k = 0; k < e; ++k) {
                acc += ((int32_t)w[k] + p->out_filter_offset) * ((int32_t)mixed[k] + p->out_input_offset);
            }
            if (p->out_bias) {
                acc += p->out_bias[o];
            }
            y[o] = nl_sat_i8(fc_requantize(p, acc, p->out_multiplier[o], p->out_shift[o]) + p->output_offset);
        }
    }
}
