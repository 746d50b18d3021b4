/* test_score_calib.c — the calibration variants of core/score.c against naive references.
 *
 *  - rd_score_posstats: per-position mean / mean square over k maps, a direct
 *    2-D Gaussian (scipy "reflect", radius round(4σ), normalized 1-D taps),
 *    the mixture with the global moments, the sd floor; alpha 0 gives the
 *    global μ/σ everywhere; identical maps without smoothing give their value
 *    and the floor;
 *  - rd_score_edgestats: per ring of distance to the nearest edge (capped at
 *    ⌈min(h, w)/4⌉), the moments of every map's positions in the ring, by a
 *    direct ring-by-ring loop; same mixture and floor; a map that differs only
 *    in its outer ring is calibrated flat;
 *  - rd_score_accumulate_pos_hw: per-position z at level resolution, then a
 *    naive align_corners bilinear upsample; with constant μ/σ it equals
 *    rd_score_accumulate_hw (the global path);
 *  - rd_score_nn_adjust against the formula;
 *  - the invariant the neighbour calibration relies on (core/resad.c): a
 *    1-channel rd_pool_grid of per-position values has the same row layout as
 *    the feature pool of the same maps, global and tiled, so a feature pool
 *    row index finds its (reference, position) value;
 *  - rd_score_calib_parse accepts and refuses what score.h says. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "score.h"
#include "testutil.h"

static void posstats_naive(const float *loo, int k, int h, int w, double mu, double sigma, double alpha,
                           double smooth, double *pmu, double *psd)
{
    size_t n = (size_t)h * w;
    float *m = malloc(n * sizeof *m), *q = malloc(n * sizeof *q);
    double *mb = malloc(n * sizeof *mb), *qb = malloc(n * sizeof *qb);
    for (size_t p = 0; p < n; p++) {
        double a = 0, b = 0;
        for (int i = 0; i < k; i++) a += loo[i * n + p], b += (double)loo[i * n + p] * loo[i * n + p];
        m[p] = (float)(a / k), q[p] = (float)(b / k);
    }
    if (smooth > 0) {
        rd_test_blur_naive(m, h, w, smooth, mb);
        rd_test_blur_naive(q, h, w, smooth, qb);
    } else {
        for (size_t p = 0; p < n; p++) mb[p] = m[p], qb[p] = q[p];
    }
    for (size_t p = 0; p < n; p++) {
        double mm = (1 - alpha) * mu + alpha * mb[p];
        double v = (1 - alpha) * (sigma * sigma + mu * mu) + alpha * qb[p] - mm * mm;
        double sd = v > 0 ? sqrt(v) : 0;
        pmu[p] = mm;
        psd[p] = fmax(sd, RD_SCORE_POS_SD_FLOOR * sigma);
    }
    free(m), free(q), free(mb), free(qb);
}

static double max_rel(const float *a, const double *b, size_t n)
{
    double e = 0, s = 1e-12;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
    return e / s;
}

/* align_corners bilinear, direct */
static double bilin_naive(const double *z, int h, int w, int H, int W, int Y, int X)
{
    double fy = H > 1 ? (double)Y * (h - 1) / (H - 1) : 0, fx = W > 1 ? (double)X * (w - 1) / (W - 1) : 0;
    int y0 = (int)floor(fy), x0 = (int)floor(fx), y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
    double b = fy - y0, a = fx - x0;
    return (1 - b) * ((1 - a) * z[y0 * w + x0] + a * z[y0 * w + x1]) + b * ((1 - a) * z[y1 * w + x0] + a * z[y1 * w + x1]);
}

static void test_posstats(void)
{
    const int shapes[][3] = {{4, 14, 14}, {2, 7, 25}, {3, 28, 28}, {5, 1, 9}};
    const float alphas[] = {0.0f, 0.3f, 1.0f}, smooths[] = {0.0f, 1.0f, 2.5f};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int k = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
        size_t n = (size_t)h * w;
        float *loo = malloc((size_t)k * n * sizeof *loo), *pmu = malloc(n * sizeof *pmu),
              *psd = malloc(n * sizeof *psd), *tmp = malloc(n * sizeof *tmp);
        double *rmu = malloc(n * sizeof *rmu), *rsd = malloc(n * sizeof *rsd), mu, sd;
        rd_fill_uniform(loo, (size_t)k * n, 7u + (unsigned)si, -1.0f, 3.0f);
        for (size_t p = 0; p < n; p += 5) loo[p] += 4.0f; /* a "seam" in map 0 */
        rd_score_moments(loo, (size_t)k * n, &mu, &sd);
        for (size_t ai = 0; ai < 3; ai++)
            for (size_t mi = 0; mi < 3; mi++) {
                rd_score_posstats(loo, k, h, w, (float)mu, (float)sd, alphas[ai], smooths[mi], pmu, psd, tmp);
                posstats_naive(loo, k, h, w, (float)mu, (float)sd, alphas[ai], smooths[mi], rmu, rsd);
                double e1 = max_rel(pmu, rmu, n), e2 = max_rel(psd, rsd, n);
                RD_CHECK(e1 < 1e-5 && e2 < 1e-5, "posstats %dx%dx%d alpha %.1f smooth %.1f: mu err %.2g sd err %.2g",
                         k, h, w, alphas[ai], smooths[mi], e1, e2);
                if (alphas[ai] == 0.0f) {
                    int same = 1;
                    for (size_t p = 0; p < n; p++)
                        same &= fabsf(pmu[p] - (float)mu) <= 1e-5f * fabsf((float)mu) + 1e-6f &&
                                fabsf(psd[p] - (float)sd) <= 1e-4f * (float)sd;
                    RD_CHECK(same, "alpha 0 is the global calibration");
                }
            }
        /* identical constant maps, no smoothing: mean = the value, sd = the floor */
        for (size_t i = 0; i < (size_t)k * n; i++) loo[i] = 2.0f;
        rd_score_posstats(loo, k, h, w, 1.0f, 0.8f, 1.0f, 0.0f, pmu, psd, tmp);
        int ok = 1;
        for (size_t p = 0; p < n; p++) ok &= pmu[p] == 2.0f && fabsf(psd[p] - RD_SCORE_POS_SD_FLOOR * 0.8f) < 1e-6f;
        RD_CHECK(ok, "constant maps: mean %g sd %g", pmu[0], psd[0]);
        free(loo), free(pmu), free(psd), free(tmp), free(rmu), free(rsd);
    }
}

static void test_accumulate(void)
{
    const int h = 7, w = 9, H = 40, W = 57;
    size_t n = (size_t)h * w, N = (size_t)H * W;
    float *lv = malloc(n * sizeof *lv), *pmu = malloc(n * sizeof *pmu), *psd = malloc(n * sizeof *psd);
    float *acc = malloc(N * sizeof *acc), *acc2 = malloc(N * sizeof *acc2), *tmp = malloc((n + N) * sizeof *tmp);
    double *z = malloc(n * sizeof *z), *want = malloc(N * sizeof *want);
    rd_fill_uniform(lv, n, 3, 0.0f, 5.0f);
    rd_fill_uniform(pmu, n, 4, 1.0f, 2.0f);
    rd_fill_uniform(psd, n, 5, 0.5f, 1.5f);
    rd_fill_uniform(acc, N, 6, -1.0f, 1.0f);
    memcpy(acc2, acc, N * sizeof *acc);
    for (size_t i = 0; i < n; i++) z[i] = ((double)lv[i] - pmu[i]) / psd[i];
    for (int Y = 0; Y < H; Y++)
        for (int X = 0; X < W; X++) want[(size_t)Y * W + X] = acc[(size_t)Y * W + X] + 0.5 * bilin_naive(z, h, w, H, W, Y, X);
    rd_score_accumulate_pos_hw(lv, pmu, psd, h, w, 0.5f, acc, H, W, tmp);
    double e = max_rel(acc, want, N);
    RD_CHECK(e < 1e-5, "accumulate_pos vs naive: %.2g", e);
    /* constant statistics: the global path */
    for (size_t i = 0; i < n; i++) pmu[i] = 1.25f, psd[i] = 0.75f;
    memcpy(acc, acc2, N * sizeof *acc);
    rd_score_accumulate_pos_hw(lv, pmu, psd, h, w, 0.5f, acc, H, W, tmp);
    rd_score_accumulate_hw(lv, h, w, 1.25f, 0.75f, 0.5f, acc2, H, W, tmp);
    double d = 0;
    for (size_t i = 0; i < N; i++) d = fmax(d, fabs(acc[i] - acc2[i]));
    RD_CHECK(d < 1e-5, "constant per-position statistics differ from the global path by %.2g", d);
    free(lv), free(pmu), free(psd), free(acc), free(acc2), free(tmp), free(z), free(want);
}

static void test_nn_adjust(void)
{
    float d[5] = {1, 2, 3, 4, 5}, vals[3] = {0.5f, 2.0f, -1.0f};
    int32_t nn[5] = {0, 1, 2, 1, 0};
    rd_score_nn_adjust(d, nn, vals, 5, 0.5f, 0.5f);
    const float want[5] = {1.0f, 2.0f - 0.75f, 3.0f + 0.75f, 4.0f - 0.75f, 5.0f};
    for (int i = 0; i < 5; i++) RD_CHECK(fabsf(d[i] - want[i]) < 1e-6f, "nn_adjust %d: %g, want %g", i, d[i], want[i]);
}

/* A c-channel pool whose channel 0 carries a unique id per (map, position),
 * and a 1-channel pool of the id maps: every row holds the same id. */
static void test_pool_layout(void)
{
    const int k = 3, c = 5, shapes[][3] = {{14, 14, 0}, {28, 50, 4}, {13, 30, 3}, {56, 100, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int h = shapes[si][0], w = shapes[si][1], tc = shapes[si][2];
        size_t n = (size_t)h * w;
        float *f = malloc((size_t)k * n * c * sizeof *f), *v = malloc((size_t)k * n * sizeof *v);
        const float *fb[3], *vb[3];
        rd_fill_uniform(f, (size_t)k * n * c, 11, -1.0f, 1.0f);
        for (int i = 0; i < k; i++) {
            for (size_t p = 0; p < n; p++) f[((size_t)i * n + p) * c] = v[(size_t)i * n + p] = (float)(1 + i * n + p);
            fb[i] = f + (size_t)i * n * c, vb[i] = v + (size_t)i * n;
        }
        rd_err err = {0};
        rd_pool_grid *g = rd_pool_grid_new(fb, k, h, w, c, RD_POOL_L2, tc, &err);
        rd_pool_grid *gv = rd_pool_grid_new(vb, k, h, w, 1, RD_POOL_L2, tc, &err);
        RD_CHECK(g && gv, "pools: %s", err.msg);
        if (g && gv) {
            RD_CHECK(g->pool->n == gv->pool->n && rd_pool_grid_is_local(g) == rd_pool_grid_is_local(gv),
                     "%dx%d tile %d: %zu vs %zu rows", h, w, tc, g->pool->n, gv->pool->n);
            size_t bad = 0, ids = 0;
            for (size_t r = 0; r < g->pool->n && r < gv->pool->n; r++) {
                bad += g->rows[r * c] != gv->rows[r];
                ids += gv->rows[r] != 0;
            }
            RD_CHECK(bad == 0 && ids == (size_t)k * n, "%dx%d tile %d (%s): %zu rows differ, %zu ids", h, w, tc,
                     rd_pool_grid_is_local(g) ? "local" : "global", bad, ids);
        }
        rd_pool_grid_free(g);
        rd_pool_grid_free(gv);
        free(f), free(v);
    }
}

static int ring_naive(int y, int x, int h, int w, int R)
{
    return (int)fmin(fmin(fmin(y, x), fmin(h - 1 - y, w - 1 - x)), R);
}

static void edgestats_naive(const float *loo, int k, int h, int w, double mu, double sigma, double alpha,
                            double *pmu, double *psd)
{
    int R = ((h < w ? h : w) + 3) / 4;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int r = ring_naive(y, x, h, w, R);
            double a = 0, b = 0, c = 0;
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++) {
                    if (ring_naive(yy, xx, h, w, R) != r) continue;
                    for (int i = 0; i < k; i++) {
                        double v = loo[(size_t)i * h * w + (size_t)yy * w + xx];
                        a += v, b += v * v, c += 1;
                    }
                }
            double mm = (1 - alpha) * mu + alpha * a / c;
            double v = (1 - alpha) * (sigma * sigma + mu * mu) + alpha * b / c - mm * mm;
            pmu[y * w + x] = mm;
            psd[y * w + x] = fmax(v > 0 ? sqrt(v) : 0, RD_SCORE_POS_SD_FLOOR * sigma);
        }
}

static void test_edgestats(void)
{
    const int shapes[][3] = {{4, 14, 14}, {2, 7, 25}, {3, 28, 50}, {5, 1, 9}, {2, 2, 2}};
    const float alphas[] = {0.0f, 0.5f, 1.0f};
    RD_CHECK(rd_score_edge_rings(28, 28) == 7 && rd_score_edge_rings(7, 7) == 2 && rd_score_edge_rings(1, 9) == 1 &&
                 rd_score_edge_rings(50, 28) == 7,
             "ring counts");
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int k = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
        size_t n = (size_t)h * w;
        float *loo = malloc((size_t)k * n * sizeof *loo), *pmu = malloc(n * sizeof *pmu),
              *psd = malloc(n * sizeof *psd);
        double *rmu = malloc(n * sizeof *rmu), *rsd = malloc(n * sizeof *rsd), mu, sd;
        rd_fill_uniform(loo, (size_t)k * n, 11u + (unsigned)si, -1.0f, 3.0f);
        for (size_t i = 0; i < (size_t)k * n; i++)
            if (i % n < (size_t)w) loo[i] += 2.0f; /* a hot top row in every map */
        rd_score_moments(loo, (size_t)k * n, &mu, &sd);
        for (size_t ai = 0; ai < 3; ai++) {
            rd_score_edgestats(loo, k, h, w, (float)mu, (float)sd, alphas[ai], pmu, psd);
            edgestats_naive(loo, k, h, w, (float)mu, (float)sd, alphas[ai], rmu, rsd);
            double e1 = max_rel(pmu, rmu, n), e2 = max_rel(psd, rsd, n);
            RD_CHECK(e1 < 1e-5 && e2 < 1e-5, "edgestats %dx%dx%d alpha %.1f: mu err %.2g sd err %.2g", k, h, w,
                     alphas[ai], e1, e2);
        }
        free(loo), free(pmu), free(psd), free(rmu), free(rsd);
    }
    /* maps of 1 inside and 5 on the outer ring: z of the maps' own values is 0 everywhere */
    {
        int k = 3, h = 12, w = 20;
        size_t n = (size_t)h * w;
        float loo[3 * 12 * 20], pmu[12 * 20], psd[12 * 20];
        for (size_t i = 0; i < (size_t)k * n; i++) {
            int y = (int)(i % n) / w, x = (int)(i % n) % w;
            loo[i] = (y == 0 || x == 0 || y == h - 1 || x == w - 1) ? 5.0f : 1.0f;
        }
        rd_score_edgestats(loo, k, h, w, 2.0f, 1.0f, 1.0f, pmu, psd);
        int ok = 1;
        for (size_t p = 0; p < n; p++) ok &= pmu[p] == loo[p] && psd[p] == RD_SCORE_POS_SD_FLOOR;
        RD_CHECK(ok, "outer ring calibrated flat: mu %g/%g", pmu[0], pmu[w + 1]);
    }
}

static void test_parse(void)
{
    rd_score_calib m;
    float a;
    RD_CHECK(!rd_score_calib_parse("global", &m, &a) && m == RD_SCORE_CALIB_GLOBAL && a == 1.0f, "global");
    RD_CHECK(!rd_score_calib_parse("position", &m, &a) && m == RD_SCORE_CALIB_POSITION && a == 1.0f, "position");
    RD_CHECK(!rd_score_calib_parse("neighbour:0.25", &m, &a) && m == RD_SCORE_CALIB_NEIGHBOUR && a == 0.25f, "nb");
    RD_CHECK(!rd_score_calib_parse("edge:0.5", &m, &a) && m == RD_SCORE_CALIB_EDGE && a == 0.5f, "edge");
    const char *bad[] = {"", "globalx", "global:0.5", "position:", "position:1.5", "position:-0.1", "neighbour:x",
                         "pos", "neighbour:0.5x", "edge:", "edges", "edge:2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        RD_CHECK(rd_score_calib_parse(bad[i], &m, &a) == -1, "'%s' accepted", bad[i]);
    RD_CHECK(!strcmp(rd_score_calib_name(RD_SCORE_CALIB_NEIGHBOUR), "neighbour"), "name");
    RD_CHECK(!strcmp(rd_score_calib_name(RD_SCORE_CALIB_EDGE), "edge"), "name");
}

int main(void)
{
    test_posstats();
    test_edgestats();
    test_accumulate();
    test_nn_adjust();
    test_pool_layout();
    test_parse();
    return rd_test_done("test_score_calib");
}
