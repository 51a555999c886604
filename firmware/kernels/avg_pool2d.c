/* AVERAGE_POOL_2D int8: mean over the in-bounds part of each window, rounded half away from 0. */
#include "nlpool_fixedpoint.h"
#include "nlpool_kernels.h"

void nl_avg_pool2d(const nl_pool_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = nl_max_i32(0, -iy0);
            const int32_t fy1 = nl_min_i32(p->filter_h, p->in_h - iy0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = nl_max_i32(0, -ix0);
                const int32_t fx1 = nl_min_i32(p->filter_w, p->in_w - ix0);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                for (int32_t c = 0; c < p->channels; ++c) {
                    int32_t acc = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            acc += in[((b * p->in_h + iy0 + fy) * p->in_w + ix0 + fx) * p->channels + c];
                        }
                    }
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)nl_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}
