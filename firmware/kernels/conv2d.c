/*
 * CONV_2D int8 with per-channel requantisation (TFLite reference semantics).
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_conv2d(const nl_conv2d_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
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
                            const int8_t *w =
                                p->filter + ((oc * p->filter_h + fy) * p->filter_w + fx) * p->in_c;
                            for (int32_t ic = 0; ic < p->in_c; ++ic) {
                                acc += (int32_t)w[ic] * ((int32_t)x[ic] + p->input_offset);
                            }
                        }
                    }
                    if (p->bias) {
                        acc += p->bias[oc];
                    }
                    acc = nl_mbqm(acc, p->out_mult[oc], p->out_shift[oc]) + p->output_offset;
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                        (int8_t)nl_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}
