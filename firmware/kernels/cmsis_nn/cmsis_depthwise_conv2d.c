/* DEPTHWISE_CONV_2D on CMSIS-NN: arm_depthwise_conv_wrapper_s8 picks CMSIS-NN's 3x3, optimised or generic kernel. */
#include "nl_cmsis_nn.h"

typedef struct {
    cmsis_nn_dw_conv_params conv;
    cmsis_nn_dims input, filter, bias, output;
} nl_cmsis_dw_t;

static nl_cmsis_dw_t nl_cmsis_dw(const nl_depthwise_conv2d_params_t *p)
{
    nl_cmsis_dw_t c;
    const int32_t out_c = p->in_c * p->depth_mult;
    c.conv.input_offset = p->input_offset;
    c.conv.output_offset = p->output_offset;
    c.conv.ch_mult = p->depth_mult;
    NL_CMSIS_WINDOW(c.conv, p);
    c.input = nl_cmsis_dims(p->batches, p->in_h, p->in_w, p->in_c);
    c.filter = nl_cmsis_dims(1, p->filter_h, p->filter_w, out_c);
    c.bias = nl_cmsis_dims(1, 1, 1, out_c);
    c.output = nl_cmsis_dims(p->batches, p->out_h, p->out_w, out_c);
    return c;
}

int32_t nl_cmsis_depthwise_conv2d_scratch(const nl_depthwise_conv2d_params_t *p, int32_t simd)
{
    nl_cmsis_dw_t c = nl_cmsis_dw(p);
    return simd == NL_CMSIS_MVE ? arm_depthwise_conv_wrapper_s8_get_buffer_size_mve(&c.conv, &c.input, &c.filter, &c.output)
         : simd == NL_CMSIS_DSP ? arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp(&c.conv, &c.input, &c.filter, &c.output)
                                : arm_depthwise_conv_wrapper_s8_get_buffer_size(&c.conv, &c.input, &c.filter, &c.output);
}

#ifndef NL_CMSIS_SCRATCH_PROBE
void nl_cmsis_depthwise_conv2d(const nl_depthwise_conv2d_params_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    nl_cmsis_dw_t c = nl_cmsis_dw(p);
    const cmsis_nn_context ctx = {scratch,
                                  arm_depthwise_conv_wrapper_s8_get_buffer_size(&c.conv, &c.input, &c.filter, &c.output)};
    cmsis_nn_per_channel_quant_params quant = {(int32_t *)p->out_mult, (int32_t *)p->out_shift};
    nl_cmsis_check(arm_depthwise_conv_wrapper_s8(&ctx, &c.conv, &quant, &c.input, in, &c.filter, p->filter, &c.bias,
                                                 p->bias, &c.output, out));
}
#endif
