/* DEQUANTIZE int8 -> float (a model's float output). */
#include "nlpool_kernels.h"

void nl_dequantize(const nl_affine_params_t *p, const int8_t *in, float *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = p->scale * (float)((int32_t)in[i] - p->zero_point);
    }
}
