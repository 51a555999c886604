/* QUANTIZE float -> int8: round half away from zero, then saturate. */
#include <math.h>

#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_quantize_f32(const nl_affine_params_t *p, const float *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = nl_sat_i8((int32_t)roundf(in[i] / p->scale) + p->zero_point);
    }
}
