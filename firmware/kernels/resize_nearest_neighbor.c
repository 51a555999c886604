/* RESIZE_NEAREST_NEIGHBOR: source rows/columns come from generation-time maps (all modes). */
#include <string.h>

#include "nlpool_kernels.h"

void nl_resize_nearest_neighbor(const nl_resize_nearest_params_t *p, const int8_t *in, int8_t *out)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int8_t *row = in + (b * p->in_h + p->y_map[oy]) * p->in_w * p->channels;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                memcpy(out, row + p->x_map[ox] * p->channels, (size_t)p->channels);
                out += p->channels;
            }
        }
    }
}
