/*
 * RESIZE_BILINEAR int8: TFLite's integer path with Q10 coordinates; the four weighted corners
 * are summed in Q20 (int64) and rounded half away from zero.
 */
#include "nlpool_kernels.h"

void nl_resize_bilinear(const nl_resize_bilinear_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t one = 1 << 10;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = p->y_lo[oy];
            const int32_t y1 = p->y_hi[oy];
            const int64_t dy = p->y_scaled[oy] - one * y0;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = p->x_lo[ox];
                const int32_t x1 = p->x_hi[ox];
                const int64_t dx = p->x_scaled[ox] - one * x0;
                const int8_t *r0 = in + (b * p->in_h + y0) * p->in_w * p->channels;
                const int8_t *r1 = in + (b * p->in_h + y1) * p->in_w * p->channels;
                for (int32_t c = 0; c < p->channels; ++c) {
                    const int64_t v = (int64_t)r0[x0 * p->channels + c] * (one - dy) * (one - dx) +
                                      (int64_t)r1[x0 * p->channels + c] * dy * (one - dx) +
                                      (int64_t)r0[x1 * p->channels + c] * (one - dy) * dx +
                                      (int64_t)r1[x1 * p->channels + c] * dy * dx;
                    const int64_t round = v > 0 ? (1 << 19) : -(1 << 19);
                    *out++ = (int8_t)((v + round) / (1 << 20));
                }
            }
        }
    }
}
