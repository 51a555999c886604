/*
 * CONV_2D int8 with per-channel requantisation (TFLite reference semantics).
 *
 * sum_i w_i (x_i + off) is computed as sum_i w_i x_i + off * sum_i w_i: for output pixels whose
 * window lies inside the input, sum_i w_i is the precomputed per-channel filter sum, so the inner
 * loop is a plain dot product; border pixels add the offset tap by tap. Integer-exact either way.
 */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

static int32_t dot(const int8_t *x, const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (int32_t)w[i] * x[i] + (int32_t)w[i + 1] * x[i + 1] + (int32_t)w[i + 2] * x[i + 2] +
               (int32_t)w[i + 3] * x[i + 3];
    }
    for (; i < n; ++i) {
        acc += (int32_t)w[i] * x[i];
    }
    return acc;
}

/* Two filters against one input run: each input byte is loaded once for both output channels. */
static void dot2(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, int32_t *acc0, int32_t *acc1)
{
    int32_t a0 = 0;
    int32_t a1 = 0;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = x[i];
        a0 += (int32_t)w0[i] * v;
        a1 += (int32_t)w1[i] * v;
    }
    *acc0 += a0;
    *acc1 += a1;
}

static int32_t dot_offset(const int8_t *x, const int8_t *w, int32_t n, int32_t offset)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += (int32_t)w[i] * ((int32_t)x[i] + offset);
    }
    return acc;
}

/* Border pixels (or horizontal dilation): tap by tap, skipping taps outside the input. */
static int32_t window_with_offset(const nl_conv2d_params_t *p, const int8_t *in, const int8_t *wo,
                                  int32_t b, int32_t iy0, int32_t ix0)
{
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
            acc += dot_offset(x, wo + (fy * p->filter_w + fx) * p->in_c, p->in_c, p->input_offset);
        }
    }
    return acc;
}

static int8_t requantize(const nl_conv2d_params_t *p, int32_t oc, int32_t acc)
{
    if (p->bias) {
        acc += p->bias[oc];
    }
    acc = nl_mbqm(acc, p->out_mult[oc], p->out_shift[oc]) + p->output_offset;
    return (int8_t)nl_clamp_i32(acc, p->act_min, p->act_max);
}

void nl_conv2d(const nl_conv2d_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t span_h = (p->filter_h - 1) * p->dil_h;
    const int32_t span_w = (p->filter_w - 1) * p->dil_w;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + span_h < p->in_h && ix0 + span_w < p->in_w;
                int8_t *y = out + ((b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                const int32_t per_oc = p->filter_h * p->filter_w * p->in_c;
                const int32_t row = p->filter_w * p->in_c;
                int32_t oc = 0;
                if (inside && p->dil_w == 1) {
                    /* a window row is contiguous in both the input and the filter */
                    for (; oc + 2 <= p->out_c; oc += 2) {
                        const int8_t *w0 = p->filter + oc * per_oc;
                        int32_t acc0 = p->input_offset * p->filter_sums[oc];
                        int32_t acc1 = p->input_offset * p->filter_sums[oc + 1];
                        for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                            const int8_t *x = in + ((b * p->in_h + iy0 + p->dil_h * fy) * p->in_w + ix0) * p->in_c;
                            dot2(x, w0 + fy * row, w0 + per_oc + fy * row, row, &acc0, &acc1);
                        }
                        y[oc] = requantize(p, oc, acc0);
                        y[oc + 1] = requantize(p, oc + 1, acc1);
                    }
                }
                for (; oc < p->out_c; ++oc) {
                    const int8_t *wo = p->filter + oc * per_oc;
                    int32_t acc;
                    if (inside && p->dil_w == 1) {
                        acc = p->input_offset * p->filter_sums[oc];
                        for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                            const int8_t *x = in + ((b * p->in_h + iy0 + p->dil_h * fy) * p->in_w + ix0) * p->in_c;
                            acc += dot(x, wo + fy * row, row);
                        }
                    } else {
                        acc = window_with_offset(p, in, wo, b, iy0, ix0);
                    }
                    y[oc] = requantize(p, oc, acc);
                }
            }
        }
    }
}
