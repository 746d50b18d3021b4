/* bench_search.c — the nearest-neighbour search against the machine's own fp32 FMA peak.
 *
 * usage: bench_search [-c C] [-q NQ] [-k KERNEL] THREADS ITERS NREF...
 * For each pool size NREF (default level-1 shapes: NQ 3136 queries of C 24
 * channels against 12544 rows = 4 shots and 50176 = 16 shots) and each search
 * kernel this CPU runs (or only -k bf16|avx512|avx2|sgemm), rd_pool_nearest is
 * timed on a team of THREADS in ITERS rounds (after a warm-up), each round
 * right after an FMA-peak microbenchmark of the same THREADS doing as many
 * flops: per thread 24 independent FMA chains in registers at the widest
 * vector width the CPU has, all threads at once.  The search counts
 * 2·NQ·NREF·C flops; one JSON line per (NREF, kernel) gives both GFLOP/s and
 * three ratios search / peak: best time against best peak; the median over
 * rounds of each round's pair (wall clock); and the median per CPU-second
 * (process CPU time, which other processes holding the cores do not inflate),
 * with the GFLOP/s per CPU-second of both.  bench/search.sh adds FAISS.
 * Each kernel gets its own pool (built while it is forced: the panels follow
 * the kernel), and its answers are compared with the fp32 fused kernel's
 * (avx512-fused, else avx2-fused, else sgemm-tiles): the share of queries with
 * the same nearest row, the mean and largest relative change of the residual
 * norm √dist², and for bf16-fused the share of queries whose winner its error
 * bound could not prove exact ("unsure").  (bf16 counts 2 flops per channel product too:
 * its ratios to the fp32 peak may exceed 1.)
 * Data: uniform random in [0, 1) (the speed does not depend on it).
 * Not a test. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "blas.h"
#include "pool.h"
#include "team.h"
#include "testutil.h"

#define CHAINS 24

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the whole process: unlike wall time, not inflated while
 * other processes hold the cores, so the efficiency ratios survive a loaded machine. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- FMA peak: flops one thread does in peak_thread ---- */

typedef struct peak_arg {
    pthread_barrier_t *go;
    int width; /* 16 (AVX-512), 8 (AVX2), 1 (scalar) */
    long iters;
    float sink;
    double t0, t1; /* when this thread started and finished */
} peak_arg;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float chains512(long n)
{
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long t = 0; t < n; t++)
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 s = acc[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float chains256(long n)
{
    __m256 acc[12]; /* 16 ymm registers: 12 chains + the two constants */
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long t = 0; t < 2 * n; t++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float v[8], s = 0;
    for (int i = 1; i < 12; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(v, acc[0]);
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}
#endif

static float chains_scalar(long n)
{
    float acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = (float)i;
    for (long t = 0; t < n; t++)
        for (int i = 0; i < CHAINS; i++) acc[i] = fmaf(acc[i], 0.999999f, 1e-7f);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += acc[i];
    return s;
}

static void *peak_thread(void *arg)
{
    peak_arg *a = arg;
    pthread_barrier_wait(a->go);
    a->t0 = now_s();
#if defined(__x86_64__)
    if (a->width == 16) a->sink = chains512(a->iters);
    else if (a->width == 8) a->sink = chains256(a->iters);
    else
#endif
        a->sink = chains_scalar(a->iters);
    a->t1 = now_s();
    return NULL;
}

/* Flops per iteration of one thread's chains at this width. */
static double peak_flops_per_iter(int width) { return width == 8 ? 2.0 * 12 * 8 * 2 : (double)CHAINS * width * 2; }

/* One run of `threads` threads doing `iters` iterations of the chains at once:
 * flops, wall seconds from the first thread's start to the last one's end, and
 * process CPU seconds (the caller's other threads idle meanwhile). */
static double peak_run(int threads, int width, long iters, double *wall, double *cpu)
{
    pthread_t th[64];
    peak_arg args[64];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        args[i] = (peak_arg){&go, width, iters, 0, 0, 0};
        pthread_create(&th[i], NULL, peak_thread, &args[i]);
    }
    double c0 = cpu_s(), first = 1e300, last = 0;
    pthread_barrier_wait(&go);
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (args[i].t0 < first) first = args[i].t0;
        if (args[i].t1 > last) last = args[i].t1;
    }
    *wall = last - first;
    *cpu = cpu_s() - c0;
    pthread_barrier_destroy(&go);
    return threads * (double)iters * peak_flops_per_iter(width);
}

static int widest(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
#endif
    return 1;
}

int main(int argc, char **argv)
{
    rd_blas_autofix(argc, argv);
    int c = 24;
    size_t nq = 3136;
    const char *only = NULL;
    int ai = 1;
    for (; ai + 1 < argc && argv[ai][0] == '-'; ai += 2) {
        if (!strcmp(argv[ai], "-c")) c = atoi(argv[ai + 1]);
        else if (!strcmp(argv[ai], "-q")) nq = (size_t)atol(argv[ai + 1]);
        else if (!strcmp(argv[ai], "-k")) only = argv[ai + 1];
        else break;
    }
    if (argc - ai < 2 || c < 1 || nq < 1) {
        fprintf(stderr, "usage: bench_search [-c C] [-q NQ] [-k bf16|avx512|avx2|sgemm] THREADS ITERS [NREF...]\n");
        return 2;
    }
    const int threads = atoi(argv[ai]), iters = atoi(argv[ai + 1]);
    size_t nrefs[16] = {12544, 50176};
    int nn = 2;
    if (argc - ai > 2) {
        nn = 0;
        for (int i = ai + 2; i < argc && nn < 16; i++) nrefs[nn++] = (size_t)atol(argv[i]);
    }
    if (threads < 1 || threads > 64 || iters < 1) {
        fprintf(stderr, "bench_search: THREADS 1..64, ITERS >= 1\n");
        return 2;
    }
    rd_err err = {0};
    rd_team *team = rd_team_new(threads, &err);
    if (!team) {
        fprintf(stderr, "bench_search: %s\n", err.msg);
        return 1;
    }
    rd_blas_set_threads(threads); /* the sgemm path is threaded by OpenBLAS */
    const int width = widest();
    static const rd_pool_kern kerns[] = {RD_POOL_KERN_BF16, RD_POOL_KERN_AVX512, RD_POOL_KERN_AVX2,
                                         RD_POOL_KERN_SGEMM};
    int rc = 0;
    float *q = malloc(nq * (size_t)c * sizeof(float));
    int32_t *idx = malloc(nq * sizeof(int32_t)), *iref = malloc(nq * sizeof(int32_t));
    float *d2 = malloc(nq * sizeof(float)), *dref = malloc(nq * sizeof(float));
    double *t = malloc((size_t)iters * sizeof(double)), *rw = malloc((size_t)iters * sizeof(double)),
           *rc_ = malloc((size_t)iters * sizeof(double)), *scpu = malloc((size_t)iters * sizeof(double)),
           *pcpu = malloc((size_t)iters * sizeof(double));
    if (!q || !idx || !d2 || !iref || !dref || !t || !rw || !rc_ || !scpu || !pcpu) return 1;
    rd_fill_uniform(q, nq * (size_t)c, 1, 0.0f, 1.0f);
    for (int ni = 0; ni < nn; ni++) {
        const size_t nref = nrefs[ni];
        float *data = malloc(nref * (size_t)c * sizeof(float));
        if (!data) return 1;
        rd_fill_uniform(data, nref * (size_t)c, 2 + (unsigned)ni, 0.0f, 1.0f);
        const float *blocks[1] = {data};
        rd_arena a;
        if (rd_arena_init(&a, rd_pool_scratch_bytes(c, nq), &err) != RD_OK) {
            fprintf(stderr, "bench_search: %s\n", err.msg);
            return 1;
        }
        /* the fp32 reference answers */
        if (!rd_pool_force_kernel(RD_POOL_KERN_AVX512) && !rd_pool_force_kernel(RD_POOL_KERN_AVX2))
            rd_pool_force_kernel(RD_POOL_KERN_SGEMM);
        const char *refname = rd_pool_kernel();
        rd_pool *p = rd_pool_new(blocks, &nref, 1, c, RD_POOL_L2, &err);
        if (!p || rd_pool_nearest(p, q, nq, iref, dref, team, &a, &err) != RD_OK) {
            fprintf(stderr, "bench_search: %s\n", err.msg);
            return 1;
        }
        rd_pool_free(p);
        for (size_t ki = 0; ki < sizeof kerns / sizeof kerns[0]; ki++) {
            const char *name = rd_pool_kernel_name(kerns[ki]);
            if (only && strncmp(name, only, strlen(only)) != 0) continue;
            if (!rd_pool_force_kernel(kerns[ki])) {
                printf("{\"kernel\":\"%s\",\"skipped\":\"this CPU does not run it\"}\n", name);
                continue;
            }
            if (!(p = rd_pool_new(blocks, &nref, 1, c, RD_POOL_L2, &err))) {
                fprintf(stderr, "bench_search: %s\n", err.msg);
                return 1;
            }
            uint64_t bq0, br0, bq1, br1;
            rd_pool_bf16_counts(&bq0, &br0);
            /* ITERS rounds of (peak, search), the peak doing as many flops
             * as the search, so each pair sees about the same load. */
            const double flops = 2.0 * (double)nq * (double)nref * c;
            const long piters = (long)(flops / threads / peak_flops_per_iter(width)) + 1;
            double pbest = 0;
            for (int it = -1; it < iters; it++) {
                double pw, pc, pf = peak_run(threads, width, piters, &pw, &pc);
                double t0 = now_s(), c0 = cpu_s();
                if (rd_pool_nearest(p, q, nq, idx, d2, team, &a, &err) != RD_OK) {
                    fprintf(stderr, "bench_search: %s\n", err.msg);
                    return 1;
                }
                double sw = now_s() - t0, sc = cpu_s() - c0;
                if (it < 0) continue; /* warm-up */
                t[it] = sw;
                rw[it] = (flops / sw) / (pf / pw);
                rc_[it] = (flops / sc) / (pf / pc);
                scpu[it] = flops / sc / 1e9;
                pcpu[it] = pf / pc / 1e9;
                if (pf / pw > pbest) pbest = pf / pw;
            }
            rd_pool_bf16_counts(&bq1, &br1);
            /* agreement with the fp32 reference (answers of the last round) */
            size_t same = 0;
            double rsum = 0, rmax = 0;
            for (size_t i = 0; i < nq; i++) {
                same += idx[i] == iref[i];
                double r0 = sqrt((double)dref[i]), r = fabs(sqrt((double)d2[i]) - r0) / (r0 > 0 ? r0 : 1);
                rsum += r;
                if (r > rmax) rmax = r;
            }
            rd_pool_free(p);
            qsort(t, (size_t)iters, sizeof *t, cmpd);
            qsort(rw, (size_t)iters, sizeof *rw, cmpd);
            qsort(rc_, (size_t)iters, sizeof *rc_, cmpd);
            qsort(scpu, (size_t)iters, sizeof *scpu, cmpd);
            qsort(pcpu, (size_t)iters, sizeof *pcpu, cmpd);
            printf("{\"kernel\":\"%s\",\"threads\":%d,\"nq\":%zu,\"nref\":%zu,\"c\":%d,\"ms_best\":%.3f,"
                   "\"ms_median\":%.3f,\"gflops_best\":%.1f,\"peak_gflops_best\":%.1f,\"peak_width\":%d,"
                   "\"ratio_best\":%.3f,\"ratio_paired_median\":%.3f,\"ratio_cpu_median\":%.3f,"
                   "\"gflops_per_cpu_s\":%.1f,\"peak_gflops_per_cpu_s\":%.1f,\"ref\":\"%s\",\"nn_same\":%.6f,"
                   "\"resid_rel_mean\":%.3g,\"resid_rel_max\":%.3g,\"unsure\":%.6f}\n",
                   name, threads, nq, nref, c, t[0] * 1e3, t[iters / 2] * 1e3, flops / t[0] / 1e9, pbest / 1e9, width,
                   flops / t[0] / pbest, rw[iters / 2], rc_[iters / 2], scpu[iters / 2], pcpu[iters / 2], refname,
                   (double)same / (double)nq, rsum / (double)nq, rmax,
                   bq1 > bq0 ? (double)(br1 - br0) / (double)(bq1 - bq0) : 0.0);
            fflush(stdout);
        }
        rd_pool_force_kernel(RD_POOL_KERN_AUTO);
        rd_arena_release(&a);
        free(data);
    }
    free(q);
    free(idx);
    free(d2);
    free(iref);
    free(dref);
    free(t);
    free(rw);
    free(rc_);
    free(scpu);
    free(pcpu);
    rd_team_free(team);
    return rc;
}
