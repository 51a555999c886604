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
        out[o++] = add_one(p, in1[a], in2[b]);
    }
}
