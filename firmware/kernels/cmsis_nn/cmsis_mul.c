/* MUL of two same-shape tensors on CMSIS-NN (broadcasting MULs stay on nlpool's kernel). */
#include "nl_cmsis_nn.h"

void nl_cmsis_mul(const nl_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    int32_t size = 1;
    for (int k = 0; k < NL_MAX_DIMS; ++k) {
        size *= p->out_dims[k];
    }
    nl_cmsis_check(arm_elementwise_mul_s8(in1, in2, p->in1_offset, p->in2_offset, out, p->output_offset, p->out_mult,
                                          p->out_shift, p->act_min, p->act_max, size));
}
