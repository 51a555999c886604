/* AVERAGE_POOL_2D on CMSIS-NN (same quantisation in and out, as TFLite requires). */
#include "nl_cmsis_pool.h"

int32_t nl_cmsis_avg_pool2d_scratch(const nl_pool_params_t *p, int32_t simd)
{
    return simd == NL_CMSIS_MVE ? arm_avgpool_s8_get_buffer_size_mve(p->out_w, p->channels)
         : simd == NL_CMSIS_DSP ? arm_avgpool_s8_get_buffer_size_dsp(p->out_w, p->channels)
                                : arm_avgpool_s8_get_buffer_size(p->out_w, p->channels);
}

#ifndef NL_CMSIS_SCRATCH_PROBE
void nl_cmsis_avg_pool2d(const nl_pool_params_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    nl_cmsis_pool_t c = nl_cmsis_pool(p);
    const cmsis_nn_context ctx = {scratch, arm_avgpool_s8_get_buffer_size(p->out_w, p->channels)};
    nl_cmsis_check(arm_avgpool_s8(&ctx, &c.pool, &c.input, in, &c.filter, &c.output, out));
}
#endif
