/* An int8 -> int8 element-wise op through a 256-entry table built at generation time from the
 * op's quantisation (LOGISTIC: nlpool.core.fixedpoint.logistic_int8_table, HARD_SWISH:
 * firmware/aot/quant.py hard_swish_int8_table), each entry TFLM's reference kernel's output. */
#include "nlpool_kernels.h"

void nl_lookup(const nl_lut_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = p->table[(int32_t)in[i] + 128];
    }
}
