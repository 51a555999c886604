/* MUL int8 with broadcasting: the product of offset inputs requantised once. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_mul(const nl_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    const int32_t *d = p->out_dims;
    const int32_t *s1 = p->in1_strides;
    const int32_t *s2 = p->in2_strides;
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
    for (int32_t i1 = 0; i1 < d[1]; ++i1)
    for (int32_t i2 = 0; i2 < d[2]; ++i2)
    for (int32_t i3 = 0; i3 < d[3]; ++i3)
    for (int32_t i4 = 0; i4 < d[4]; ++i4)
    for (int32_t i5 = 0; i5 < d[5]; ++i5) {
        const int32_t a = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4] + i5 * s1[5];
        const int32_t b = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4] + i5 * s2[5];
        const int32_t prod = ((int32_t)in1[a] + p->in1_offset) * ((int32_t)in2[b] + p->in2_offset);
        const int32_t r = nl_mbqm(prod, p->out_mult, p->out_shift) + p->output_offset;
        out[o++] = (int8_t)nl_clamp_i32(r, p->act_min, p->act_max);
    }
}
