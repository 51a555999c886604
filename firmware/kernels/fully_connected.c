/*
 * FULLY_CONNECTED int8, per-tensor or per-channel requantisation, rounded twice (nl_mbqm) as
 * upstream TFLM's reference and CMSIS-NN kernels do by default. TFLite's host interpreter rounds
 * once here, so it can differ by one LSB on near-ties (docs/rounding.md).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_fully_connected(const nl_fully_connected_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * p->accum_depth;
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = p->filter + o * p->accum_depth;
            int32_t acc = 0;
            for (int32_t k = 0; k < p->accum_depth; ++k) {
                acc += ((int32_t)w[k] + p->filter_offset) * ((int32_t)x[k] + p->input_offset);
            }
            if (p->bias) {
                acc += p->bias[o];
            }
            const int32_t q = p->per_channel ? o : 0;
            acc = nl_mbqm(acc, p->out_mult[q], p->out_shift[q]) + p->output_offset;
            out[b * p->out_depth + o] = (int8_t)nl_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
