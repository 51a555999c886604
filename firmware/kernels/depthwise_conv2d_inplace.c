/*
 * DEPTHWISE_CONV_2D written over its own input: stride 1, multiplier 1, output shape = input shape.
 *
 * One channel at a time, its input plane is copied into the scratch with the SAME padding around it
 * (filled with the input zero point, which contributes nothing), then that channel's output plane is
 * computed from the copy into the tensor. Every other channel is untouched until its turn, so the
 * memory planner can give the output the input's memory: the op needs one padded H x W plane beyond
 * one tensor instead of a second tensor. With the border in the copy, the window loop has no bounds
 * checks, and the input offset is applied once per output through the sum of the taps:
 * sum(w * (x + offset)) = sum(w * x) + offset * sum(w), the same integer as nl_depthwise_conv2d's.
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

#define NL_DW_MAX_TAPS 64

void nl_depthwise_conv2d_inplace(const nl_depthwise_conv2d_params_t *p, const int8_t *in, int8_t *out,
                                 int8_t *scratch)
{
    const int32_t channels = p->in_c;
    const int32_t plane = p->in_h * p->in_w;
    const int32_t padded_w = p->in_w + (p->filter_w - 1) * p->dil_w;
    const int32_t padded_h = p->in_h + (p->filter_h - 1) * p->dil_h;
    const int32_t taps_n = p->filter_h * p->filter_w;
    const int8_t zero_point = (int8_t)(-p->input_offset);
    int32_t taps[NL_DW_MAX_TAPS];
    int32_t tap_offset[NL_DW_MAX_TAPS];
    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
            tap_offset[fy * p->filter_w + fx] = fy * p->dil_h * padded_w + fx * p->dil_w;
        }
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * plane * channels;
        int8_t *y = out + b * plane * channels;
        for (int32_t c = 0; c < channels; ++c) {
            for (int32_t i = 0; i < padded_h * padded_w; ++i) {
                scratch[i] = zero_point;
            }
            for (int32_t iy = 0; iy < p->in_h; ++iy) {
                int8_t *row = scratch + (iy + p->pad_h) * padded_w + p->pad_w;
                const int8_t *src = x + iy * p->in_w * channels + c;
                for (int32_t ix = 0; ix < p->in_w; ++ix) {
                    row[ix] = src[ix * channels];
                }
            }
            int32_t base = p->bias ? p->bias[c] : 0;
            for (int32_t k = 0; k < taps_n; ++k) {
                taps[k] = p->filter[k * channels + c];
                base += p->input_offset * taps[k];
            }
            const int32_t mult = p->out_mult[c];
            const int32_t shift = p->out_shift[c];
            for (int32_t oy = 0; oy < p->out_h; ++oy) {
                const int8_t *window = scratch + oy * padded_w;
                int8_t *dst = y + oy * p->out_w * channels + c;
                for (int32_t ox = 0; ox < p->out_w; ++ox) {
                    const int8_t *at = window + ox;
                    int32_t acc = base;
                    if (taps_n == 9 && p->dil_w == 1 && p->dil_h == 1) {
                        const int8_t *r1 = at + padded_w;
                        const int8_t *r2 = r1 + padded_w;
                        acc += taps[0] * at[0] + taps[1] * at[1] + taps[2] * at[2] + taps[3] * r1[0] + taps[4] * r1[1] +
                               taps[5] * r1[2] + taps[6] * r2[0] + taps[7] * r2[1] + taps[8] * r2[2];
                    } else {
                        for (int32_t k = 0; k < taps_n; ++k) {
                            acc += taps[k] * at[tap_offset[k]];
                        }
                    }
                    const int32_t v = nl_mbqm(acc, mult, shift) + p->output_offset;
                    dst[ox * channels] = (int8_t)nl_clamp_i32(v, p->act_min, p->act_max);
                }
            }
        }
    }
}
