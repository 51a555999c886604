/*
 * TRANSPOSE and STRIDED_SLICE: out[i] = in[base + sum_k i_k * in_strides[k]] over the output's
 * index space. Prepare turns a permutation, or begin/end/stride and every mask, into base and
 * strides (negative for reversed slices), so one gather serves both.
 */
#include "nlpool_kernels.h"

void nl_gather(const nl_gather_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t n = p->out_dims[NL_MAX_DIMS - 1];
    const int32_t step = p->in_strides[NL_MAX_DIMS - 1];
    nl_odometer_t it;
    const int32_t rows = nl_odometer_start(&it, p->out_dims);
    for (int32_t row = 0; row < rows; ++row) {
        const int8_t *src = in + p->base + it.in1;
        for (int32_t i = 0; i < n; ++i) {
            *out++ = src[i * step];
        }
        nl_odometer_next_row(&it, p->out_dims, p->in_strides, NULL);
    }
}
