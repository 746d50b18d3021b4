/* mapops.c — bilinear (align_corners) upsampling and Gaussian blur of maps (see mapops.h). */
#include "mapops.h"

#include <math.h>
#include <stdlib.h>

void rd_upsample_bilinear_ac(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    const float ry = dh > 1 ? (float)(sh - 1) / (float)(dh - 1) : 0.0f;
    const float rx = dw > 1 ? (float)(sw - 1) / (float)(dw - 1) : 0.0f;
    for (int y = 0; y < dh; y++) {
        float fy = (float)y * ry;
        int y0 = (int)fy;
        if (y0 > sh - 1) y0 = sh - 1;
        int y1 = y0 + 1 < sh ? y0 + 1 : y0;
        float wy = fy - (float)y0;
        const float *r0 = src + (size_t)y0 * sw, *r1 = src + (size_t)y1 * sw;
        float *o = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++) {
            float fx = (float)x * rx;
            int x0 = (int)fx;
            if (x0 > sw - 1) x0 = sw - 1;
            int x1 = x0 + 1 < sw ? x0 + 1 : x0;
            float wx = fx - (float)x0;
            float top = r0[x0] + (r0[x1] - r0[x0]) * wx;
            float bot = r1[x0] + (r1[x1] - r1[x0]) * wx;
            o[x] = top + (bot - top) * wy;
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

void rd_gauss_blur(float *map, int h, int w, float sigma, float *tmp)
{
    int r = rd_gauss_radius(sigma);
    float k[2 * MAX_RADIUS + 1];
    double sum = 0;
    if (sigma <= 0 || r < 1) return;
    if (r > MAX_RADIUS) r = MAX_RADIUS;
    for (int i = -r; i <= r; i++) {
        double v = exp(-0.5 * (double)i * i / ((double)sigma * sigma));
        k[i + r] = (float)v;
        sum += v;
    }
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / sum);
    /* rows: map → tmp */
    for (int y = 0; y < h; y++) {
        const float *row = map + (size_t)y * w;
        float *o = tmp + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            float acc = 0;
            if (x >= r && x + r < w)
                for (int i = -r; i <= r; i++) acc += k[i + r] * row[x + i];
            else
                for (int i = -r; i <= r; i++) acc += k[i + r] * row[reflect(x + i, w)];
            o[x] = acc;
        }
    }
    /* columns: tmp → map, a row at a time for cache-friendly access */
    for (int y = 0; y < h; y++) {
        float *o = map + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = 0;
        for (int i = -r; i <= r; i++) {
            const float *src = tmp + (size_t)reflect(y + i, h) * w;
            const float kv = k[i + r];
            for (int x = 0; x < w; x++) o[x] += kv * src[x];
        }
    }
}
