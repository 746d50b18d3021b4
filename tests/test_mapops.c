/* test_mapops.c — core/mapops.c's vectorised upsampling and blur against the
 * scalar loops they replaced (kept here as the reference) and against a
 * direct double-precision 2-D Gaussian:
 *  - rd_upsample_bilinear_ac equals the scalar per-pixel form bit for bit
 *    (same operations in the same order), for up- and downsampling, 1-row /
 *    1-column sources and targets, widths past the 256-column chunk;
 *  - rd_gauss_blur, its AVX-512 form (where the CPU has it) and its 4-wide
 *    form, equals the scalar row/column passes bit for bit (each output's
 *    taps summed in tap order either way), for maps narrower than
 *    the radius (reflect repeats), 1×1, odd widths, widths past the chunk,
 *    σ from 0.5 to 8, and matches the direct 2-D Gaussian within float
 *    rounding;
 *  - σ ≤ 0 leaves the map untouched.
 * (scipy parity of both: tests/test_image_pil.py.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mapops.h"
#include "testutil.h"

static void upsample_scalar(const float *src, int sh, int sw, float *dst, int dh, int dw)
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
        for (int x = 0; x < dw; x++) {
            float fx = (float)x * rx;
            int x0 = (int)fx;
            if (x0 > sw - 1) x0 = sw - 1;
            int x1 = x0 + 1 < sw ? x0 + 1 : x0;
            float wx = fx - (float)x0;
            float top = r0[x0] + (r0[x1] - r0[x0]) * wx;
            float bot = r1[x0] + (r1[x1] - r1[x0]) * wx;
            dst[(size_t)y * dw + x] = top + (bot - top) * wy;
        }
    }
}


/* the scalar separable blur mapops.c had before vectorising */
static void blur_scalar(float *map, int h, int w, float sigma, float *tmp)
{
    int r = rd_gauss_radius(sigma);
    float k[513];
    double sum = 0;
    if (sigma <= 0 || r < 1) return;
    for (int i = -r; i <= r; i++) {
        double v = exp(-0.5 * (double)i * i / ((double)sigma * sigma));
        k[i + r] = (float)v;
        sum += v;
    }
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / sum);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) acc += k[i + r] * map[(size_t)y * w + rd_test_reflect(x + i, w)];
            tmp[(size_t)y * w + x] = acc;
        }
    for (int y = 0; y < h; y++) {
        float *o = map + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = 0;
        for (int i = -r; i <= r; i++) {
            const float *src = tmp + (size_t)rd_test_reflect(y + i, h) * w;
            for (int x = 0; x < w; x++) o[x] += k[i + r] * src[x];
        }
    }
}

static void check_upsample(int sh, int sw, int dh, int dw, unsigned seed)
{
    float *src = malloc((size_t)sh * sw * sizeof *src);
    float *a = malloc((size_t)dh * dw * sizeof *a), *b = malloc((size_t)dh * dw * sizeof *b);
    rd_fill_uniform(src, (size_t)sh * sw, seed, -3.0f, 5.0f);
    rd_upsample_bilinear_ac(src, sh, sw, a, dh, dw);
    upsample_scalar(src, sh, sw, b, dh, dw);
    size_t off = 0;
    for (size_t i = 0; i < (size_t)dh * dw; i++) off += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    RD_CHECK(off == 0, "upsample %dx%d -> %dx%d: %zu values differ from the scalar form", sh, sw, dh, dw, off);
    free(src);
    free(a);
    free(b);
}

static void check_blur(int h, int w, float sigma, unsigned seed)
{
    size_t n = (size_t)h * w;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *tmp = malloc(n * sizeof *tmp);
    double *d = malloc(n * sizeof *d);
    rd_fill_uniform(a, n, seed, -2.0f, 6.0f);
    memcpy(b, a, n * sizeof *a);
    if (n <= 4096) rd_test_blur_naive(a, h, w, sigma, d);
    rd_gauss_blur(a, h, w, sigma, tmp);
    blur_scalar(b, h, w, sigma, tmp);
    size_t off = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        off += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
        if (n <= 4096 && fabs(a[i] - d[i]) > worst) worst = fabs(a[i] - d[i]);
    }
    RD_CHECK(off == 0, "blur %dx%d sigma %g: %zu values differ from the scalar passes", h, w, (double)sigma, off);
    /* values within [-2, 6]: float taps and sums, a few ulps of 6 */
    RD_CHECK(worst < 4e-6, "blur %dx%d sigma %g: %.3g from the direct 2-D Gaussian", h, w, (double)sigma, worst);
    free(a);
    free(b);
    free(tmp);
    free(d);
}

int main(void)
{
    static const int up[][4] = {{28, 28, 224, 224}, {14, 14, 224, 224}, {7, 7, 224, 224}, {14, 11, 224, 224},
                                {1, 1, 5, 7},       {1, 9, 3, 300},     {9, 1, 300, 3},   {28, 50, 1, 1},
                                {60, 45, 17, 13},   {3, 40, 20, 600},   {36, 64, 288, 512}};
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) check_upsample(up[i][0], up[i][1], up[i][2], up[i][3], 7u + (unsigned)i);
    static const int bl[][2] = {{224, 224}, {60, 45}, {1, 1}, {1, 37}, {37, 1}, {5, 3}, {13, 17}, {40, 300}, {3, 600}, {64, 33}, {9, 32}, {9, 47}};
    static const float sig[] = {0.5f, 1.0f, 2.5f, 4.0f, 8.0f};
    for (int portable = 0; portable <= 1; portable++) { /* the AVX-512 form where the CPU has it, then the 4-wide one */
        rd_mapops_force_portable(portable);
        for (size_t i = 0; i < sizeof bl / sizeof bl[0]; i++)
            for (size_t s = 0; s < sizeof sig / sizeof sig[0]; s++)
                check_blur(bl[i][0], bl[i][1], sig[s], 100u + (unsigned)(i * 8 + s));
    }
    rd_mapops_force_portable(0);
    {
        float m[12], c[12], tmp[12];
        rd_fill_uniform(m, 12, 3, 0.0f, 1.0f);
        memcpy(c, m, sizeof m);
        rd_gauss_blur(m, 3, 4, 0.0f, tmp);
        RD_CHECK(!memcmp(m, c, sizeof m), "sigma 0 changed the map");
    }
    return rd_test_done("test_mapops");
}
