/* score.c — residuals, the residual-norm scorer and map assembly (see score.h). */
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mapops.h"
#include "v4.h"

/* The element-wise passes over the working grid use GCC/Clang vector
 * extensions (at -O2 GCC leaves them scalar); each element gets the scalar
 * form's operations in the same order, so the results are unchanged. */

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
    const rd_v4 vw = {weight, weight, weight, weight}, vmu = {mu, mu, mu, mu}, vinv = {inv, inv, inv, inv};
    size_t i = 0;
    rd_upsample_bilinear_ac(level, h, w, tmp, H, W);
    for (; i + 4 <= n; i += 4) rd_v4_st(acc + i, rd_v4_ld(acc + i) + vw * (rd_v4_ld(tmp + i) - vmu) * vinv);
    for (; i < n; i++) acc[i] += weight * (tmp[i] - mu) * inv;
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

static const char *const calib_names[] = {"global", "position", "neighbour", "edge"};

const char *rd_score_calib_name(rd_score_calib mode)
{
    return (unsigned)mode < sizeof calib_names / sizeof *calib_names ? calib_names[mode] : "?";
}

int rd_score_calib_parse(const char *s, rd_score_calib *mode, float *alpha)
{
    for (int i = 0; i < (int)(sizeof calib_names / sizeof *calib_names); i++) {
        size_t n = strlen(calib_names[i]);
        if (strncmp(s, calib_names[i], n) || (s[n] && s[n] != ':')) continue;
        float a = 1.0f;
        if (s[n] == ':') {
            if (i == RD_SCORE_CALIB_GLOBAL || !s[n + 1]) return -1;
            char *end;
            a = strtof(s + n + 1, &end);
            if (*end || !(a >= 0 && a <= 1)) return -1;
        }
        *mode = (rd_score_calib)i;
        *alpha = a;
        return 0;
    }
    return -1;
}

/* The calibration variants' mixture: a local mean m and mean square q mixed
 * with the global μ/σ by alpha, as the moments of the mixture, the sd floored
 * at RD_SCORE_POS_SD_FLOOR·σ. */
static void mix_moments(double m, double q, float mu, float sigma, float alpha, float *omu, float *osd)
{
    const double g2 = (double)sigma * sigma + (double)mu * mu, lo = (double)RD_SCORE_POS_SD_FLOOR * sigma;
    const double mm = (1 - (double)alpha) * mu + alpha * m;
    const double v = (1 - (double)alpha) * g2 + alpha * q - mm * mm;
    const double sd = v > 0 ? sqrt(v) : 0;
    *omu = (float)mm;
    *osd = (float)(sd > lo ? sd : lo);
}

void rd_score_posstats(const float *loo, int k, int h, int w, float mu, float sigma, float alpha, float smooth,
                       float *pmu, float *psd, float *tmp)
{
    const size_t n = (size_t)h * w;
    for (size_t p = 0; p < n; p++) {
        double m = 0, q = 0;
        for (int i = 0; i < k; i++) {
            double v = loo[(size_t)i * n + p];
            m += v;
            q += v * v;
        }
        pmu[p] = (float)(m / k);
        psd[p] = (float)(q / k); /* the mean square until the end */
    }
    if (smooth > 0) {
        rd_gauss_blur(pmu, h, w, smooth, tmp);
        rd_gauss_blur(psd, h, w, smooth, tmp);
    }
    for (size_t p = 0; p < n; p++) mix_moments(pmu[p], psd[p], mu, sigma, alpha, &pmu[p], &psd[p]);
}

int rd_score_edge_rings(int h, int w)
{
    int s = h < w ? h : w;
    return (s + 3) / 4;
}

/* Ring of (y, x): its distance in cells to the nearest edge, capped at R. */
static int edge_ring(int y, int x, int h, int w, int R)
{
    int r = y < x ? y : x;
    if (h - 1 - y < r) r = h - 1 - y;
    if (w - 1 - x < r) r = w - 1 - x;
    return r < R ? r : R;
}

void rd_score_edgestats(const float *loo, int k, int h, int w, float mu, float sigma, float alpha, float *pmu,
                        float *psd)
{
    enum { RMAX = 1024 };
    const int R = rd_score_edge_rings(h, w) < RMAX ? rd_score_edge_rings(h, w) : RMAX;
    double m[RMAX + 1] = {0}, q[RMAX + 1] = {0}, cnt[RMAX + 1] = {0};
    const size_t n = (size_t)h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int r = edge_ring(y, x, h, w, R);
            for (int i = 0; i < k; i++) {
                double v = loo[(size_t)i * n + (size_t)y * w + x];
                m[r] += v;
                q[r] += v * v;
            }
            cnt[r] += k;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int r = edge_ring(y, x, h, w, R);
            const size_t p = (size_t)y * w + x;
            mix_moments(m[r] / cnt[r], q[r] / cnt[r], mu, sigma, alpha, &pmu[p], &psd[p]);
        }
}

void rd_score_accumulate_pos_hw(const float *level, const float *pmu, const float *psd, int h, int w, float weight,
                                float *acc, int H, int W, float *tmp)
{
    const size_t n = (size_t)h * w, N = (size_t)H * W;
    float *z = tmp, *up = tmp + n;
    for (size_t i = 0; i < n; i++) z[i] = (level[i] - pmu[i]) / psd[i];
    const rd_v4 vw = {weight, weight, weight, weight};
    size_t i = 0;
    rd_upsample_bilinear_ac(z, h, w, up, H, W);
    for (; i + 4 <= N; i += 4) rd_v4_st(acc + i, rd_v4_ld(acc + i) + vw * rd_v4_ld(up + i));
    for (; i < N; i++) acc[i] += weight * up[i];
}

void rd_score_nn_adjust(float *d, const int32_t *nn, const float *vals, size_t n, float mu_l, float alpha)
{
    for (size_t i = 0; i < n; i++) d[i] -= alpha * (vals[nn[i]] - mu_l);
}
