/* v4.h — the 4-wide float vector (GCC/Clang vector extensions) that core's
 * element-wise loops are written with, since at -O2 GCC leaves such loops
 * scalar, and its unaligned load and store.  Internal to core/. */
#ifndef RD_V4_H
#define RD_V4_H

#include <stdint.h>
#include <string.h>

typedef float rd_v4 __attribute__((vector_size(16)));
typedef int32_t rd_v4i __attribute__((vector_size(16)));

static inline rd_v4 rd_v4_ld(const float *p)
{
    rd_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void rd_v4_st(float *p, rd_v4 v) { memcpy(p, &v, sizeof v); }

#endif
