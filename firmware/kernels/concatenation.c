/* CONCATENATION along one axis: outer x (axis_i x inner) blocks copied in input order. */
#include <string.h>

#include "nlpool_kernels.h"

void nl_concatenation(const nl_concat_params_t *p, const int8_t *const *ins, int8_t *out)
{
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const int32_t n = p->axis_sizes[i] * p->inner;
            memcpy(out, ins[i] + o * n, (size_t)n);
            out += n;
        }
    }
}
