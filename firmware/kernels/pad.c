/* PAD / PADV2: copies the input into the interior of the output and fills the rest. */
#include "nlpool_kernels.h"

void nl_pad(const nl_pad_params_t *p, const int8_t *in, int8_t *out)
{
    const int32_t last = NL_MAX_DIMS - 1;
    const int32_t n = p->out_dims[last];
    const int32_t before = p->before[last];
    const int32_t width = p->in_dims[last];
    nl_odometer_t it;
    const int32_t rows = nl_odometer_start(&it, p->out_dims);
    for (int32_t row = 0; row < rows; ++row) {
        /* The input row this output row overlaps, unless an outer index lies in the padding. */
        int32_t src = 0;
        int inside = 1;
        for (int k = 0; k < last; ++k) {
            const int32_t i = it.index[k] - p->before[k];
            if (i < 0 || i >= p->in_dims[k]) {
                inside = 0;
                break;
            }
            src = src * p->in_dims[k] + i;
        }
        const int8_t *src_row = in + src * width;
        for (int32_t i = 0; i < n; ++i) {
            const int32_t x = i - before;
            *out++ = inside && x >= 0 && x < width ? src_row[x] : (int8_t)p->pad_value;
        }
        nl_odometer_next_row(&it, p->out_dims, NULL, NULL);
    }
}
