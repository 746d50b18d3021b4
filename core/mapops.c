/* mapops.c — bilinear (align_corners) upsampling and Gaussian blur of maps (see mapops.h).
 *
 * The loops are written with GCC/Clang vector extensions, 16 outputs at a
 * time (four 4-wide accumulators): at -O2 GCC leaves these loops scalar (its
 * cheap cost model does not version for aliasing).  Every output is computed
 * with the same operations in the same order as the scalar form (each tap's
 * product added in tap order, no fused multiply-add), so the results are the
 * scalar loops' bit for bit; tests/test_mapops.c keeps those loops as its
 * reference. */
#include "mapops.h"
#include "v4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* Columns handled per pass: the per-column tables and row buffers live on the stack. */
#define CHUNK 256

void rd_upsample_bilinear_ac(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    const float ry = dh > 1 ? (float)(sh - 1) / (float)(dh - 1) : 0.0f;
    const float rx = dw > 1 ? (float)(sw - 1) / (float)(dw - 1) : 0.0f;
    int xa[CHUNK], xb[CHUNK];
    float wx[CHUNK], top[CHUNK], bot[CHUNK];
    for (int c0 = 0; c0 < dw; c0 += CHUNK) {
        const int n = dw - c0 < CHUNK ? dw - c0 : CHUNK;
        for (int j = 0; j < n; j++) {
            float fx = (float)(c0 + j) * rx;
            int x0 = (int)fx;
            if (x0 > sw - 1) x0 = sw - 1;
            xa[j] = x0;
            xb[j] = x0 + 1 < sw ? x0 + 1 : x0;
            wx[j] = fx - (float)x0;
        }
        int have0 = -1, have1 = -1; /* source rows now in top / bot */
        for (int y = 0; y < dh; y++) {
            float fy = (float)y * ry;
            int y0 = (int)fy;
            if (y0 > sh - 1) y0 = sh - 1;
            int y1 = y0 + 1 < sh ? y0 + 1 : y0;
            float wy = fy - (float)y0;
            if (y0 != have0) {
                if (y0 == have1) { /* moving down one source row: the old bottom is the new top */
                    memcpy(top, bot, (size_t)n * sizeof *top);
                } else {
                    const float *r0 = src + (size_t)y0 * sw;
                    for (int j = 0; j < n; j++) top[j] = r0[xa[j]] + (r0[xb[j]] - r0[xa[j]]) * wx[j];
                }
                have0 = y0;
                have1 = -1;
            }
            if (y1 != have1) {
                const float *r1 = src + (size_t)y1 * sw;
                for (int j = 0; j < n; j++) bot[j] = r1[xa[j]] + (r1[xb[j]] - r1[xa[j]]) * wx[j];
                have1 = y1;
            }
            float *o = dst + (size_t)y * dw + c0;
            const rd_v4 vw = {wy, wy, wy, wy};
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                rd_v4 t = rd_v4_ld(top + j);
                rd_v4_st(o + j, t + (rd_v4_ld(bot + j) - t) * vw);
            }
            for (; j < n; j++) o[j] = top[j] + (bot[j] - top[j]) * wy;
        }
    }
}

int rd_gauss_radius(float sigma) { return (int)(4.0f * sigma + 0.5f); }

/* scipy "reflect" (half-sample symmetric): index −1 → 0, n → n−1, repeating. */
static int reflect(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

#define MAX_RADIUS 256

/* o[x] = Σ_t k[t]·rows[t][x] for x < n, in tap order.  The column pass gives
 * it the reflected rows; the row pass gives it rows[t] = in + t, so output x
 * reads in[x + t]. */
static void conv_col(const float *const *rows, const float *k, int taps, float *o, int n)
{
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        rd_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int t = 0; t < taps; t++) {
            const rd_v4 kv = {k[t], k[t], k[t], k[t]};
            const float *p = rows[t] + x;
            a0 += kv * rd_v4_ld(p);
            a1 += kv * rd_v4_ld(p + 4);
            a2 += kv * rd_v4_ld(p + 8);
            a3 += kv * rd_v4_ld(p + 12);
        }
        rd_v4_st(o + x, a0);
        rd_v4_st(o + x + 4, a1);
        rd_v4_st(o + x + 8, a2);
        rd_v4_st(o + x + 12, a3);
    }
    for (; x + 4 <= n; x += 4) {
        rd_v4 a = {0};
        for (int t = 0; t < taps; t++) {
            const rd_v4 kv = {k[t], k[t], k[t], k[t]};
            a += kv * rd_v4_ld(rows[t] + x);
        }
        rd_v4_st(o + x, a);
    }
    for (; x < n; x++) {
        float a = 0;
        for (int t = 0; t < taps; t++) a += k[t] * rows[t][x];
        o[x] = a;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX-512 form of the pass, chosen at run time: 32 outputs per step in
 * two 16-wide accumulators, the same products and sums in the same order (C11
 * mode does not contract them into fused multiply-adds), so the results are
 * the portable form's bit for bit; the last n % 32 outputs go to it. */
#define RD_MAPOPS_X86 1
typedef float v16 __attribute__((vector_size(64)));

__attribute__((target("avx512f"))) static void conv_col512(const float *const *rows, const float *k, int taps,
                                                           float *o, int n)
{
    int x = 0;
    for (; x + 32 <= n; x += 32) {
        v16 a0 = {0}, a1 = {0};
        for (int t = 0; t < taps; t++) {
            const v16 kv = {k[t], k[t], k[t], k[t], k[t], k[t], k[t], k[t],
                            k[t], k[t], k[t], k[t], k[t], k[t], k[t], k[t]};
            v16 p0, p1;
            memcpy(&p0, rows[t] + x, sizeof p0);
            memcpy(&p1, rows[t] + x + 16, sizeof p1);
            a0 += kv * p0;
            a1 += kv * p1;
        }
        memcpy(o + x, &a0, sizeof a0);
        memcpy(o + x + 16, &a1, sizeof a1);
    }
    if (x < n) {
        const float *rest[2 * MAX_RADIUS + 1];
        for (int t = 0; t < taps; t++) rest[t] = rows[t] + x;
        conv_col(rest, k, taps, o + x, n - x);
    }
}
#endif

static int portable; /* rd_mapops_force_portable */

void rd_mapops_force_portable(int on) { portable = on; }

void rd_gauss_blur(float *map, int h, int w, float sigma, float *tmp)
{
    int r = rd_gauss_radius(sigma);
    float k[2 * MAX_RADIUS + 1];
    float pad[CHUNK + 2 * MAX_RADIUS];
    const float *rows[2 * MAX_RADIUS + 1];
    double sum = 0;
    if (sigma <= 0 || r < 1) return;
    if (r > MAX_RADIUS) r = MAX_RADIUS;
    const int taps = 2 * r + 1;
    void (*pass)(const float *const *, const float *, int, float *, int) = conv_col;
#ifdef RD_MAPOPS_X86
    if (!portable && __builtin_cpu_supports("avx512f")) pass = conv_col512;
#endif
    for (int i = -r; i <= r; i++) {
        double v = exp(-0.5 * (double)i * i / ((double)sigma * sigma));
        k[i + r] = (float)v;
        sum += v;
    }
    for (int i = 0; i < taps; i++) k[i] = (float)(k[i] / sum);
    /* rows: map → tmp, CHUNK outputs at a time from a reflect-padded copy */
    for (int y = 0; y < h; y++) {
        const float *row = map + (size_t)y * w;
        float *o = tmp + (size_t)y * w;
        for (int c0 = 0; c0 < w; c0 += CHUNK) {
            const int n = w - c0 < CHUNK ? w - c0 : CHUNK;
            const int lo = c0 - r, hi = c0 + n + r; /* source columns [lo, hi) */
            const float *in = pad;
            if (lo >= 0 && hi <= w)
                in = row + lo;
            else
                for (int j = lo; j < hi; j++) pad[j - lo] = row[j >= 0 && j < w ? j : reflect(j, w)];
            for (int t = 0; t < taps; t++) rows[t] = in + t;
            pass(rows, k, taps, o + c0, n);
        }
    }
    /* columns: tmp → map, a row at a time for cache-friendly access */
    for (int y = 0; y < h; y++) {
        for (int i = -r; i <= r; i++) rows[i + r] = tmp + (size_t)reflect(y + i, h) * w;
        pass(rows, k, taps, map + (size_t)y * w, w);
    }
}
