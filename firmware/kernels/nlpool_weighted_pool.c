/* Integer evaluation of NLPOOL_WEIGHTED_POOL exactly as specified in docs/custom_op.md. */
#include "nlpool_weighted_pool.h"

/* TFLite's MultiplyByQuantizedMultiplier, kept local so this file stands alone in a TFLM tree. */
static int32_t wp_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31));
}

static int32_t wp_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t wp_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return wp_rdbpot(wp_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* round_half_away_from_zero(num * 2^16 / den) for den > 0, in 64-bit. */
static int32_t wp_weighted_mean_q16(int32_t num, int32_t den)
{
    const int64_t n = (int64_t)num * 65536;
    const int64_t mag = n < 0 ? -n : n;
    const int64_t q = (2 * mag + den) / (2 * (int64_t)den);
    return (int32_t)(n < 0 ? -q : q);
}

#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FEATURE_DSP)
/*
 * The same quotient without the 64-bit division (a library call of a few hundred instructions on
 * Cortex-M): these cores divide 32 by 32 bits in hardware. With a = |num| and d = 2 den, the
 * quotient is floor((a 2^17 + den) / d): long division, first a / d, then the 17 bits of the shift
 * a few at a time, each step's remainder times 2^step (plus den on the last) kept below 2^32 by
 * d < 2^(31 - step). Every den is >= 2^14 (table entries are), so two or three steps; a d of 2^30
 * or more takes the 64-bit division. (__builtin_clz: GCC, Clang and Arm Compiler 6 all have it.)
 */
static int32_t wp_weighted_mean_q16_fast(int32_t num, int32_t den)
{
    const uint32_t a = num < 0 ? 0u - (uint32_t)num : (uint32_t)num;
    const uint32_t d = 2u * (uint32_t)den;
    if (d >= (1u << 30)) {
        return wp_weighted_mean_q16(num, den);
    }
    const int step = 31 - (32 - __builtin_clz(d)); /* 31 less the bit length of d */
    uint32_t q = a / d;
    uint32_t r = a % d;
    for (int left = 16 + 1; left > 0;) {
        const int s = left < step ? left : step;
        left -= s;
        const uint32_t t = (r << s) + (left == 0 ? (uint32_t)den : 0u);
        q = (q << s) + t / d;
        r = t % d;
    }
    return (int32_t)(num < 0 ? 0u - q : q);
}
#define WP_WEIGHTED_MEAN_Q16 wp_weighted_mean_q16_fast
#else
#define WP_WEIGHTED_MEAN_Q16 wp_weighted_mean_q16
#endif

void nlpool_weighted_pool(const nlpool_weighted_pool_params_t *p, const int8_t *x,
                          const int8_t *r, int8_t *y)
{
    const int32_t c_n = p->channels;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                for (int32_t c = 0; c < c_n; ++c) {
                    int32_t num = 0;
                    int32_t den = 0;
                    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = oy * p->stride_h + fy;
                        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = ox * p->stride_w + fx;
                            const int32_t i = ((b * p->in_h + iy) * p->in_w + ix) * c_n + c;
                            const int32_t w = p->table[(int32_t)r[i] + 128];
                            num += w * ((int32_t)x[i] - p->x_zero_point);
                            den += w;
                        }
                    }
                    const int32_t mean = WP_WEIGHTED_MEAN_Q16(num, den);
                    int32_t acc = wp_mbqm(mean, p->out_multiplier, p->out_shift - 16);
                    acc += p->out_zero_point;
                    acc = acc < -128 ? -128 : (acc > 127 ? 127 : acc);
                    y[((b * p->out_h + oy) * p->out_w + ox) * c_n + c] = (int8_t)acc;
                }
            }
        }
    }
}
