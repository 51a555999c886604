/*
 * MEAN int8 over H and W of a 4-D tensor with keep_dims (global average pooling), as TFLite's
 * interpreter computes it: raw sum, one requantisation by input_scale / (H*W*output_scale),
 * then a precomputed bias that folds both zero points.
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_mean(const nl_mean_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t plane = p->in_h * p->in_w;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * plane * p->channels;
        for (int32_t c = 0; c < p->channels; ++c) {
            int32_t acc = 0;
            for (int32_t i = 0; i < plane; ++i) {
                acc += x[i * p->channels + c];
            }
            acc = nl_mbqm(acc, p->mult, p->shift) + p->bias;
            out[b * p->channels + c] = nl_sat_i8(acc);
        }
    }
}
