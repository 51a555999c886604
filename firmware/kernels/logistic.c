/* LOGISTIC int8: TFLite's interpreter uses a 256-entry table built from float sigmoid; so do we. */
#include "nlpool_kernels.h"

void nl_logistic(const nl_lut_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = p->table[(int32_t)in[i] + 128];
    }
}
