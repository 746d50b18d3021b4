/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int rd_test_failures = 0;

int rd_test_done(const char *name)
{
    if (rd_test_failures) {
        fprintf(stderr, "FAIL %s: %d check(s) failed\n", name, rd_test_failures);
        return 1;
    }
    fprintf(stderr, "ok %s\n", name);
    return 0;
}

double rd_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as failure */
    }
    return m;
}

double rd_rel_err(const float *a, const float *b, size_t n)
{
    double ref = 1e-12;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > ref) ref = fabs(b[i]);
    return rd_max_abs_diff(a, b, n) / ref;
}

void rd_fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi)
{
    uint64_t s = 0x9E3779B97F4A7C15ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

unsigned char *rd_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto out;
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) *len = (size_t)n;
out:
    fclose(f);
    return buf;
}

const char *rd_test_tmpdir(const char *tag)
{
    static char path[512];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/rd-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    return mkdtemp(path);
}

int rd_test_reflect(int i, int n)
{
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
    return i;
}

void rd_test_blur_naive(const float *in, int h, int w, double sigma, double *out)
{
    int r = (int)floor(4.0 * sigma + 0.5);
    double *k = malloc((size_t)(2 * r + 1) * sizeof *k), s = 0;
    for (int i = -r; i <= r; i++) s += k[i + r] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= s;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0;
            for (int dy = -r; dy <= r; dy++)
                for (int dx = -r; dx <= r; dx++)
                    a += k[dy + r] * k[dx + r] * in[(size_t)rd_test_reflect(y + dy, h) * w + rd_test_reflect(x + dx, w)];
            out[(size_t)y * w + x] = a;
        }
    free(k);
}
