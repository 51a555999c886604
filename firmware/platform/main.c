/*
 * Test driver shared by the host build and the Cortex-M build: reads inferences from input.bin
 * (every model input, in order, per inference), writes output.bin the same way, and prints one
 * NLPOOL_STATS line, the kernel set it was built with and, built with NLPOOL_PROFILE, the ticks
 * of every op. On Cortex-M the files travel over semihosting.
 */
#include <stdio.h>
#include <stdint.h>

#include "model.h"
#include "nl_platform.h"

#ifndef NLPOOL_CMSIS_NN
#define NLPOOL_CMSIS_NN 0
#endif

int main(void)
{
    nl_platform_init();
    FILE *in = fopen("input.bin", "rb");
    FILE *out = fopen("output.bin", "wb");
    if (in == NULL || out == NULL) {
        printf("NLPOOL_ERROR: cannot open input.bin or output.bin in the working directory\n");
        return 2;
    }
    nlpool_model_init();
    uint64_t ticks = 0;
    uint32_t count = 0;
    for (;;) {
        int complete = 1;
        for (int i = 0; i < NLPOOL_NUM_INPUTS; ++i) {
            const uint32_t n = nlpool_model_input_bytes(i);
            if (fread(nlpool_model_input(i), 1, n, in) != n) {
                complete = 0;
            }
        }
        if (!complete) {
            break;
        }
        const uint64_t t0 = nl_ticks();
        nlpool_model_invoke();
        ticks += nl_ticks() - t0;
        ++count;
        for (int i = 0; i < NLPOOL_NUM_OUTPUTS; ++i) {
            const uint32_t n = nlpool_model_output_bytes(i);
            if (fwrite(nlpool_model_output(i), 1, n, out) != n) {
                printf("NLPOOL_ERROR: cannot write output.bin\n");
                return 3;
            }
        }
    }
    fclose(in);
    fclose(out);
#if defined(NLPOOL_PROFILE)
    for (int i = 0; i < NLPOOL_NUM_OPS; ++i) {
        const uint64_t t = nlpool_model_op_ticks(i);
        printf("NLPOOL_PROFILE op=%d kernel=%s ticks_hi=%lu ticks_lo=%lu\n", i, nlpool_model_op_kernel(i), (unsigned long)(t >> 32),
               (unsigned long)(t & 0xFFFFFFFFu));
    }
#endif
    printf("NLPOOL_KERNELS %s\n", NLPOOL_CMSIS_NN ? "cmsis-nn" : "portable");
    /* newlib-nano printf has no %llu: print the tick count as two 32-bit halves. */
    printf("NLPOOL_STATS inferences=%lu ticks_hi=%lu ticks_lo=%lu stack_high_water=%lu\n",
           (unsigned long)count, (unsigned long)(ticks >> 32), (unsigned long)(ticks & 0xFFFFFFFFu),
           (unsigned long)nl_stack_high_water());
    return 0;
}
