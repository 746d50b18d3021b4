/* tensor.h — the one feature-map type of core/.
 *
 * Every activation is one image's H×W×C block of floats, channels last
 * (HWC, contiguous): a position's C channels are adjacent, so a 1×1 conv is a
 * single GEMM and a level's features are directly the N×C matrix the reference
 * pool and the scorers work on.  A tensor never owns its data: data points into
 * a worker's arena or into a buffer whose owner is stated where it is made. */
#ifndef RD_TENSOR_H
#define RD_TENSOR_H

#include <stddef.h>

typedef struct rd_tensor {
    float *data;
    int h, w, c;
} rd_tensor;

static inline size_t rd_tensor_numel(const rd_tensor *t)
{
    return (size_t)t->h * (size_t)t->w * (size_t)t->c;
}

#define RD_MAX_LEVELS 4

#endif
