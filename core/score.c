/* score.c — residuals, the residual-norm scorer and map assembly (see score.h). */
#include "score.h"

#include <math.h>
#include <string.h>

#include "mapops.h"

void rd_residuals(const float *x, const float *pool_rows, const int *nn, size_t n, int c,
                  rd_resid mode, float *r)
{
    for (size_t i = 0; i < n; i++) {
        const float *a = x + i * (size_t)c;
        const float *b = pool_rows + (size_t)nn[i] * (size_t)c;
        float *o = r + i * (size_t)c;
        if (mode == RD_RESID_SQUARED)
            for (int j = 0; j < c; j++) o[j] = (a[j] - b[j]) * (a[j] - b[j]);
        else
            for (int j = 0; j < c; j++) o[j] = a[j] - b[j];
    }
}

void rd_score_residual_norm(const float *r, size_t n, int c, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = r + i * (size_t)c;
        float s = 0;
        for (int j = 0; j < c; j++) s += v[j] * v[j];
        out[i] = sqrtf(s);
    }
}

void rd_score_accumulate(const float *level, int h, int w, float mu, float sigma, float weight,
                         float *acc, int s, float *tmp)
{
    rd_score_accumulate_hw(level, h, w, mu, sigma, weight, acc, s, s, tmp);
}

void rd_score_accumulate_hw(const float *level, int h, int w, float mu, float sigma, float weight, float *acc, int H,
                            int W, float *tmp)
{
    const float inv = sigma > 0 ? 1.0f / sigma : 1.0f;
    const size_t n = (size_t)H * W;
    rd_upsample_bilinear_ac(level, h, w, tmp, H, W);
    for (size_t i = 0; i < n; i++) acc[i] += weight * (tmp[i] - mu) * inv;
}

static inline void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

static float median3(float a, float b, float c)
{
    if (a > b) swapf(&a, &b);
    if (b > c) swapf(&b, &c);
    if (a > b) swapf(&a, &b);
    return b;
}

/* Quickselect with a three-way partition: afterwards a[0..k) holds the k
 * largest values (in no particular order).  Expected O(n). */
static void select_top(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        float pv = median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        size_t lt = lo, i = lo, gt = hi; /* [lo,lt) > pv, [lt,gt) == pv, [gt,hi) < pv */
        while (i < gt) {
            if (a[i] > pv) swapf(&a[lt++], &a[i++]);
            else if (a[i] < pv) swapf(&a[i], &a[--gt]);
            else i++;
        }
        if (k <= lt) hi = lt;
        else if (k <= gt) return;
        else lo = gt;
    }
}

float rd_score_image(const float *map, size_t n, float topk_frac, float *tmp)
{
    if (n == 0) return NAN;
    if (topk_frac <= 0) {
        float m = map[0];
        for (size_t i = 1; i < n; i++)
            if (map[i] > m) m = map[i];
        return m;
    }
    /* the fraction arrives as a float: 0.003f·1000 = 3.0000000261, not 4 values */
    size_t k = (size_t)ceil((double)topk_frac * (double)n - 1e-3);
    if (k < 1) k = 1;
    if (k > n) k = n;
    memcpy(tmp, map, n * sizeof(float));
    select_top(tmp, n, k);
    double s = 0;
    for (size_t i = 0; i < k; i++) s += tmp[i];
    return (float)(s / (double)k);
}

void rd_score_moments(const float *x, size_t n, double *mean, double *std)
{
    double m = 0, m2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - m;
        m += d / (double)(i + 1);
        m2 += d * (x[i] - m);
    }
    *mean = m;
    *std = n > 0 ? sqrt(m2 / (double)n) : 0;
}
