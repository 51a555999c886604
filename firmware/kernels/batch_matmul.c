/*
 * BATCH_MATMUL int8 (per-tensor): offsets applied to both operands, one requantisation (TFLite reference semantics).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_batch_matmul(const nl_batch_matmul_params_t *p, const int8_t *lhs, const int8_t *rhs,
                     int8_t *out)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *l = lhs + b * p->lhs_batch_stride;
        const int8_t *r = rhs + b * p->rhs_batch_stride;
        for (int32_t i = 0; i < p->rows; ++i) {
            for (int32_t j = 0; j < p->cols; ++j) {
                int32_t acc = 0;
                for (int32_t k = 0; k < p->depth; ++k) {
                    const int32_t a = l[i * p->lhs_row_stride + k * p->lhs_depth_stride];
                    const int32_t c = r[k * p->rhs_depth_stride + j * p->rhs_col_stride];
                    acc += (a + p->lhs_offset) * (c + p->rhs_offset);
                }
                acc = nl_mbqm(acc, p->out_mult, p->out_shift) + p->output_offset;
                *out++ = (int8_t)nl_clamp_i32(acc, p->act_min, p->act_max);
            }
        }
    }
}
