/*
 * DEPTHWISE_CONV_2D int8 with per-channel requantisation (TFLite reference semantics).
 *
 * Channels are processed in blocks with a small accumulator array so that the innermost loop runs
 * over contiguous channels of one input pixel and one filter tap (NHWC and 1HWO layouts).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

#define NL_DW_BLOCK 64

void nl_depthwise_conv2d(const nl_depthwise_conv2d_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t out_c = p->in_c * p->depth_mult;
    int32_t acc[NL_DW_BLOCK];
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *y = out + ((b * p->out_h + oy) * p->out_w + ox) * out_c;
                for (int32_t c0 = 0; c0 < out_c; c0 += NL_DW_BLOCK) {
                    const int32_t n = nl_min_i32(NL_DW_BLOCK, out_c - c0);
                    for (int32_t k = 0; k < n; ++k) {
                        acc[k] = p->bias ? p->bias[c0 + k] : 0;
                    }
                    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = iy0 + p->dil_h * fy;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = ix0 + p->dil_w * fx;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            const int8_t *x = in + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c;
                            const int8_t *w = p->filter + (fy * p->filter_w + fx) * out_c + c0;
                            if (p->depth_mult == 1) {
                                x += c0;
                                for (int32_t k = 0; k < n; ++k) {
                                    acc[k] += (int32_t)w[k] * ((int32_t)x[k] + p->input_offset);
                                }
                            } else {
                                for (int32_t k = 0; k < n; ++k) {
                                    const int32_t ic = (c0 + k) / p->depth_mult;
                                    acc[k] += (int32_t)w[k] * ((int32_t)x[ic] + p->input_offset);
                                }
                            }
                        }
                    }
                    for (int32_t k = 0; k < n; ++k) {
                        const int32_t oc = c0 + k;
                        const int32_t v = nl_mbqm(acc[k], p->out_mult[oc], p->out_shift[oc]) + p->output_offset;
                        y[oc] = (int8_t)nl_clamp_i32(v, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}
