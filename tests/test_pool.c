/* test_pool.c — tiled nearest-neighbour search against brute force; residuals
 * and scoring helpers against direct definitions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "pool.h"
#include "score.h"
#include "testutil.h"

static rd_team *team;

static void check_search(int c, size_t n_per, int nblocks, size_t nq, rd_pool_metric metric, unsigned seed)
{
    rd_err err = {0};
    rd_arena a;
    const float *blocks[8];
    size_t rows[8];
    float *data = malloc(n_per * nblocks * c * sizeof(float));
    float *q = malloc(nq * c * sizeof(float));
    int32_t *i1 = malloc(nq * sizeof(int32_t)), *i2 = malloc(nq * sizeof(int32_t));
    float *d1 = malloc(nq * sizeof(float)), *d2 = malloc(nq * sizeof(float));
    rd_fill_uniform(data, n_per * nblocks * c, seed, 0.0f, 1.0f);
    rd_fill_uniform(q, nq * c, seed + 1, 0.0f, 1.0f);
    /* make some queries exact copies of pool rows: distance must be 0 */
    memcpy(q, data + 5 * c, c * sizeof(float));
    for (int b = 0; b < nblocks; b++) {
        blocks[b] = data + b * n_per * c;
        rows[b] = n_per;
    }
    rd_pool *p = rd_pool_new(blocks, rows, nblocks, c, metric, &err);
    RD_CHECK(p != NULL, "pool_new: %s", err.msg);
    if (!p) goto out;
    RD_CHECK(rd_arena_init(&a, rd_pool_scratch_bytes(c, nq), &err) == RD_OK, "arena");
    RD_CHECK(rd_pool_nearest(p, q, nq, i1, d1, team, &a, &err) == RD_OK, "nearest: %s", err.msg);
    RD_CHECK(a.used == 0, "scratch not given back");
    RD_CHECK(a.peak <= a.cap, "scratch overflow");
    rd_pool_nearest_naive(p, q, nq, i2, d2);
    int mism = 0;
    for (size_t i = 0; i < nq; i++) {
        /* Ties and float rounding may pick another row of (nearly) the same
         * distance/similarity; the distance itself must agree. */
        if (i1[i] != i2[i]) {
            mism++;
            if (metric == RD_POOL_L2)
                RD_CHECK(fabsf(d1[i] - d2[i]) <= 1e-4f * (1 + d2[i]), "q%zu: d %g vs naive %g", i, d1[i], d2[i]);
        }
        RD_CHECK(d1[i] >= 0 && i1[i] >= 0 && (size_t)i1[i] < p->n, "q%zu: bad result", i);
    }
    RD_CHECK(mism <= (int)(nq / 100) + 1, "c=%d metric=%d: %d of %zu indices differ from brute force", c, metric,
             mism, nq);
    RD_CHECK(d1[0] < 1e-6f && i1[0] == 5, "exact copy not found: idx %d d %g", i1[0], d1[0]);
    rd_arena_release(&a);
    rd_pool_free(p);
out:
    free(data);
    free(q);
    free(i1);
    free(i2);
    free(d1);
    free(d2);
}

static void check_topk(void)
{
    enum { N = 1000 };
    float m[N], tmp[N], sorted[N];
    rd_fill_uniform(m, N, 7, -3, 3);
    m[10] = m[20] = m[30] = 5.0f; /* ties at the top */
    memcpy(sorted, m, sizeof m);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (sorted[j] > sorted[i]) {
                float t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    RD_CHECK(rd_score_image(m, N, 0, tmp) == 5.0f, "max");
    for (int k = 1; k <= N; k *= 3) {
        double s = 0;
        for (int i = 0; i < k; i++) s += sorted[i];
        float got = rd_score_image(m, N, (float)k / N, tmp);
        RD_CHECK(fabs(got - s / k) < 1e-4, "top-%d mean %g vs %g", k, got, s / k);
    }
    double mu, sd;
    float x[4] = {1, 2, 3, 4};
    rd_score_moments(x, 4, &mu, &sd);
    RD_CHECK(fabs(mu - 2.5) < 1e-12 && fabs(sd - sqrt(1.25)) < 1e-12, "moments %g %g", mu, sd);
}

static void check_residuals(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, pool[6] = {0, 0, 0, 1, 1, 1}, r[6], s[2];
    int nn[2] = {1, 0};
    rd_residuals(x, pool, nn, 2, 3, RD_RESID_X_MINUS_NN, r);
    RD_CHECK(r[0] == 0 && r[2] == 2 && r[3] == 4 && r[5] == 6, "x - x*");
    rd_score_residual_norm(r, 2, 3, s);
    RD_CHECK(fabsf(s[0] - sqrtf(5)) < 1e-6f && fabsf(s[1] - sqrtf(77)) < 1e-5f, "norm %g %g", s[0], s[1]);
    rd_residuals(x, pool, nn, 2, 3, RD_RESID_SQUARED, r);
    RD_CHECK(r[1] == 1 && r[2] == 4 && r[5] == 36, "(x - x*)^2");
}

static void search_suite(void)
{
    check_search(24, 700, 4, 1500, RD_POOL_L2, 1); /* crosses pool and query tiles */
    check_search(24, 700, 4, 1500, RD_POOL_COSINE, 2);
    check_search(7, 50, 2, 3, RD_POOL_L2, 3);      /* tiny, odd channel count, partial panel */
    check_search(96, 196, 3, 196, RD_POOL_L2, 4);
    check_search(1024, 40, 2, 37, RD_POOL_COSINE, 5); /* wide features: one panel per chunk */
}

int main(int argc, char **argv)
{
    rd_err err = {0};
    rd_blas_autofix(argc, argv);
    fprintf(stderr, "search kernel: %s\n", rd_pool_kernel());
    search_suite();                     /* default kernel, serial */
    team = rd_team_new(3, &err);        /* default kernel, 3 threads */
    RD_CHECK(team != NULL, "team: %s", err.msg);
    search_suite();
    rd_team_free(team);
    team = NULL;
    rd_pool_force_sgemm(1);             /* the OpenBLAS tile path */
    search_suite();
    rd_pool_force_sgemm(0);
    check_topk();
    check_residuals();
    return rd_test_done("pool");
}
