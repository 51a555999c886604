/*
 * SOFTMAX int8 -> int8 over the last dimension: upstream TFLM's reference kernel (gemmlowp fixed
 * point, what CMSIS-NN's arm_softmax_s8 computes too), its exps looked up in a Prepare-time table
 * of the same values (nl_softmax_row in nlpool_fixedpoint.h, shared with the attention kernel).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_softmax(const nl_softmax_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t r = 0; r < p->rows; ++r) {
        nl_softmax_row(p->exp_table, p->diff_min, in + r * p->depth, out + r * p->depth, p->depth);
    }
}
