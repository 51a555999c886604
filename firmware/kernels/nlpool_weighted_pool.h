/*
 * NLPOOL_WEIGHTED_POOL: the fused tail of self-attentive pooling, y = sum(pi*x) / sum(pi) over
 * each window with pi = exp(sigmoid(r)) taken from a 256-entry Q14 table (docs/custom_op.md).
 *
 * This function is the single implementation of that arithmetic: the AOT runtime and the TFLM
 * custom-op kernel both call it, so it depends on nothing but <stdint.h>.
 */
#ifndef NLPOOL_WEIGHTED_POOL_H
#define NLPOOL_WEIGHTED_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t batches, in_h, in_w, channels; /* x and r are (batches, in_h, in_w, channels) */
    int32_t out_h, out_w;                  /* in_h / stride_h, in_w / stride_w (floor) */
    int32_t filter_h, filter_w, stride_h, stride_w;
    int32_t x_zero_point, out_zero_point;
    int32_t out_multiplier, out_shift;     /* Q31 multiplier of sx / sy, shift positive = left */
    const int32_t *table;                  /* table[q + 128], Q14, every entry >= 2^14 */
} nlpool_weighted_pool_params_t;

/* Evaluates the op; no scratch memory, no floating point. */
void nlpool_weighted_pool(const nlpool_weighted_pool_params_t *p, const int8_t *x,
                          const int8_t *r, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* NLPOOL_WEIGHTED_POOL_H */
