/* MUL int8 with broadcasting: the product of offset inputs requantised once. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_mul(const nl_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    const int32_t n = p->out_dims[NL_MAX_DIMS - 1];
    const int32_t step1 = p->in1_strides[NL_MAX_DIMS - 1];
    const int32_t step2 = p->in2_strides[NL_MAX_DIMS - 1];
    nl_odometer_t it;
    const int32_t rows = nl_odometer_start(&it, p->out_dims);
    for (int32_t row = 0; row < rows; ++row) {
        const int8_t *a = in1 + it.in1;
        const int8_t *b = in2 + it.in2;
        for (int32_t i = 0; i < n; ++i) {
            const int32_t prod = ((int32_t)a[i * step1] + p->in1_offset) * ((int32_t)b[i * step2] + p->in2_offset);
            const int32_t r = nl_mbqm(prod, p->out_mult, p->out_shift) + p->output_offset;
            *out++ = (int8_t)nl_clamp_i32(r, p->act_min, p->act_max);
        }
        nl_odometer_next_row(&it, p->out_dims, p->in1_strides, p->in2_strides);
    }
}
