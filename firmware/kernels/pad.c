/* PAD / PADV2: copies the input into the interior of the output and fills the rest. */
#include "nlpool_kernels.h"

void nl_pad(const nl_pad_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t *d = p->out_dims;
    const int32_t *n = p->in_dims;
    const int32_t *b = p->before;
    int32_t o = 0;
    int32_t idx[NL_MAX_DIMS];
    for (idx[0] = 0; idx[0] < d[0]; ++idx[0])
    for (idx[1] = 0; idx[1] < d[1]; ++idx[1])
    for (idx[2] = 0; idx[2] < d[2]; ++idx[2])
    for (idx[3] = 0; idx[3] < d[3]; ++idx[3])
    for (idx[4] = 0; idx[4] < d[4]; ++idx[4])
    for (idx[5] = 0; idx[5] < d[5]; ++idx[5]) {
        int32_t src = 0;
        int inside = 1;
        for (int k = 0; k < NL_MAX_DIMS; ++k) {
            const int32_t i = idx[k] - b[k];
            if (i < 0 || i >= n[k]) {
                inside = 0;
                break;
            }
            src = src * n[k] + i;
        }
        out[o++] = inside ? in[src] : (int8_t)p->pad_value;
    }
}
