/* test_pool.c — tiled nearest-neighbour search against brute force (every
 * kernel the CPU runs, the bf16 one also against its error bound); residuals
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
    if (!data) return;
    float *q = malloc(nq * c * sizeof(float));
    int32_t *i1 = malloc(nq * sizeof(int32_t)), *i2 = malloc(nq * sizeof(int32_t));
    float *d1 = malloc(nq * sizeof(float)), *d2 = malloc(nq * sizeof(float));
    rd_fill_uniform(data, n_per * nblocks * c, seed, 0.0f, 1.0f);
    rd_fill_uniform(q, nq * c, seed + 1, 0.0f, 1.0f);
    /* make some queries exact copies of pool rows: distance must be 0; a later
     * duplicate of that row ties, and the lower row must win (as brute force) */
    const size_t n = n_per * nblocks, five = n > 5 ? 5 : n - 1, dup = five + n_per / 2 + 1;
    memcpy(q, data + five * c, c * sizeof(float));
    if (dup < n) memcpy(data + dup * c, data + five * c, c * sizeof(float));
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
            /* bf16-fused may pick a near-tie within its error bound (check_bf16 checks that bound) */
            if (metric == RD_POOL_L2 && strcmp(rd_pool_kernel(), "bf16-fused"))
                RD_CHECK(fabsf(d1[i] - d2[i]) <= 1e-4f * (1 + d2[i]), "q%zu: d %g vs naive %g", i, d1[i], d2[i]);
        }
        RD_CHECK(d1[i] >= 0 && i1[i] >= 0 && (size_t)i1[i] < p->n, "q%zu: bad result", i);
    }
    RD_CHECK(mism <= (int)(nq / 100) + 1 || (metric == RD_POOL_COSINE && c <= 2), "c=%d metric=%d: %d of %zu indices differ from brute force", c, metric,
             mism, nq);
    /* (in one or two channels many cosines tie at 1: only the distance is checked there) */
    RD_CHECK(d1[0] < 1e-6f || (metric == RD_POOL_COSINE && c <= 2), "%s c=%d: exact copy not found: idx %d d %g",
             rd_pool_kernel(), c, i1[0], d1[0]);
    /* the fused kernels compute a row's similarity the same way wherever the
     * row lies; OpenBLAS's GEMM tiles may round a copy differently */
    RD_CHECK(i1[0] == (int32_t)five || metric == RD_POOL_COSINE || !strcmp(rd_pool_kernel(), "sgemm-tiles"),
             "%s c=%d n=%zu: tie: idx %d, not the lower row %zu", rd_pool_kernel(), c, n, i1[0], five);
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

/* A NaN query (a broken feature) must still get a valid row, not crash or
 * read outside the pool. */
static void check_nan_query(void)
{
    rd_err err = {0};
    rd_arena a;
    enum { C = 24, N = 100 };
    float data[N * C], q[2 * C], d[2];
    int32_t idx[2];
    const float *blocks[1] = {data};
    size_t rows[1] = {N};
    rd_fill_uniform(data, N * C, 9, 0.0f, 1.0f);
    rd_fill_uniform(q, 2 * C, 10, 0.0f, 1.0f);
    q[3] = NAN;
    rd_pool *p = rd_pool_new(blocks, rows, 1, C, RD_POOL_L2, &err);
    RD_CHECK(p && rd_arena_init(&a, rd_pool_scratch_bytes(C, 2), &err) == RD_OK, "setup: %s", err.msg);
    if (!p) return;
    RD_CHECK(rd_pool_nearest(p, q, 2, idx, d, team, &a, &err) == RD_OK, "nearest: %s", err.msg);
    RD_CHECK(idx[0] >= 0 && idx[0] < N && idx[1] >= 0 && idx[1] < N, "NaN query: idx %d %d", idx[0], idx[1]);
    rd_arena_release(&a);
    rd_pool_free(p);
}

/* The fused kernels do the same arithmetic per (query, row) — bias + q₀r₀,
 * then one FMA per channel in order — so they must agree bit for bit
 * (the AVX-512 one is the default where it runs; AVX2 machines get the same
 * answers).  Skipped where the CPU lacks either. */
static void check_kernels_agree(int c, size_t n, size_t nq, rd_pool_metric metric)
{
    rd_err err = {0};
    rd_arena a;
    float *data = malloc(n * c * sizeof(float)), *q = malloc(nq * c * sizeof(float));
    float *d[2] = {malloc(nq * sizeof(float)), malloc(nq * sizeof(float))};
    int32_t *ix[2] = {malloc(nq * sizeof(int32_t)), malloc(nq * sizeof(int32_t))};
    static const rd_pool_kern k[2] = {RD_POOL_KERN_AVX512, RD_POOL_KERN_AVX2};
    const float *blocks[1] = {data};
    if (!data || !q || !d[0] || !d[1] || !ix[0] || !ix[1]) goto out;
    rd_fill_uniform(data, n * c, 21, -0.5f, 1.0f);
    rd_fill_uniform(q, nq * c, 22, -0.5f, 1.0f);
    for (size_t i = 0; i < n * c; i++) data[i] = data[i] < 0 ? 0 : data[i]; /* ReLU-like: zeros, near-ties */
    for (size_t i = 0; i < nq * c; i++) q[i] = q[i] < 0 ? 0 : q[i];
    RD_CHECK(rd_arena_init(&a, rd_pool_scratch_bytes(c, nq), &err) == RD_OK, "setup: %s", err.msg);
    int ran = 1;
    for (int i = 0; i < 2 && ran; i++) {
        ran = rd_pool_force_kernel(k[i]); /* before the pool: its panels follow the kernel */
        rd_pool *p = ran ? rd_pool_new(blocks, &n, 1, c, metric, &err) : NULL;
        RD_CHECK(!ran || p, "pool: %s", err.msg);
        if (p) RD_CHECK(rd_pool_nearest(p, q, nq, ix[i], d[i], team, &a, &err) == RD_OK, "%s", err.msg);
        if (p) RD_CHECK(p->panels && !p->panels16, "%s: no fp32 panels", rd_pool_kernel());
        rd_pool_free(p);
    }
    rd_pool_force_kernel(RD_POOL_KERN_AUTO);
    if (ran)
        RD_CHECK(!memcmp(ix[0], ix[1], nq * sizeof(int32_t)) && !memcmp(d[0], d[1], nq * sizeof(float)),
                 "c=%d n=%zu nq=%zu: avx512-fused and avx2-fused disagree", c, n, nq);
    rd_arena_release(&a);
out:
    free(data);
    free(q);
    for (int i = 0; i < 2; i++) {
        free(d[i]);
        free(ix[i]);
    }
}

/* bf16-fused against brute force in double: where the exact best beats the
 * runner-up by more than twice the kernel's error bound E (pool.c's
 * bf16_terms: products of bf16-rounded centred factors off by (2⁻⁷ + 2⁻¹⁵)
 * of |q'ₖk'ₖ|, fp32 sums by (c + 2)·2⁻²⁴ of the partial sums, 2% slack) the
 * index is the exact one; elsewhere the chosen row scores within 2E of the
 * best; the distance is always the fp32 one of the chosen row.  Queries are
 * jittered pool rows (clear winners) and uniform ones (near-ties). */
static void check_bf16(int c, size_t n, size_t nq, rd_pool_metric metric, unsigned seed)
{
    rd_err err = {0};
    rd_arena a;
    float *data = malloc(n * c * sizeof(float)), *q = malloc(nq * c * sizeof(float)), *d = malloc(nq * sizeof(float));
    int32_t *ix = malloc(nq * sizeof(int32_t));
    const float *blocks[1] = {data};
    rd_pool *p = NULL;
    if (!data || !q || !d || !ix) goto out;
    rd_fill_uniform(data, n * c, seed, -0.2f, 1.0f);
    for (size_t i = 0; i < n * c; i++) data[i] = data[i] < 0 ? 0 : data[i];
    rd_fill_uniform(q, nq * c, seed + 1, -0.02f, 0.02f);
    for (size_t i = 0; i < nq; i++)
        for (int k = 0; k < c; k++)
            q[i * c + k] = i % 2 ? q[i * c + k] * 50 : data[(i * 7 % n) * c + k] + q[i * c + k];
    if (!rd_pool_force_kernel(RD_POOL_KERN_BF16)) goto out;
    p = rd_pool_new(blocks, &n, 1, c, metric, &err);
    RD_CHECK(p && p->panels16 && !p->panels && rd_arena_init(&a, rd_pool_scratch_bytes(c, nq), &err) == RD_OK, "setup: %s",
             err.msg);
    if (!p) goto out;
    RD_CHECK(rd_pool_nearest(p, q, nq, ix, d, team, &a, &err) == RD_OK, "%s", err.msg);
    size_t clear = 0, wrong = 0, far = 0;
    for (size_t i = 0; i < nq; i++) {
        /* the query key as the kernel sees it (normalized in fp32 for cosine) */
        float x[128];
        double ss = 0;
        for (int k = 0; k < c; k++) ss += (double)q[i * c + k] * q[i * c + k];
        const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int k = 0; k < c; k++) x[k] = metric == RD_POOL_COSINE ? q[i * c + k] * inv : q[i * c + k];
        double best = -INFINITY, second = -INFINITY, got = 0, qq = 0, qa = 0;
        size_t bi = 0;
        for (size_t r = 0; r < n; r++) {
            const float *key = p->keys + r * c;
            double s = 0;
            for (int k = 0; k < c; k++)
                s += metric == RD_POOL_L2 ? -0.5 * ((double)x[k] - key[k]) * ((double)x[k] - key[k])
                                          : (double)x[k] * key[k];
            if (s > best) second = best, best = s, bi = r;
            else if (s > second) second = s;
            if (r == (size_t)ix[i]) got = s;
        }
        for (int k = 0; k < c; k++) {
            const double dk = (double)x[k] - p->center[k];
            qq += dk * dk;
            qa += fabs(dk) * p->center[c + k];
        }
        const double qk = fmin(qa, sqrt(qq) * p->kmax) * 1.0001;
        const double e = 1.02 * (ldexp(1, -7) + ldexp(1, -15)) * qk + 1.02 * (c + 2) * ldexp(1, -24) * (p->bmax + qk);
        if (best - second > 2 * e) {
            clear++;
            wrong += (size_t)ix[i] != bi;
        }
        far += got < best - 2 * e - 1e-9 * fabs(best);
        float dd = 0; /* pool.c's sqdist */
        for (int k = 0; k < c; k++) dd += (q[i * c + k] - p->rows[(size_t)ix[i] * c + k]) * (q[i * c + k] - p->rows[(size_t)ix[i] * c + k]);
        RD_CHECK(d[i] == dd, "c=%d q%zu: distance %g, not the fp32 one of its row %g", c, i, d[i], dd);
    }
    RD_CHECK(wrong == 0, "c=%d n=%zu metric=%d: %zu of %zu clear winners missed", c, n, (int)metric, wrong, clear);
    RD_CHECK(far == 0, "c=%d n=%zu metric=%d: %zu winners outside 2E of the best", c, n, (int)metric, far);
    RD_CHECK(clear >= nq / 3, "c=%d: only %zu of %zu queries have a clear winner: the check says little", c, clear,
             nq);
    rd_arena_release(&a);
out:
    if (!p) fprintf(stderr, "# bf16-fused: not on this CPU, check_bf16 skipped\n");
    rd_pool_free(p);
    rd_pool_force_kernel(RD_POOL_KERN_AUTO);
    free(data);
    free(q);
    free(d);
    free(ix);
}

static void search_suite(void)
{
    check_search(24, 700, 4, 1500, RD_POOL_L2, 1); /* crosses pool and query tiles */
    check_search(24, 700, 4, 1500, RD_POOL_COSINE, 2);
    check_search(7, 50, 2, 3, RD_POOL_L2, 3);      /* tiny, odd channel count, partial panel */
    check_search(96, 196, 3, 196, RD_POOL_L2, 4);
    check_search(1024, 40, 2, 37, RD_POOL_COSINE, 5); /* wide features: one panel per chunk */
    /* the fused kernels' blocks: 16 or 8 queries per panel, up to 3 panels a
     * task, pool rows 8 or 4 at a time of 16-row panels: sizes on either side */
    static const int cs[] = {1, 2, 5, 24, 31, 32, 33, 64, 100};
    static const size_t nqs[] = {1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 47, 48, 49, 97};
    static const size_t nps[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 131};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (size_t k = 0; k < sizeof nqs / sizeof nqs[0]; k++) {
            size_t np = nps[(i * 5 + k) % (sizeof nps / sizeof nps[0])];
            check_search(cs[i], np, 2, nqs[k], (i + k) % 3 ? RD_POOL_L2 : RD_POOL_COSINE, 100 + (unsigned)(i * 31 + k));
        }
    check_nan_query();
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
    /* every kernel this CPU runs, forced, serial and on the team */
    static const rd_pool_kern kerns[] = {RD_POOL_KERN_BF16, RD_POOL_KERN_AVX512, RD_POOL_KERN_AVX2,
                                         RD_POOL_KERN_SGEMM};
    rd_team *teams[2] = {NULL, team};
    for (size_t k = 0; k < sizeof kerns / sizeof kerns[0]; k++) {
        if (!rd_pool_force_kernel(kerns[k])) {
            fprintf(stderr, "# %s: not on this CPU, not tested here\n", rd_pool_kernel_name(kerns[k]));
            continue;
        }
        RD_CHECK(!strcmp(rd_pool_kernel(), rd_pool_kernel_name(kerns[k])), "forced %s, runs %s",
                 rd_pool_kernel_name(kerns[k]), rd_pool_kernel());
        for (int ti = 0; ti < 2; ti++) {
            team = teams[ti];
            search_suite();
        }
        team = teams[1];
    }
    RD_CHECK(rd_pool_force_kernel(RD_POOL_KERN_AUTO) == 1, "back to auto");
    check_kernels_agree(24, 3136, 500, RD_POOL_L2);
    check_kernels_agree(24, 1001, 333, RD_POOL_COSINE);
    check_kernels_agree(96, 300, 77, RD_POOL_L2);
    check_bf16(24, 12544, 600, RD_POOL_L2, 31);  /* the level-1 shape (4 shots) */
    check_bf16(24, 3001, 333, RD_POOL_COSINE, 32);
    check_bf16(9, 500, 97, RD_POOL_L2, 33);      /* odd c: a padded channel */
    check_bf16(96, 900, 100, RD_POOL_L2, 34);
    check_bf16(125, 300, 49, RD_POOL_COSINE, 35);
    RD_CHECK(rd_pool_force_kernel(RD_POOL_KERN_COUNT) == 0, "an unknown kernel is refused");
    rd_team_free(team);
    team = NULL;
    rd_pool_force_sgemm(1);             /* the OpenBLAS tile path (old interface) */
    search_suite();
    rd_pool_force_sgemm(0);
    check_topk();
    check_residuals();
    return rd_test_done("pool");
}
