/*
 * The one index walk of the generic kernels (ADD, MUL, PAD, the TRANSPOSE / STRIDED_SLICE gather).
 *
 * Shapes are padded to NL_MAX_DIMS dimensions and every input is read through per-dimension
 * element strides (0 along broadcast dimensions, permuted for a transpose, scaled or negative for a
 * slice), so broadcasting and permutations need no scratch. The odometer walks the output in
 * row-major order one row (the innermost dimension) at a time and carries, for up to two inputs,
 * the offset of the row's first element; the kernel loops over the row itself, so the per-element
 * code stays a plain strided loop and the carry runs once per row.
 */
#ifndef NLPOOL_ODOMETER_H
#define NLPOOL_ODOMETER_H

#include <stddef.h>
#include <stdint.h>

#define NL_MAX_DIMS 6

typedef struct {
    int32_t index[NL_MAX_DIMS - 1]; /* position in the outer dimensions */
    int32_t in1, in2;               /* element offset of the current row in input 1 and input 2 */
} nl_odometer_t;

/* Starts at the first row; returns the number of rows (the product of the outer dimensions). */
static inline int32_t nl_odometer_start(nl_odometer_t *it, const int32_t *dims)
{
    int32_t rows = 1;
    for (int k = 0; k < NL_MAX_DIMS - 1; ++k) {
        it->index[k] = 0;
        rows *= dims[k];
    }
    it->in1 = 0;
    it->in2 = 0;
    return rows;
}

/*
 * Advances to the next row: the last outer dimension steps, and any that wraps resets and carries
 * into the one before. Either stride array may be NULL (one input, or only the index is needed);
 * the check folds away once the call is inlined.
 */
static inline void nl_odometer_next_row(nl_odometer_t *it, const int32_t *dims,
                                        const int32_t *in1_strides, const int32_t *in2_strides)
{
    for (int k = NL_MAX_DIMS - 2; k >= 0; --k) {
        if (in1_strides != NULL) {
            it->in1 += in1_strides[k];
        }
        if (in2_strides != NULL) {
            it->in2 += in2_strides[k];
        }
        if (++it->index[k] < dims[k]) {
            return;
        }
        it->index[k] = 0;
        if (in1_strides != NULL) {
            it->in1 -= dims[k] * in1_strides[k];
        }
        if (in2_strides != NULL) {
            it->in2 -= dims[k] * in2_strides[k];
        }
    }
}

#endif /* NLPOOL_ODOMETER_H */
