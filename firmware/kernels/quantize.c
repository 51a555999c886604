/* QUANTIZE (int8 -> int8 requantisation, float -> int8) and DEQUANTIZE (int8 -> float). */
#include <math.h>

#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_requantize(const nl_requantize_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = nl_mbqm((int32_t)in[i] - p->input_zero_point, p->mult, p->shift);
        out[i] = nl_sat_i8(v + p->output_zero_point);
    }
}

void nl_quantize_f32(const nl_affine_params_t *p, const float *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = nl_sat_i8((int32_t)roundf(in[i] / p->scale) + p->zero_point);
    }
}

void nl_dequantize(const nl_affine_params_t *p, const int8_t *in, float *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = p->scale * (float)((int32_t)in[i] - p->zero_point);
    }
}
