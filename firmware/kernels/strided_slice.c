/*
 * STRIDED_SLICE: begin/end/stride and all masks are resolved at generation time into a start
 * offset and per-dimension input strides (negative for reversed slices).
 */
#include "nlpool_kernels.h"

void nl_strided_slice(const nl_gather_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t *d = p->out_dims;
    const int32_t *s = p->in_strides;
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
    for (int32_t i1 = 0; i1 < d[1]; ++i1)
    for (int32_t i2 = 0; i2 < d[2]; ++i2)
    for (int32_t i3 = 0; i3 < d[3]; ++i3)
    for (int32_t i4 = 0; i4 < d[4]; ++i4)
    for (int32_t i5 = 0; i5 < d[5]; ++i5) {
        out[o++] = in[p->base + i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3] + i4 * s[4] + i5 * s[5]];
    }
}
