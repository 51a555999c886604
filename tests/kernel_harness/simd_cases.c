/*
 * Random cases for the kernels with DSP/MVE paths (NLPOOL_ATTENTION, NLPOOL_WEIGHTED_POOL,
 * RESIZE_BILINEAR): parameters and data come from one xorshift stream, so the host build (the
 * portable C) and a Cortex-M build (its SIMD path) evaluate the very same cases; each prints one line
 * per case with a hash of the output bytes. tests/test_simd_kernels.py compares the two logs.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nlpool_kernels.h"

#ifdef NL_BOARD
extern void nl_platform_init(void);
#endif

enum { CASES = 120, MAX_BYTES = 4096 };

static uint32_t state = 0x2545F491u;

static uint32_t next(void)
{
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static int32_t pick(int32_t lo, int32_t hi) { return lo + (int32_t)(next() % (uint32_t)(hi - lo + 1)); }

static void fill_i8(int8_t *a, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        a[i] = (int8_t)pick(-128, 127);
    }
}

static int32_t multiplier(void) { return (int32_t)(0x40000000u + (next() & 0x3FFFFFFFu)); }

static uint32_t hash(const int8_t *a, int32_t n)
{
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; ++i) {
        h = (h ^ (uint8_t)a[i]) * 16777619u;
    }
    return h;
}

/* One ADD or MUL record (NLPOOL_STEP_FIELDS values) with TFLite-like parameters. */
static void step(int32_t *r)
{
    r[0] = pick(0, 1);
    r[1] = pick(-127, 128);
    r[2] = pick(-127, 128);
    r[3] = multiplier();
    r[4] = pick(-3, 0);
    r[5] = multiplier();
    r[6] = pick(-3, 0);
    r[7] = multiplier();
    r[8] = r[0] == NLPOOL_STEP_ADD ? pick(-24, -18) : pick(-10, -4);
    r[9] = pick(-128, 127);
}

static int8_t tokens[MAX_BYTES], out[MAX_BYTES], scratch[4 * MAX_BYTES], pos[MAX_BYTES];
static int8_t qkv_w[3 * 24 * 24], out_w[24 * 24], consts[3][3 * 24];
static int32_t qkv_b[3 * 24], qkv_m[3 * 24], qkv_s[3 * 24], out_b[24], out_m[24], out_s[24];
static int32_t steps[3][3 * NLPOOL_STEP_FIELDS], pos_step[NLPOOL_STEP_FIELDS], exp_table[256];

static void attention_case(int32_t index)
{
    nlpool_attention_params_t p;
    memset(&p, 0, sizeof p);
    p.heads = pick(1, 3);
    p.head_dim = pick(0, 2) == 0 ? pick(1, 8) : 4 * pick(1, 2);
    p.width = p.heads * p.head_dim;
    p.tokens = pick(1, 40);
    while (p.tokens * p.width > MAX_BYTES / 2) {
        --p.tokens;
    }
    const int32_t e = p.width;
    fill_i8(qkv_w, 3 * e * e);
    fill_i8(out_w, e * e);
    for (int32_t i = 0; i < 3 * e; ++i) {
        qkv_b[i] = pick(-20000, 20000);
        qkv_m[i] = multiplier();
        qkv_s[i] = pick(-11, -6);
    }
    for (int32_t i = 0; i < e; ++i) {
        out_b[i] = pick(-20000, 20000);
        out_m[i] = multiplier();
        out_s[i] = pick(-11, -6);
    }
    if (pick(0, 1)) {
        step(pos_step);
        fill_i8(pos, p.tokens * e);
        p.pos_step = pos_step;
        p.pos_table = pos;
    }
    p.qkv_weights = qkv_w;
    p.qkv_bias = pick(0, 1) ? qkv_b : NULL;
    p.qkv_input_offset = pick(-127, 128);
    p.qkv_filter_offset = pick(0, 3) == 0 ? pick(-127, 128) : 0;
    p.qkv_output_offset = pick(-128, 127);
    p.qkv_multiplier = qkv_m;
    p.qkv_shift = qkv_s;
    p.q_column = 0;
    p.k_column = e;
    p.v_column = 2 * e;
    int32_t *counts[3] = {&p.q_step_count, &p.k_step_count, &p.v_step_count};
    for (int32_t b = 0; b < 3; ++b) {
        *counts[b] = pick(0, 2);
        for (int32_t s = 0; s < *counts[b]; ++s) {
            step(steps[b] + s * NLPOOL_STEP_FIELDS);
        }
        fill_i8(consts[b], *counts[b] * e);
    }
    p.q_steps = steps[0];
    p.k_steps = steps[1];
    p.v_steps = steps[2];
    p.q_consts = consts[0];
    p.k_consts = consts[1];
    p.v_consts = consts[2];
    p.score_lhs_offset = pick(-127, 128);
    p.score_rhs_offset = pick(-127, 128);
    p.score_multiplier = multiplier();
    p.score_shift = pick(0, 5) == 0 ? pick(0, 2) : pick(-14, -1);
    p.score_output_offset = pick(-128, 127);
    /* A decreasing exp table in Q0.31 from 1, as Prepare's. */
    exp_table[0] = INT32_MAX;
    for (int32_t i = 1; i < 256; ++i) {
        exp_table[i] = exp_table[i - 1] - (int32_t)(next() % (uint32_t)(exp_table[i - 1] / 8 + 1));
    }
    p.softmax_exp_table = exp_table;
    p.softmax_diff_min = pick(-255, -1);
    p.mix_lhs_offset = 128;
    p.mix_rhs_offset = pick(-127, 128);
    p.mix_multiplier = multiplier();
    p.mix_shift = pick(-10, -6);
    p.mix_output_offset = pick(-128, 127);
    p.out_weights = out_w;
    p.out_bias = pick(0, 1) ? out_b : NULL;
    p.out_input_offset = pick(-127, 128);
    p.out_filter_offset = 0;
    p.output_offset = pick(-128, 127);
    p.out_multiplier = out_m;
    p.out_shift = out_s;
    p.fc_double_rounding = pick(0, 1);
    fill_i8(tokens, p.tokens * e);
    nlpool_attention(&p, tokens, out, scratch);
    printf("attention %ld %lu\n", (long)index, (unsigned long)hash(out, p.tokens * e));
}

static int32_t wp_table[256];

static void weighted_pool_case(int32_t index)
{
    nlpool_weighted_pool_params_t p;
    p.batches = pick(1, 2);
    p.channels = pick(1, 12);
    p.filter_h = pick(1, 3);
    p.filter_w = pick(1, 3);
    p.stride_h = pick(1, 3);
    p.stride_w = pick(1, 3);
    p.in_h = pick(p.filter_h, 10);
    p.in_w = pick(p.filter_w, 10);
    p.out_h = (p.in_h - p.filter_h) / p.stride_h + 1;
    p.out_w = (p.in_w - p.filter_w) / p.stride_w + 1;
    p.x_zero_point = pick(-128, 127);
    p.out_zero_point = pick(-128, 127);
    p.out_multiplier = multiplier();
    p.out_shift = pick(-6, 3);
    for (int32_t i = 0; i < 256; ++i) {
        wp_table[i] = pick(1 << 14, 44536); /* exp(sigmoid) in Q14: [1, e) */
    }
    p.table = wp_table;
    const int32_t n = p.batches * p.in_h * p.in_w * p.channels;
    fill_i8(tokens, n);
    fill_i8(pos, n);
    if (index % 2) {
        /* Outputs that show the Q16 mean to within 2^8 rather than 2^13..2^22: x within one of the
         * zero point and an output scale of 2^-8 (multiplier 2^22 after the shift of 17 - 16 = 1). */
        p.x_zero_point = pick(-127, 126);
        for (int32_t i = 0; i < n; ++i) {
            tokens[i] = (int8_t)(p.x_zero_point + pick(-1, 1));
        }
        p.out_multiplier = 1 << 22;
        p.out_shift = 17;
    }
    nlpool_weighted_pool(&p, tokens, pos, out);
    printf("weighted_pool %ld %lu\n", (long)index, (unsigned long)hash(out, p.batches * p.out_h * p.out_w * p.channels));
}

static int32_t ys[64], ylo[64], yhi[64], xs[64], xlo[64], xhi[64];

/* Q10 source coordinates as TFLite's half-pixel geometry makes them (clamped at 0, hi = lo + 1 capped). */
static void axis(int32_t in, int32_t outn, int32_t *scaled, int32_t *lo, int32_t *hi)
{
    const int32_t scale = (in << 10) / outn;
    for (int32_t o = 0; o < outn; ++o) {
        int32_t v = ((2 * o + 1) * scale) / 2 - 512;
        v = v < 0 ? 0 : v;
        if (pick(0, 15) == 0) {
            v = pick(0, (in - 1) << 10); /* any fraction in [0, 1) */
        }
        scaled[o] = v;
        lo[o] = v >> 10 < in - 1 ? v >> 10 : in - 1;
        hi[o] = lo[o] + 1 < in ? lo[o] + 1 : in - 1;
    }
}

static void resize_case(int32_t index)
{
    nl_resize_bilinear_params_t p;
    p.batches = pick(1, 2);
    p.channels = pick(1, 17);
    p.in_h = pick(1, 6);
    p.in_w = pick(1, 6);
    p.out_h = pick(1, 12);
    p.out_w = pick(1, 12);
    while (p.batches * p.out_h * p.out_w * p.channels > MAX_BYTES) {
        --p.out_h;
    }
    axis(p.in_h, p.out_h, ys, ylo, yhi);
    axis(p.in_w, p.out_w, xs, xlo, xhi);
    if (pick(0, 7) == 0) {
        ys[0] -= 1100; /* a fraction outside [0, 1]: the int64 fallback */
    }
    p.y_scaled = ys;
    p.y_lo = ylo;
    p.y_hi = yhi;
    p.x_scaled = xs;
    p.x_lo = xlo;
    p.x_hi = xhi;
    fill_i8(tokens, p.batches * p.in_h * p.in_w * p.channels);
    nl_resize_bilinear(&p, tokens, out);
    printf("resize_bilinear %ld %lu\n", (long)index, (unsigned long)hash(out, p.batches * p.out_h * p.out_w * p.channels));
}

int main(void)
{
#ifdef NL_BOARD
    nl_platform_init();
#endif
    for (int32_t i = 0; i < CASES; ++i) {
        attention_case(i);
        weighted_pool_case(i);
        resize_case(i);
    }
    printf("done %d\n", CASES);
    return 0;
}
