/* PAD / PADV2 of a tensor of at most 4 dimensions on CMSIS-NN (the innermost 4 of nlpool's NL_MAX_DIMS). */
#include "nl_cmsis_nn.h"

void nl_cmsis_pad(const nl_pad_params_t *p, const int8_t *in, int8_t *out)
{
    const int k = NL_MAX_DIMS - 4;
    const cmsis_nn_dims size = nl_cmsis_dims(p->in_dims[k], p->in_dims[k + 1], p->in_dims[k + 2], p->in_dims[k + 3]);
    cmsis_nn_dims before = nl_cmsis_dims(p->before[k], p->before[k + 1], p->before[k + 2], p->before[k + 3]);
    cmsis_nn_dims after = nl_cmsis_dims(p->out_dims[k] - p->in_dims[k] - p->before[k],
                                        p->out_dims[k + 1] - p->in_dims[k + 1] - p->before[k + 1],
                                        p->out_dims[k + 2] - p->in_dims[k + 2] - p->before[k + 2],
                                        p->out_dims[k + 3] - p->in_dims[k + 3] - p->before[k + 3]);
    nl_cmsis_check(arm_pad_s8(in, out, (int8_t)p->pad_value, &size, &before, &after));
}
