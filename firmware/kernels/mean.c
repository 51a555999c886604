/*
 * MEAN int8 over H and W of a 4-D tensor, keep_dims or not (global average pooling), TFLite reference
 * semantics: the sum of (x - zx) is requantised once by in_scale / (out_scale * H * W), the
 * multiplier derived as TFLite derives it (see the MEAN emitter).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_mean(const nl_mean_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t count = p->in_h * p->in_w;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * count * p->channels;
        for (int32_t c = 0; c < p->channels; ++c) {
            int32_t acc = 0;
            for (int32_t i = 0; i < count; ++i) {
                acc += (int32_t)x[i * p->channels + c] - p->input_zero_point;
            }
            out[b * p->channels + c] = nl_sat_i8(nl_mbqm(acc, p->mult, p->shift) + p->output_zero_point);
        }
    }
}
