/* RELU and RELU6 int8 (standalone, not fused): requantise, then clamp to the activation range. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_relu(const nl_relu_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = nl_mbqm((int32_t)in[i] - p->input_zero_point, p->mult, p->shift);
        out[i] = (int8_t)nl_clamp_i32(v + p->output_zero_point, p->act_min, p->act_max);
    }
}
