/* MAX_POOL_2D on CMSIS-NN (same quantisation in and out, as TFLite requires). */
#include "nl_cmsis_pool.h"

void nl_cmsis_max_pool2d(const nl_pool_params_t *p, const int8_t *in, int8_t *out)
{
    nl_cmsis_pool_t c = nl_cmsis_pool(p);
    const cmsis_nn_context ctx = {NULL, 0};
    nl_cmsis_check(arm_max_pool_s8(&ctx, &c.pool, &c.input, in, &c.filter, &c.output, out));
}
