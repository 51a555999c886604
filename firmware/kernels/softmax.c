/*
 * SOFTMAX int8 -> int8 over the last dimension.
 *
 * The TFLite interpreter evaluates int8 softmax with a float lookup table of exp() (not the
 * gemmlowp fixed-point path of the reference kernel); this reproduces that algorithm operation by
 * operation in single precision so the result is bit-exact. Build without FP contraction.
 */
#include <math.h>

#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_softmax(const nl_softmax_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        int32_t max_val = -128;
        for (int32_t j = 0; j < p->depth; ++j) {
            max_val = nl_max_i32(max_val, x[j]);
        }
        const float *t = p->table + 255 - max_val;
        float sum = 0.0f;
        for (int32_t j = 0; j < p->depth; ++j) {
            sum += t[x[j]];
        }
        const float inv = 1.0f / (sum * p->output_scale);
        for (int32_t j = 0; j < p->depth; ++j) {
            const float scaled = t[x[j]] * inv;
            const int32_t q = (int32_t)roundf(scaled) + p->output_zero_point;
            y[j] = nl_sat_i8(q);
        }
    }
}
