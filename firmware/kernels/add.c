/* ADD int8 with broadcasting: both inputs are rescaled to a common 2^20-shifted scale first. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

static int8_t add_one(const nl_add_params_t *p, int32_t a, int32_t b)
{
    const int32_t sa = nl_mbqm((a + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
    const int32_t sb = nl_mbqm((b + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
    const int32_t r = nl_mbqm(sa + sb, p->out_mult, p->out_shift) + p->output_offset;
    return (int8_t)nl_clamp_i32(r, p->act_min, p->act_max);
}

void nl_add(const nl_add_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
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
            *out++ = add_one(p, a[i * step1], b[i * step2]);
        }
        nl_odometer_next_row(&it, p->out_dims, p->in1_strides, p->in2_strides);
    }
}
