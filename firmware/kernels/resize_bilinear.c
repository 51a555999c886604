/*
 * RESIZE_BILINEAR int8: TFLite's integer path with Q10 coordinates; the four weighted corners
 * are summed in Q20 (int64) and rounded half away from zero.
 */
#include "nlpool_kernels.h"

#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
#endif

/* The int64 sum of one channel, rounded: the portable arithmetic, and the fallback of the fast one. */
static int8_t blend64(int64_t v00, int64_t v10, int64_t v01, int64_t v11, int64_t dy, int64_t dx)
{
    const int64_t one = 1 << 10;
    const int64_t v = v00 * (one - dy) * (one - dx) + v10 * dy * (one - dx) + v01 * (one - dy) * dx + v11 * dy * dx;
    const int64_t round = v > 0 ? (1 << 19) : -(1 << 19);
    return (int8_t)((v + round) / (1 << 20));
}

#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FEATURE_DSP)
/*
 * The same sum in int32 when both fractions lie in [0, 1] (Q10: 0..1024): each corner weight is then
 * at most 2^20, so |sum| <= 128 2^20 = 2^27, and factored as rows blended by dx then by dy it is
 * the same integer with 6 multiplies instead of 12 64-bit ones. Coordinates outside (none from
 * TFLite's geometry, but the kernel does not assume it) take blend64.
 */
static int fraction_ok(int32_t f) { return f >= 0 && f <= (1 << 10); }

static void blend_row(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t channels,
                      int32_t dy, int32_t dx, int8_t *out)
{
    const int32_t one = 1 << 10;
    int32_t c = 0;
#if defined(__ARM_FEATURE_MVE)
    /* Four channels per vector; the rounding is round_q20's: add +-2^19 by sign, then divide
     * truncating (a negative sum gets 2^20 - 1 added before the arithmetic shift). */
    for (; c < channels; c += 4) {
        const mve_pred16_t lanes = vctp32q((uint32_t)(channels - c));
        const int32x4_t top = vmlaq_n_s32(vmulq_n_s32(vldrbq_z_s32(a0 + c, lanes), one - dx), vldrbq_z_s32(a1 + c, lanes), dx);
        const int32x4_t bottom = vmlaq_n_s32(vmulq_n_s32(vldrbq_z_s32(b0 + c, lanes), one - dx), vldrbq_z_s32(b1 + c, lanes), dx);
        const int32x4_t v = vmlaq_n_s32(vmulq_n_s32(top, one - dy), bottom, dy);
        const int32x4_t t = vaddq_s32(v, vpselq_s32(vdupq_n_s32(1 << 19), vdupq_n_s32(-(1 << 19)), vcmpgtq_n_s32(v, 0)));
        const int32x4_t bias = vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(vshrq_n_s32(t, 31)), 12));
        vstrbq_p_s32(out + c, vshrq_n_s32(vaddq_s32(t, bias), 20), lanes);
    }
#else
    for (; c < channels; ++c) {
        const int32_t top = a0[c] * (one - dx) + a1[c] * dx;
        const int32_t bottom = b0[c] * (one - dx) + b1[c] * dx;
        const int32_t v = top * (one - dy) + bottom * dy;
        out[c] = (int8_t)((v + (v > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
    }
#endif
}
#endif

void nl_resize_bilinear(const nl_resize_bilinear_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t one = 1 << 10;
    const int32_t ch = p->channels;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = p->y_lo[oy];
            const int32_t y1 = p->y_hi[oy];
            const int32_t dy = p->y_scaled[oy] - one * y0;
            const int8_t *r0 = in + (b * p->in_h + y0) * p->in_w * ch;
            const int8_t *r1 = in + (b * p->in_h + y1) * p->in_w * ch;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = p->x_lo[ox];
                const int32_t x1 = p->x_hi[ox];
                const int32_t dx = p->x_scaled[ox] - one * x0;
#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FEATURE_DSP)
                if (fraction_ok(dy) && fraction_ok(dx)) {
                    blend_row(r0 + x0 * ch, r0 + x1 * ch, r1 + x0 * ch, r1 + x1 * ch, ch, dy, dx, out);
                    out += ch;
                    continue;
                }
#endif
                for (int32_t c = 0; c < ch; ++c) {
                    *out++ = blend64(r0[x0 * ch + c], r1[x0 * ch + c], r0[x1 * ch + c], r1[x1 * ch + c], dy, dx);
                }
            }
        }
    }
}
