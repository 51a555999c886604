/* QUANTIZE int8 -> int8: requantise from the input's scale and zero point to the output's. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_requantize(const nl_requantize_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = nl_mbqm((int32_t)in[i] - p->input_zero_point, p->mult, p->shift);
        out[i] = nl_sat_i8(v + p->output_zero_point);
    }
}
