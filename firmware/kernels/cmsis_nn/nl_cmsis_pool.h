/* The pooling parameters both CMSIS-NN pooling wrappers pass: window, padding, clamp and NHWC dims. */
#ifndef NL_CMSIS_POOL_H
#define NL_CMSIS_POOL_H

#include "nl_cmsis_nn.h"

typedef struct {
    cmsis_nn_pool_params pool;
    cmsis_nn_dims input, filter, output;
} nl_cmsis_pool_t;

static inline nl_cmsis_pool_t nl_cmsis_pool(const nl_pool_params_t *p)
{
    nl_cmsis_pool_t c;
    c.pool.stride.w = p->stride_w;
    c.pool.stride.h = p->stride_h;
    c.pool.padding.w = p->pad_w;
    c.pool.padding.h = p->pad_h;
    c.pool.activation.min = p->act_min;
    c.pool.activation.max = p->act_max;
    c.input = nl_cmsis_dims(p->batches, p->in_h, p->in_w, p->channels);
    c.filter = nl_cmsis_dims(1, p->filter_h, p->filter_w, 1);
    c.output = nl_cmsis_dims(p->batches, p->out_h, p->out_w, p->channels);
    return c;
}

#endif /* NL_CMSIS_POOL_H */
