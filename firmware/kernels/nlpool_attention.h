/*
 * NLPOOL_ATTENTION: one self-attention block (positional ADD, q/k/v projection and per-branch
 * ADD/MUL steps, scaled scores, softmax, weighted sum of values, output projection) in int8, bit
 * for bit what the unfused TFLite graph computes (docs/custom_op.md, export/golden.py).
 *
 * It streams: K and V of every token go to the scratch, then one query row at a time produces one
 * score row per head, softmaxed in place and multiplied by V at once, so the scratch is
 * 2 N E + N + 2 E bytes (nlpool_attention_scratch_bytes), never heads x N x N. Output row n is
 * written after input row n was last read, so `out` may be `tokens` (in place).
 *
 * Every parameter is computed at Prepare time (by the AOT generator, or by a TFLM kernel's
 * Prepare); Eval is integer-only. The AOT runtime and a TFLM custom kernel share this file, which
 * depends on nothing but <stdint.h> and nlpool_fixedpoint.h.
 */
#ifndef NLPOOL_ATTENTION_H
#define NLPOOL_ATTENTION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One element-wise ADD or MUL with a per-column constant: the record layout of the options. */
enum { NLPOOL_STEP_ADD = 0, NLPOOL_STEP_MUL = 1, NLPOOL_STEP_FIELDS = 10 };

typedef struct {
    int32_t tokens, width, heads, head_dim;   /* N, E, heads, E / heads */
    const int32_t *pos_step;                  /* one ADD record, NULL without a positional table */
    const int8_t *pos_table;                  /* (N, E), NULL without a positional table */
    const int8_t *qkv_weights;                /* (3E, E) */
    const int32_t *qkv_bias;                  /* 3E, or NULL */
    int32_t qkv_input_offset, qkv_filter_offset, qkv_output_offset;
    const int32_t *qkv_multiplier;            /* 3E, per output channel */
    const int32_t *qkv_shift;
    int32_t q_column, k_column, v_column;     /* first projected column of each branch */
    int32_t q_step_count, k_step_count, v_step_count;
    const int32_t *q_steps;                   /* count x NLPOOL_STEP_FIELDS */
    const int32_t *k_steps;
    const int32_t *v_steps;
    const int8_t *q_consts;                   /* count x E: the constant per column of each step */
    const int8_t *k_consts;
    const int8_t *v_consts;
    int32_t score_lhs_offset, score_rhs_offset, score_multiplier, score_shift, score_output_offset;
    const int32_t *softmax_exp_table;         /* 256: exp of a score difference of -i in Q0.31 */
    int32_t softmax_diff_min;                 /* differences below it contribute nothing */
    int32_t mix_lhs_offset, mix_rhs_offset, mix_multiplier, mix_shift, mix_output_offset;
    const int8_t *out_weights;                /* (E, E) */
    const int32_t *out_bias;                  /* E, or NULL */
    int32_t out_input_offset, out_filter_offset, output_offset;
    const int32_t *out_multiplier;            /* E */
    const int32_t *out_shift;
    int32_t fc_double_rounding;               /* 0: single rounding (TFLite interpreter), 1: TFLM */
} nlpool_attention_params_t;

/* Bytes of scratch nlpool_attention needs: K and V (2 N E), one query, one mixed and one score row. */
int32_t nlpool_attention_scratch_bytes(const nlpool_attention_params_t *p);

/* Evaluates the op; `out` may equal `tokens`; `scratch` holds nlpool_attention_scratch_bytes. */
void nlpool_attention(const nlpool_attention_params_t *p, const int8_t *tokens, int8_t *out,
                      int8_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* NLPOOL_ATTENTION_H */
