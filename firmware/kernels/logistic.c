/* LOGISTIC int8 through a 256-entry table of TFLM's fixed-point reference kernel's outputs
 * (nlpool.core.fixedpoint.logistic_int8_table), built at generation time. */
#include "nlpool_kernels.h"

void nl_logistic(const nl_lut_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = p->table[(int32_t)in[i] + 128];
    }
}
