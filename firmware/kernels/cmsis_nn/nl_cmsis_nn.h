/*
 * Shared by nlpool's CMSIS-NN wrappers: each wrapper takes the same Prepare-time parameter struct as
 * nlpool's portable kernel for the op and calls Arm's CMSIS-NN function for it, so the generated
 * model can call either (model.c chooses with NLPOOL_CMSIS_NN). Each also exports the scratch size
 * CMSIS-NN asks for on DSP (Cortex-M4/M7/M33), MVE (Cortex-M55) and plain-C (Cortex-M3/M0+) builds,
 * computed by CMSIS-NN's own *_get_buffer_size_dsp/_mve functions and, for plain C, its generic
 * *_get_buffer_size, which the host probe compiles without __ARM_FEATURE_DSP or MVE, so it takes the
 * plain-C branch: nlpool's generator runs them on the host so the memory planner can place that
 * scratch in the arena.
 */
#ifndef NL_CMSIS_NN_H
#define NL_CMSIS_NN_H

#include <stdint.h>

#include "arm_nnfunctions.h"
#include "nlpool_kernels.h"

/* The `simd` argument of the wrappers' *_scratch functions: which CMSIS-NN build to size for. */
#define NL_CMSIS_DSP 0
#define NL_CMSIS_MVE 1
#define NL_CMSIS_PLAIN 2

/* The generator only emits calls CMSIS-NN accepts (its Prepare checks the same limits), so a
 * failing status is a generator bug: stop at a fault rather than return wrong outputs. */
static inline void nl_cmsis_check(arm_cmsis_nn_status status)
{
    if (status != ARM_CMSIS_NN_SUCCESS) {
        __builtin_trap();
    }
}

/* The window of CMSIS-NN's convolution and depthwise parameter structs (the same field names in
 * both) from nlpool's parameters: stride, leading padding, dilation and the activation clamp. */
#define NL_CMSIS_WINDOW(conv, p)                                                                         \
    do {                                                                                                \
        (conv).stride.w = (p)->stride_w;                                                                \
        (conv).stride.h = (p)->stride_h;                                                                \
        (conv).padding.w = (p)->pad_w;                                                                  \
        (conv).padding.h = (p)->pad_h;                                                                  \
        (conv).dilation.w = (p)->dil_w;                                                                 \
        (conv).dilation.h = (p)->dil_h;                                                                 \
        (conv).activation.min = (p)->act_min;                                                           \
        (conv).activation.max = (p)->act_max;                                                           \
    } while (0)

static inline cmsis_nn_dims nl_cmsis_dims(int32_t n, int32_t h, int32_t w, int32_t c)
{
    const cmsis_nn_dims d = {n, h, w, c};
    return d;
}

#endif /* NL_CMSIS_NN_H */
