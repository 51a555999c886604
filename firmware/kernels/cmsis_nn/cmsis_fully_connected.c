/*
 * FULLY_CONNECTED on CMSIS-NN. On MVE CMSIS-NN wants each output's filter sum (times the input
 * offset, plus bias) in its buffer: the generator computed them (`kernel_sums`, in flash on Helium
 * builds only), so none is computed per call (TFLM computes them once into its arena, or on every call
 * without a persistent buffer). On other cores CMSIS-NN asks for no buffer. The size function still
 * reports what CMSIS-NN asks for (TFLM's arena prediction reads it; the AOT plan keeps that scratch,
 * unused by this wrapper).
 */
#include "nl_cmsis_nn.h"

typedef struct {
    cmsis_nn_fc_params fc;
    cmsis_nn_dims input, filter, bias, output;
} nl_cmsis_fc_t;

static nl_cmsis_fc_t nl_cmsis_fc(const nl_fully_connected_params_t *p)
{
    nl_cmsis_fc_t c;
    c.fc.input_offset = p->input_offset;
    c.fc.filter_offset = p->filter_offset;
    c.fc.output_offset = p->output_offset;
    c.fc.activation.min = p->act_min;
    c.fc.activation.max = p->act_max;
    c.input = nl_cmsis_dims(p->batches, 1, 1, p->accum_depth);
    c.filter = nl_cmsis_dims(p->accum_depth, 1, 1, p->out_depth);
    c.bias = nl_cmsis_dims(1, 1, 1, p->out_depth);
    c.output = nl_cmsis_dims(p->batches, 1, 1, p->out_depth);
    return c;
}

int32_t nl_cmsis_fully_connected_scratch(const nl_fully_connected_params_t *p, int32_t simd)
{
    nl_cmsis_fc_t c = nl_cmsis_fc(p);
    return simd == NL_CMSIS_MVE ? arm_fully_connected_s8_get_buffer_size_mve(&c.filter)
         : simd == NL_CMSIS_DSP ? arm_fully_connected_s8_get_buffer_size_dsp(&c.filter)
                                : arm_fully_connected_s8_get_buffer_size(&c.filter);
}

#ifndef NL_CMSIS_SCRATCH_PROBE
void nl_cmsis_fully_connected(const nl_fully_connected_params_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    nl_cmsis_fc_t c = nl_cmsis_fc(p);
    (void)scratch;
    /* CMSIS-NN only reads the kernel sums: the cast drops a const it does not need */
    const cmsis_nn_context ctx = {(void *)(uintptr_t)p->kernel_sums, arm_fully_connected_s8_get_buffer_size(&c.filter)};
    cmsis_nn_quant_params quant = {(int32_t *)p->out_mult, (int32_t *)p->out_shift, p->per_channel};
    nl_cmsis_check(arm_fully_connected_wrapper_s8(&ctx, &c.fc, &quant, &c.input, in, &c.filter, p->filter, &c.bias,
                                                  p->bias, &c.output, out));
}
#endif
