/* pool.c — reference pool and tiled nearest-neighbour search (see pool.h). */
#include "pool.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define QTILE 128  /* queries per tile */
#define PTILE 1024 /* pool rows per tile: 128×1024×4 B = 512 KiB, L2-resident */

/* The fused kernels (see the comment above fused512).  A task is up to QPANELS
 * query panels; the 512-bit kernel's panel is 16 queries, the 256-bit one's 8. */
#define QPANELS 3

/* The bf16 kernel: query panels of 16 lanes, each lane's 32-bit word two bf16 channels. */
#define TOPK RD_POOL_BF16_TOPK

static rd_pool_kern forced; /* RD_POOL_KERN_AUTO: the best the CPU has */
static int has_bf16;        /* AVX512_BF16 usable (set once, before main) */
static atomic_uint_fast64_t bf16_queries, bf16_unsure;

/* What the CPU can run: the fused kernels need the panels (built where either runs). */
static int cpu_has(rd_pool_kern k)
{
#if defined(__x86_64__)
    /* (reads what libgcc's constructor found: cheap, and no cache to race on) */
    if (k == RD_POOL_KERN_AVX512) return __builtin_cpu_supports("avx512f") != 0;
    if (k == RD_POOL_KERN_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == RD_POOL_KERN_BF16) return has_bf16;
#endif
    return k == RD_POOL_KERN_SGEMM || k == RD_POOL_KERN_AUTO;
}

static const char *const kern_names[RD_POOL_KERN_COUNT];

/* Before main, single-threaded: AVX512_BF16 is CPUID leaf 7 subleaf 1 EAX
 * bit 5, usable where AVX-512 is (libgcc's avx512f also checks that the OS
 * saves the zmm/opmask state, XCR0); then RESAD_SEARCH_KERNEL (see pool.h). */
__attribute__((constructor)) static void pool_detect(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1 &&
        __get_cpuid_count(7, 1, &a, &b, &c, &d))
        has_bf16 = (a >> 5) & 1;
#endif
    const char *env = getenv("RESAD_SEARCH_KERNEL");
    if (env && *env)
        for (int k = 0; k < RD_POOL_KERN_COUNT; k++)
            if (!strncmp(kern_names[k], env, strlen(env))) {
                rd_pool_force_kernel((rd_pool_kern)k);
                break;
            }
}

static rd_pool_kern active_kernel(void)
{
    if (forced != RD_POOL_KERN_AUTO) return forced;
    if (cpu_has(RD_POOL_KERN_BF16)) return RD_POOL_KERN_BF16;
    if (cpu_has(RD_POOL_KERN_AVX512)) return RD_POOL_KERN_AVX512;
    if (cpu_has(RD_POOL_KERN_AVX2)) return RD_POOL_KERN_AVX2;
    return RD_POOL_KERN_SGEMM;
}

static const char *const kern_names[RD_POOL_KERN_COUNT] = {
    [RD_POOL_KERN_AUTO] = "auto",
    [RD_POOL_KERN_SGEMM] = "sgemm-tiles",
    [RD_POOL_KERN_AVX2] = "avx2-fused",
    [RD_POOL_KERN_AVX512] = "avx512-fused",
    [RD_POOL_KERN_BF16] = "bf16-fused",
};
_Static_assert(sizeof kern_names / sizeof kern_names[0] == RD_POOL_KERN_COUNT, "one name per kernel");

const char *rd_pool_kernel(void) { return kern_names[active_kernel()]; }
const char *rd_pool_kernel_name(rd_pool_kern k)
{
    return k >= 0 && k < RD_POOL_KERN_COUNT ? kern_names[k] : "unknown";
}

int rd_pool_force_kernel(rd_pool_kern k)
{
    if (k < 0 || k >= RD_POOL_KERN_COUNT || !cpu_has(k)) return 0;
    forced = k;
    return 1;
}

void rd_pool_force_sgemm(int on) { forced = on ? RD_POOL_KERN_SGEMM : RD_POOL_KERN_AUTO; }

void rd_pool_bf16_counts(uint64_t *queries, uint64_t *unsure)
{
    *queries = atomic_load_explicit(&bf16_queries, memory_order_relaxed);
    *unsure = atomic_load_explicit(&bf16_unsure, memory_order_relaxed);
}

size_t rd_pool_heap_bytes(const rd_pool *p)
{
    size_t b = sizeof *p + p->n * (size_t)p->c * sizeof(float) + p->n * sizeof(float);
    const size_t padded = p->npanels * RD_POOL_PANEL;
    if (p->keys != p->rows) b += p->n * (size_t)p->c * sizeof(float);
    if (p->panels) b += padded * ((size_t)p->c + 1) * sizeof(float);
    if (p->panels16) b += padded * ((size_t)(p->c + 1) / 2 + 1) * 4 + 2 * (size_t)p->c * sizeof(float);
    return b;
}

/* fp32 → bf16, round to nearest even (as vcvtneps2bf16); NaN stays NaN. */
static uint32_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* The bf16 kernel's panels: keys − μ (μ the mean key, so the dot products are
 * of small centred vectors, the bf16 error relative to the distances small),
 * bias of the centred keys, 16-row panels of [⌈c/2⌉][16] words (see pool.h). */
static int build_panels16(rd_pool *p)
{
    const int c = p->c, c2 = (c + 1) / 2;
    size_t np = (p->n + RD_POOL_PANEL - 1) / RD_POOL_PANEL, bytes;
    double *mu = calloc((size_t)c, sizeof *mu), *d = calloc((size_t)c + 1, sizeof *d);
    int rc = -1;
    if (!mu || !d || !rd_mul_size(np * RD_POOL_PANEL, (size_t)c2 * 4, &bytes)) goto done;
    if (posix_memalign((void **)&p->panels16, 64, bytes) != 0) {
        p->panels16 = NULL;
        goto done;
    }
    if (posix_memalign((void **)&p->panel16_bias, 64, np * RD_POOL_PANEL * sizeof(float)) != 0) {
        p->panel16_bias = NULL;
        goto done;
    }
    if (!(p->center = malloc(2 * (size_t)c * sizeof(float)))) goto done;
    float *kabs = p->center + c; /* max |k − μ| per channel */
    p->npanels = np;
    for (size_t r = 0; r < p->n; r++)
        for (int k = 0; k < c; k++) mu[k] += p->keys[r * (size_t)c + k];
    for (int k = 0; k < c; k++) p->center[k] = (float)(mu[k] / (double)p->n), kabs[k] = 0.0f;
    p->kmax = p->bmax = 0;
    for (size_t b = 0; b < np; b++)
        for (int j = 0; j < RD_POOL_PANEL; j++) {
            const size_t r = b * RD_POOL_PANEL + (size_t)j;
            uint32_t *dst = p->panels16 + b * (size_t)c2 * RD_POOL_PANEL + j;
            double ss = 0, bias = 0;
            for (int k = 0; k < c; k++) {
                d[k] = r < p->n ? (double)p->keys[r * (size_t)c + k] - p->center[k] : 0.0;
                ss += d[k] * d[k];
                bias += p->center[k] * d[k];
                if (r < p->n && fabs(d[k]) > kabs[k]) kabs[k] = (float)fabs(d[k]);
            }
            d[c] = 0.0;
            for (int k = 0; k < c2; k++)
                dst[(size_t)k * RD_POOL_PANEL] = to_bf16((float)d[2 * k]) | to_bf16((float)d[2 * k + 1]) << 16;
            if (r >= p->n) {
                p->panel16_bias[r] = -INFINITY;
                continue;
            }
            if (p->metric == RD_POOL_L2) bias = -0.5 * ss;
            p->panel16_bias[r] = (float)bias;
            if (sqrt(ss) > p->kmax) p->kmax = sqrt(ss);
            if (fabs(bias) > p->bmax) p->bmax = fabs(bias);
        }
    rc = 0;
done:
    free(mu);
    free(d);
    return rc;
}

/* Transposes keys into 16-row panels for the fused kernel. */
static int build_panels(rd_pool *p)
{
    const int c = p->c;
    size_t np = (p->n + RD_POOL_PANEL - 1) / RD_POOL_PANEL, bytes;
    if (!rd_mul_size(np * RD_POOL_PANEL, (size_t)c * sizeof(float), &bytes)) return -1;
    if (posix_memalign((void **)&p->panels, 64, bytes) != 0) {
        p->panels = NULL;
        return -1;
    }
    if (posix_memalign((void **)&p->panel_bias, 64, np * RD_POOL_PANEL * sizeof(float)) != 0) {
        p->panel_bias = NULL;
        return -1;
    }
    p->npanels = np;
    for (size_t b = 0; b < np; b++)
        for (int j = 0; j < RD_POOL_PANEL; j++) {
            size_t r = b * RD_POOL_PANEL + (size_t)j;
            float *dst = p->panels + b * (size_t)c * RD_POOL_PANEL + j;
            if (r < p->n) {
                for (int k = 0; k < c; k++) dst[(size_t)k * RD_POOL_PANEL] = p->keys[r * (size_t)c + k];
                p->panel_bias[r] = p->bias[r];
            } else {
                for (int k = 0; k < c; k++) dst[(size_t)k * RD_POOL_PANEL] = 0.0f;
                p->panel_bias[r] = -INFINITY;
            }
        }
    return 0;
}

rd_pool *rd_pool_new(const float *const *blocks, const size_t *rows, int nblocks, int c,
                     rd_pool_metric metric, rd_err *err)
{
    rd_pool *p = NULL;
    size_t n = 0, bytes;
    if (c <= 0 || nblocks <= 0) {
        rd_err_set(err, RD_ERR_ARG, "empty reference pool");
        return NULL;
    }
    for (int i = 0; i < nblocks; i++)
        if (!rd_add_size(n, rows[i], &n)) goto overflow;
    if (n == 0 || n > INT32_MAX) goto overflow;
    if (!rd_mul_size(n, (size_t)c * sizeof(float), &bytes)) goto overflow;
    p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->c = c;
    p->n = n;
    p->metric = metric;
    p->rows = malloc(bytes);
    p->bias = malloc(n * sizeof(float));
    p->keys = metric == RD_POOL_COSINE ? malloc(bytes) : p->rows;
    if (!p->rows || !p->bias || !p->keys) goto nomem;
    {
        float *dst = p->rows;
        for (int i = 0; i < nblocks; i++) {
            memcpy(dst, blocks[i], rows[i] * (size_t)c * sizeof(float));
            dst += rows[i] * (size_t)c;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const float *r = p->rows + i * (size_t)c;
        double ss = 0;
        for (int j = 0; j < c; j++) ss += (double)r[j] * r[j];
        if (metric == RD_POOL_COSINE) {
            float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (int j = 0; j < c; j++) p->keys[i * (size_t)c + j] = r[j] * inv;
            p->bias[i] = 0.0f;
        } else {
            p->bias[i] = (float)(-0.5 * ss);
        }
    }
    /* the panels of the kernel selected now (see pool.h) */
    if (active_kernel() == RD_POOL_KERN_BF16 && c >= RD_POOL_BF16_MIN_C) {
        if (build_panels16(p) != 0) goto nomem;
    } else if ((cpu_has(RD_POOL_KERN_AVX512) || cpu_has(RD_POOL_KERN_AVX2)) && build_panels(p) != 0) {
        goto nomem;
    }
    return p;
overflow:
    rd_err_set(err, RD_ERR_LIMIT, "reference pool too large");
    return NULL;
nomem:
    rd_pool_free(p);
    rd_err_set(err, RD_ERR_NOMEM, "out of memory building a reference pool");
    return NULL;
}

void rd_pool_free(rd_pool *p)
{
    if (!p) return;
    if (p->keys != p->rows) free(p->keys);
    free(p->panels);
    free(p->panel_bias);
    free(p->panels16);
    free(p->panel16_bias);
    free(p->center);
    free(p->rows);
    free(p->bias);
    free(p);
}

static size_t fused_scratch_bytes(size_t nq, int c);
static size_t sgemm_scratch_bytes(int c);

/* Row ranges [r[2i], r[2i+1]) of a pool a search visits (local search); the
 * whole pool is one range.  Range starts are multiples of RD_POOL_PANEL. */
typedef struct row_ranges {
    size_t r[6];
    int n;
} row_ranges;

size_t rd_pool_scratch_bytes(int c, size_t nq)
{
    size_t a = sgemm_scratch_bytes(c);
    size_t b = fused_scratch_bytes(nq, c);
    return a > b ? a : b;
}

static rd_status nearest_sgemm(const rd_pool *p, const row_ranges *rr, const float *q, size_t nq, int32_t *idx,
                               float *dist2, rd_arena *scratch, rd_err *err);

static float sqdist(const float *a, const float *b, int c)
{
    float s = 0;
    for (int j = 0; j < c; j++) {
        float d = a[j] - b[j];
        s += d * d;
    }
    return s;
}

/* Exact score of pool row r for query key x in the bf16 kernel's centred terms
 * (see bf16_task): off + (L2) −½‖x − k‖² or (cosine) x·k. */
static double exact_score(const rd_pool *p, const float *x, int32_t r, double off)
{
    const int c = p->c;
    const float *key = p->keys + (size_t)r * c;
    double s = 0;
    if (p->metric == RD_POOL_L2) {
        for (int k = 0; k < c; k++) s += ((double)x[k] - key[k]) * ((double)x[k] - key[k]);
        return off - 0.5 * s;
    }
    for (int k = 0; k < c; k++) s += (double)x[k] * key[k];
    return off + s;
}

#if defined(__x86_64__)
/* The fused kernels: similarities live only in registers.  Lanes are queries:
 * a task transposes its queries into up to QPANELS query panels ([c][lanes]
 * floats each) and walks the pool's panels ([c][16] keys, see build_panels) a
 * few rows at a time.  For each (query panel, pool row) pair one accumulator
 * starts at the row's bias and gets c FMAs, query panel column × broadcast key
 * element: a query-panel load feeds every row of the block and a broadcast
 * every query panel, so the loop is FMA-bound, not load-bound.  The running
 * best of each lane is max-ed in and its row index taken under the compare
 * mask (strict >, rows ascending: a tie keeps the lower row, as brute force);
 * that state lives in the task's scratch and is touched once per block, and
 * only the max of a block is compared when no lane improves (most blocks).
 *   512-bit: 16 queries per panel, blocks of 8 rows: 3 × 8 = 24 accumulators.
 *   256-bit:  8 queries per panel, blocks of 4 rows: 3 × 4 = 12 accumulators
 *            (of 16 ymm registers). */
static inline __attribute__((always_inline, target("avx512f"))) void scan512(const rd_pool *p,
                                                                              const row_ranges *rr,
                                                                              const float *qt, const int np,
                                                                              float *bvs, int32_t *bis)
{
    const int c = p->c;
    const size_t ps = (size_t)c * 16; /* floats per query panel and per pool panel */
    for (int ri = 0; ri < rr->n; ri++) {
        const size_t pa = rr->r[2 * ri] / RD_POOL_PANEL;
        const size_t pe = (rr->r[2 * ri + 1] + RD_POOL_PANEL - 1) / RD_POOL_PANEL;
        for (size_t b = pa; b < pe; b++)
            for (int h = 0; h < 16; h += 8) {
                const float *kp = p->panels + b * ps + h, *kb = p->panel_bias + b * 16 + h;
                __m512 acc[QPANELS][8], qv[QPANELS];
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) qv[i] = _mm512_load_ps(qt + i * ps);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) { /* k = 0: bias + q₀·r₀, no separate initialisation */
                    const __m512 r = _mm512_set1_ps(kp[j]), bj = _mm512_set1_ps(kb[j]);
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++) acc[i][j] = _mm512_fmadd_ps(qv[i], r, bj);
                }
                for (int k = 1; k < c; k++) {
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++) qv[i] = _mm512_load_ps(qt + i * ps + (size_t)k * 16);
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        const __m512 r = _mm512_set1_ps(kp[(size_t)k * 16 + j]);
#pragma GCC unroll 3
                        for (int i = 0; i < np; i++) acc[i][j] = _mm512_fmadd_ps(qv[i], r, acc[i][j]);
                    }
                }
                const int row = (int)(b * 16) + h;
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) {
                    __m512 v = _mm512_load_ps(bvs + i * 16);
                    /* Most blocks improve no lane: their max, one compare, done. */
                    const __m512 m = _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(acc[i][0], acc[i][1]),
                                                                 _mm512_max_ps(acc[i][2], acc[i][3])),
                                                   _mm512_max_ps(_mm512_max_ps(acc[i][4], acc[i][5]),
                                                                 _mm512_max_ps(acc[i][6], acc[i][7])));
                    if (!_mm512_cmp_ps_mask(m, v, _CMP_GT_OQ)) continue;
                    __m512i x = _mm512_load_si512((const void *)(bis + i * 16));
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        const __mmask16 m = _mm512_cmp_ps_mask(acc[i][j], v, _CMP_GT_OQ);
                        v = _mm512_max_ps(acc[i][j], v); /* a NaN similarity never wins */
                        x = _mm512_mask_set1_epi32(x, m, row + j);
                    }
                    _mm512_store_ps(bvs + i * 16, v);
                    _mm512_store_si512((void *)(bis + i * 16), x);
                }
            }
    }
}

__attribute__((target("avx512f"))) static void fused512(const rd_pool *p, const row_ranges *rr, const float *qt,
                                                        int np, float *bvs, int32_t *bis)
{
    if (np == 3) scan512(p, rr, qt, 3, bvs, bis);
    else if (np == 2) scan512(p, rr, qt, 2, bvs, bis);
    else scan512(p, rr, qt, 1, bvs, bis);
}

static inline __attribute__((always_inline, target("avx2,fma"))) void scan256(const rd_pool *p,
                                                                               const row_ranges *rr,
                                                                               const float *qt, const int np,
                                                                               float *bvs, int32_t *bis)
{
    const int c = p->c;
    const size_t ps = (size_t)c * 16, qs = (size_t)c * 8;
    for (int ri = 0; ri < rr->n; ri++) {
        const size_t pa = rr->r[2 * ri] / RD_POOL_PANEL;
        const size_t pe = (rr->r[2 * ri + 1] + RD_POOL_PANEL - 1) / RD_POOL_PANEL;
        for (size_t b = pa; b < pe; b++)
            for (int h = 0; h < 16; h += 4) {
                const float *kp = p->panels + b * ps + h, *kb = p->panel_bias + b * 16 + h;
                __m256 acc[QPANELS][4], qv[QPANELS];
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) qv[i] = _mm256_load_ps(qt + i * qs);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m256 r = _mm256_broadcast_ss(kp + j), bj = _mm256_broadcast_ss(kb + j);
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++) acc[i][j] = _mm256_fmadd_ps(qv[i], r, bj);
                }
                for (int k = 1; k < c; k++) {
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++) qv[i] = _mm256_load_ps(qt + i * qs + (size_t)k * 8);
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        const __m256 r = _mm256_broadcast_ss(kp + (size_t)k * 16 + j);
#pragma GCC unroll 3
                        for (int i = 0; i < np; i++) acc[i][j] = _mm256_fmadd_ps(qv[i], r, acc[i][j]);
                    }
                }
                const int row = (int)(b * 16) + h;
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) {
                    __m256 v = _mm256_load_ps(bvs + i * 8);
                    const __m256 m = _mm256_max_ps(_mm256_max_ps(acc[i][0], acc[i][1]),
                                                   _mm256_max_ps(acc[i][2], acc[i][3]));
                    if (!_mm256_movemask_ps(_mm256_cmp_ps(m, v, _CMP_GT_OQ))) continue;
                    __m256 x = _mm256_load_ps((const float *)(bis + i * 8));
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        const __m256 m = _mm256_cmp_ps(acc[i][j], v, _CMP_GT_OQ);
                        v = _mm256_max_ps(acc[i][j], v);
                        x = _mm256_blendv_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(row + j)), m);
                    }
                    _mm256_store_ps(bvs + i * 8, v);
                    _mm256_store_ps((float *)(bis + i * 8), x);
                }
            }
    }
}

__attribute__((target("avx2,fma"))) static void fused256(const rd_pool *p, const row_ranges *rr, const float *qt,
                                                         int np, float *bvs, int32_t *bis)
{
    if (np == 3) scan256(p, rr, qt, 3, bvs, bis);
    else if (np == 2) scan256(p, rr, qt, 2, bvs, bis);
    else scan256(p, rr, qt, 1, bvs, bis);
}

/* Inserts a block's 8 rows' scores (blk[j] the lanes' scores of row row + j)
 * into the lanes' sorted TOPK slots (see scanbf16); the rare path. */
__attribute__((noinline, target("avx512f"))) static void topk_insert(const float (*blk)[16], int row, float *bv,
                                                                     int32_t *bi)
{
    __m512 v[TOPK];
    __m512i x[TOPK];
    for (int t = 0; t < TOPK; t++) {
        v[t] = _mm512_load_ps(bv + t * 16);
        x[t] = _mm512_load_si512((const void *)(bi + t * 16));
    }
    for (int j = 0; j < 8; j++) {
        const __m512 a = _mm512_load_ps(blk[j]);
        if (!_mm512_cmp_ps_mask(a, v[TOPK - 1], _CMP_GT_OQ)) continue; /* most rows of the block */
        __mmask16 mt[TOPK];
        for (int t = 0; t < TOPK; t++) mt[t] = _mm512_cmp_ps_mask(a, v[t], _CMP_GT_OQ);
        /* mt[0] ⊆ mt[1] ⊆ …: slot t takes the row where it beats slot t but
         * not t−1, slot t−1's old pair where it beats that */
        for (int t = TOPK - 1; t >= 0; t--) {
            v[t] = _mm512_mask_mov_ps(v[t], mt[t], a);
            x[t] = _mm512_mask_set1_epi32(x[t], mt[t], row + j);
            if (t > 0) {
                v[t] = _mm512_mask_mov_ps(v[t], mt[t - 1], v[t - 1]);
                x[t] = _mm512_mask_mov_epi32(x[t], mt[t - 1], x[t - 1]);
            }
        }
    }
    for (int t = 0; t < TOPK; t++) {
        _mm512_store_ps(bv + t * 16, v[t]);
        _mm512_store_si512((void *)(bi + t * 16), x[t]);
    }
}

/* The bf16 kernel: scan512's loop on bf16 pairs.  A lane's 32-bit word holds
 * two channels of its query, a broadcast word two of the row's, and one
 * vdpbf16ps adds both products to the lane's fp32 accumulator: c/2
 * instructions per (query panel, row) instead of c FMAs.  Each lane keeps its
 * TOPK best (value, row) pairs, sorted, at bvs/bis + i·16·TOPK + t·16 (slot t
 * of query panel i): a row enters below every kept value it beats (strict >,
 * rows ascending, so ties keep the lower row), and a block whose max beats no
 * lane's last slot (most blocks) costs one compare. */
static inline __attribute__((always_inline, target("avx512f,avx512bf16"))) void scanbf16(const rd_pool *p,
                                                                                          const row_ranges *rr,
                                                                                          const uint32_t *qt,
                                                                                          const int np, float *bvs,
                                                                                          int32_t *bis)
{
    const int c2 = (p->c + 1) / 2;
    const size_t ps = (size_t)c2 * 16; /* words per query panel and per pool panel */
    for (int ri = 0; ri < rr->n; ri++) {
        const size_t pa = rr->r[2 * ri] / RD_POOL_PANEL;
        const size_t pe = (rr->r[2 * ri + 1] + RD_POOL_PANEL - 1) / RD_POOL_PANEL;
        for (size_t b = pa; b < pe; b++)
            for (int h = 0; h < 16; h += 8) {
                const uint32_t *kp = p->panels16 + b * ps + h;
                const float *kb = p->panel16_bias + b * 16 + h;
                __m512 acc[QPANELS][8];
                __m512i qv[QPANELS];
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) qv[i] = _mm512_load_si512((const void *)(qt + i * ps));
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m512i r = _mm512_set1_epi32((int)kp[j]);
                    const __m512 bj = _mm512_set1_ps(kb[j]);
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++) acc[i][j] = _mm512_dpbf16_ps(bj, (__m512bh)qv[i], (__m512bh)r);
                }
                for (int k = 1; k < c2; k++) {
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++)
                        qv[i] = _mm512_load_si512((const void *)(qt + i * ps + (size_t)k * 16));
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        const __m512i r = _mm512_set1_epi32((int)kp[(size_t)k * 16 + j]);
#pragma GCC unroll 3
                        for (int i = 0; i < np; i++)
                            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)qv[i], (__m512bh)r);
                    }
                }
                /* Most blocks beat no lane's last slot: per query panel the block's max, one compare. */
                __mmask16 hit[QPANELS];
                int any = 0;
#pragma GCC unroll 3
                for (int i = 0; i < np; i++) {
                    const __m512 m = _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(acc[i][0], acc[i][1]),
                                                                 _mm512_max_ps(acc[i][2], acc[i][3])),
                                                   _mm512_max_ps(_mm512_max_ps(acc[i][4], acc[i][5]),
                                                                 _mm512_max_ps(acc[i][6], acc[i][7])));
                    hit[i] = _mm512_cmp_ps_mask(m, _mm512_load_ps(bvs + i * 16 * TOPK + (TOPK - 1) * 16), _CMP_GT_OQ);
                    any |= hit[i] != 0;
                }
                if (any) {
                    float blk[QPANELS][8][16] __attribute__((aligned(64)));
#pragma GCC unroll 3
                    for (int i = 0; i < np; i++)
#pragma GCC unroll 8
                        for (int j = 0; j < 8; j++) _mm512_store_ps(blk[i][j], acc[i][j]);
                    for (int i = 0; i < np; i++)
                        if (hit[i]) topk_insert(blk[i], (int)(b * 16) + h, bvs + i * 16 * TOPK, bis + i * 16 * TOPK);
                }
            }
    }
}

__attribute__((target("avx512f,avx512bf16"))) static void fusedbf16(const rd_pool *p, const row_ranges *rr,
                                                                   const uint32_t *qt, int np, float *bvs,
                                                                   int32_t *bis)
{
    if (np == 3) scanbf16(p, rr, qt, 3, bvs, bis);
    else if (np == 2) scanbf16(p, rr, qt, 2, bvs, bis);
    else scanbf16(p, rr, qt, 1, bvs, bis);
}
#endif

/* Floats of one task's scratch (query panels, best values, best rows), a whole
 * number of cache lines so tasks on different threads never share one. */
static size_t task_floats(int c, int lanes)
{
    size_t f = (size_t)QPANELS * lanes * ((size_t)c + 2);
    return (f + 15) / 16 * 16;
}

/* The bf16 kernel's: query panels of ⌈c/2⌉ words per lane, TOPK values and rows per lane. */
static size_t task_floats16(int c)
{
    size_t f = (size_t)QPANELS * 16 * ((size_t)(c + 1) / 2 + 2 * TOPK);
    return (f + 15) / 16 * 16;
}

static size_t sgemm_scratch_bytes(int c)
{
    return rd_arena_need((size_t)QTILE * PTILE * sizeof(float)) +
           rd_arena_need((size_t)QTILE * (size_t)c * sizeof(float)) + rd_arena_need((size_t)QTILE * sizeof(float));
}

static size_t fused_scratch_bytes(size_t nq, int c)
{
    size_t most = 0;
    for (int lanes = 8; lanes <= 16; lanes *= 2) {
        size_t tasks = (nq + (size_t)QPANELS * lanes - 1) / ((size_t)QPANELS * lanes);
        size_t b = rd_arena_need(tasks * task_floats(c, lanes) * sizeof(float));
        if (b > most) most = b;
    }
    const size_t qn = rd_arena_need(nq * (size_t)c * sizeof(float)); /* normalized queries (cosine) */
    const size_t tasks16 = (nq + (size_t)QPANELS * 16 - 1) / ((size_t)QPANELS * 16);
    const size_t b16 = qn + rd_arena_need(tasks16 * task_floats16(c) * sizeof(float));
    most += qn;
    return most > b16 ? most : b16;
}

typedef struct search_job {
    const rd_pool *p;
    const row_ranges *rr;
    const float *q;  /* original queries */
    const float *qk; /* search keys of the queries (normalized for cosine) */
    size_t nq;
    int32_t *idx;
    float *dist2;
    float *scratch; /* task t's at scratch + t·tf */
    size_t tf;
    int lanes;      /* 16: fused512, 8: fused256 (bf16: 16) */
} search_job;

static void search_task(void *ctx, int task)
{
    search_job *j = ctx;
    const int c = j->p->c, lanes = j->lanes;
    const size_t tq = (size_t)QPANELS * lanes, q0 = (size_t)task * tq;
    const size_t n = j->nq - q0 < tq ? j->nq - q0 : tq;
    const int np = (int)((n + (size_t)lanes - 1) / (size_t)lanes);
    float *qt = j->scratch + (size_t)task * j->tf, *bvs = qt + (size_t)QPANELS * lanes * c;
    int32_t *bis = (int32_t *)(bvs + tq);
    /* transpose; a partial last panel repeats the task's last query */
    for (size_t i = 0; i < (size_t)np * lanes; i++) {
        const float *src = j->qk + (q0 + (i < n ? i : n - 1)) * (size_t)c;
        float *dst = qt + (i / (size_t)lanes) * (size_t)lanes * c + i % (size_t)lanes;
        for (int k = 0; k < c; k++) dst[(size_t)k * lanes] = src[k];
        bvs[i] = -INFINITY;
        bis[i] = (int32_t)j->rr->r[0];
    }
#if defined(__x86_64__)
    if (lanes == 16) fused512(j->p, j->rr, qt, np, bvs, bis);
    else fused256(j->p, j->rr, qt, np, bvs, bis);
#endif
    for (size_t i = 0; i < n; i++) {
        j->idx[q0 + i] = bis[i];
        j->dist2[q0 + i] = sqdist(j->q + (q0 + i) * (size_t)c, j->p->rows + (size_t)bis[i] * c, c);
    }
}

/* Converts and transposes queries q0..q0+n−1 (centred, see build_panels16)
 * into a bf16 task's query panels and clears its slots; a partial last panel
 * repeats the last query. */
static void bf16_panels(const search_job *j, size_t q0, size_t n, uint32_t *qt, float *bvs, int32_t *bis)
{
    const int c = j->p->c, c2 = (c + 1) / 2, np = (int)((n + 15) / 16);
    const float *mu = j->p->center;
    for (size_t i = 0; i < (size_t)np * 16; i++) {
        const float *src = j->qk + (q0 + (i < n ? i : n - 1)) * (size_t)c;
        uint32_t *dst = qt + (i / 16) * 16 * (size_t)c2 + i % 16;
        for (int k = 0; k < c2; k++) {
            const uint32_t lo = to_bf16(src[2 * k] - mu[2 * k]);
            const uint32_t hi = 2 * k + 1 < c ? to_bf16(src[2 * k + 1] - mu[2 * k + 1]) : 0;
            dst[(size_t)k * 16] = lo | hi << 16;
        }
        for (int t = 0; t < TOPK; t++) {
            bvs[(i / 16) * 16 * TOPK + (size_t)t * 16 + i % 16] = -INFINITY;
            bis[(i / 16) * 16 * TOPK + (size_t)t * 16 + i % 16] = (int32_t)j->rr->r[0];
        }
    }
}

/* Query key x's offset of the exact centred score (see exact_score) and the
 * bound E on |bf16 score − exact|: each product of two bf16-rounded factors is
 * off by ≤ (2⁻⁷ + 2⁻¹⁵)·|q'ₖ k'ₖ| (Σ ≤ ‖q'‖·kmax and ≤ Σ|q'ₖ|·max|k'ₖ|), each
 * fp32 addition by 2⁻²⁴ of a partial sum (≤ bmax + the same); flushed
 * denormals by far less than the slack. */
static void bf16_terms(const rd_pool *p, const float *x, double *off, double *e)
{
    const double u = 1.02 * (ldexp(1, -7) + ldexp(1, -15)), v = 1.02 * (p->c + 2) * ldexp(1, -24);
    double qq = 0, qmu = 0, qa = 0;
    for (int k = 0; k < p->c; k++) {
        const double d = (double)x[k] - p->center[k];
        qq += d * d;
        qmu += (double)x[k] * p->center[k];
        qa += fabs(d) * p->center[p->c + k]; /* Σ|q'ₖ|·max|k'ₖ| */
    }
    const double cs = sqrt(qq) * p->kmax, qk = (qa < cs ? qa : cs) * 1.0001; /* (kabs is rounded to fp32) */
    /* L2: q'·k' − ½‖k'‖² = ½‖q'‖² − ½‖q − k‖²; cosine: q'·k' + μ·k' = q·k − q·μ */
    *off = p->metric == RD_POOL_L2 ? 0.5 * qq : -qmu;
    *e = u * qk + v * (p->bmax + qk) + 1e-30;
}

/* A bf16 task: scan, then re-score each query's TOPK rows exactly and keep the
 * best (lower row on ties).  A row outside them has a bf16 score ≤ the last
 * slot's s̃, so an exact score ≤ s̃ + E: where the exact best beats that, the
 * winner is certainly the exact one; the others are counted (j->unsure; on real
 * features mostly many rows within E of each other — near-duplicate
 * positions — where any of them gives about the same residual). */
static void bf16_task(void *ctx, int task)
{
    search_job *j = ctx;
    const rd_pool *p = j->p;
    const int c = p->c, c2 = (c + 1) / 2;
    const size_t tq = (size_t)QPANELS * 16, q0 = (size_t)task * tq;
    const size_t n = j->nq - q0 < tq ? j->nq - q0 : tq;
    uint32_t *qt = (uint32_t *)(j->scratch + (size_t)task * j->tf);
    float *bvs = (float *)(qt + (size_t)QPANELS * 16 * c2);
    int32_t *bis = (int32_t *)(bvs + tq * TOPK);
    uint64_t unsure = 0;
    bf16_panels(j, q0, n, qt, bvs, bis);
#if defined(__x86_64__)
    fusedbf16(p, j->rr, qt, (int)((n + 15) / 16), bvs, bis);
#endif
    for (size_t i = 0; i < n; i++) {
        const float *x = j->qk + (q0 + i) * (size_t)c;
        const float *sv = bvs + (i / 16) * 16 * TOPK + i % 16;
        const int32_t *si = bis + (i / 16) * 16 * TOPK + i % 16;
        double off, e, best = -INFINITY;
        int32_t bi = (int32_t)j->rr->r[0];
        bf16_terms(p, x, &off, &e);
        for (int t = 0; t < TOPK && sv[t * 16] > -INFINITY; t++) {
            const int32_t r = si[t * 16];
            const double s = exact_score(p, x, r, off);
            if (s > best || (s == best && r < bi)) best = s, bi = r;
        }
        const double last = sv[(TOPK - 1) * 16];
        unsure += last > -INFINITY && !(best > last + e);
        j->idx[q0 + i] = bi;
        j->dist2[q0 + i] = sqdist(j->q + (q0 + i) * (size_t)c, p->rows + (size_t)bi * c, c);
    }
    atomic_fetch_add_explicit(&bf16_unsure, unsure, memory_order_relaxed);
}

static rd_status nearest_ranges(const rd_pool *p, const row_ranges *rr, const float *q, size_t nq, int32_t *idx,
                                float *dist2, rd_team *team, rd_arena *scratch, rd_err *err)
{
    rd_pool_kern k = active_kernel();
    if (k == RD_POOL_KERN_BF16 && !p->panels16) k = RD_POOL_KERN_AVX512; /* a pool built for fp32 */
    if ((k == RD_POOL_KERN_AVX512 || k == RD_POOL_KERN_AVX2 || k == RD_POOL_KERN_BF16) &&
        (k == RD_POOL_KERN_BF16 ? p->panels16 != NULL : p->panels != NULL)) {
        const int lanes = k == RD_POOL_KERN_AVX2 ? 8 : 16;
        const size_t tq = (size_t)QPANELS * lanes, ntasks = (nq + tq - 1) / tq;
        size_t mark = rd_arena_mark(scratch);
        search_job j = {p, rr, q, q, nq, idx, dist2, NULL,
                        k == RD_POOL_KERN_BF16 ? task_floats16(p->c) : task_floats(p->c, lanes), lanes};
        if (p->metric == RD_POOL_COSINE) {
            float *qn = rd_arena_floats(scratch, nq * (size_t)p->c);
            if (!qn) {
                rd_arena_rewind(scratch, mark);
                return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");
            }
            for (size_t i = 0; i < nq; i++) {
                const float *r = q + i * (size_t)p->c;
                double ss = 0;
                for (int c = 0; c < p->c; c++) ss += (double)r[c] * r[c];
                float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
                for (int c = 0; c < p->c; c++) qn[i * (size_t)p->c + c] = r[c] * inv;
            }
            j.qk = qn;
        }
        j.scratch = rd_arena_floats(scratch, ntasks * j.tf);
        if (!j.scratch) {
            rd_arena_rewind(scratch, mark);
            return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");
        }
        if (k == RD_POOL_KERN_BF16) atomic_fetch_add_explicit(&bf16_queries, nq, memory_order_relaxed);
        rd_team_run(team, k == RD_POOL_KERN_BF16 ? bf16_task : search_task, &j, (int)ntasks);
        rd_arena_rewind(scratch, mark);
        return RD_OK;
    }
    return nearest_sgemm(p, rr, q, nq, idx, dist2, scratch, err);
}

rd_status rd_pool_nearest(const rd_pool *p, const float *q, size_t nq, int32_t *idx, float *dist2,
                          rd_team *team, rd_arena *scratch, rd_err *err)
{
    row_ranges all = {{0, p->n}, 1};
    return nearest_ranges(p, &all, q, nq, idx, dist2, team, scratch, err);
}

static rd_status nearest_sgemm(const rd_pool *p, const row_ranges *rr, const float *q, size_t nq, int32_t *idx,
                               float *dist2, rd_arena *scratch, rd_err *err)
{
    const int c = p->c;
    size_t mark = rd_arena_mark(scratch);
    float *tile = rd_arena_floats(scratch, (size_t)QTILE * PTILE);
    float *qn = rd_arena_floats(scratch, (size_t)QTILE * c);
    float *best = rd_arena_floats(scratch, QTILE);
    if (!tile || !qn || !best)
        return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");

    for (size_t q0 = 0; q0 < nq; q0 += QTILE) {
        const int qb = (int)(nq - q0 < QTILE ? nq - q0 : QTILE);
        const float *qrows = q + q0 * (size_t)c;
        if (p->metric == RD_POOL_COSINE) {
            /* Query norms do not change the arg-max, but normalizing keeps the
             * dot products in a sane range. */
            for (int i = 0; i < qb; i++) {
                const float *r = qrows + (size_t)i * c;
                double ss = 0;
                for (int j = 0; j < c; j++) ss += (double)r[j] * r[j];
                float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
                for (int j = 0; j < c; j++) qn[(size_t)i * c + j] = r[j] * inv;
            }
            qrows = qn;
        }
        for (int i = 0; i < qb; i++) {
            best[i] = -FLT_MAX;
            idx[q0 + i] = (int32_t)rr->r[0];
        }
        for (int ri = 0; ri < rr->n; ri++)
        for (size_t p0 = rr->r[2 * ri], pend = rr->r[2 * ri + 1]; p0 < pend; p0 += PTILE) {
            const int pb = (int)(pend - p0 < PTILE ? pend - p0 : PTILE);
            /* tile[qb×pb] = Q · Kᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb, pb, c, 1.0f, qrows, c,
                        p->keys + p0 * (size_t)c, c, 0.0f, tile, pb);
            const float *bias = p->bias + p0;
            for (int i = 0; i < qb; i++) {
                const float *t = tile + (size_t)i * pb;
                float bv = best[i];
                int bj = -1;
                for (int j = 0; j < pb; j++) {
                    float v = t[j] + bias[j];
                    if (v > bv) {
                        bv = v;
                        bj = j;
                    }
                }
                if (bj >= 0) {
                    best[i] = bv;
                    idx[q0 + i] = (int32_t)(p0 + (size_t)bj);
                }
            }
        }
        for (int i = 0; i < qb; i++)
            dist2[q0 + i] = sqdist(q + (q0 + i) * (size_t)c, p->rows + (size_t)idx[q0 + i] * c, c);
    }
    rd_arena_rewind(scratch, mark);
    return RD_OK;
}

void rd_pool_nearest_naive(const rd_pool *p, const float *q, size_t nq, int32_t *idx, float *dist2)
{
    const int c = p->c;
    for (size_t i = 0; i < nq; i++) {
        const float *x = q + i * (size_t)c;
        double bestv = -INFINITY;
        size_t bj = 0;
        double xn = 0;
        for (int k = 0; k < c; k++) xn += (double)x[k] * x[k];
        xn = sqrt(xn);
        for (size_t j = 0; j < p->n; j++) {
            const float *r = p->rows + j * (size_t)c;
            double v;
            if (p->metric == RD_POOL_COSINE) {
                double dot = 0, rn = 0;
                for (int k = 0; k < c; k++) {
                    dot += (double)x[k] * r[k];
                    rn += (double)r[k] * r[k];
                }
                v = (rn > 0 && xn > 0) ? dot / (sqrt(rn) * xn) : 0;
            } else {
                v = -(double)sqdist(x, r, c);
            }
            if (v > bestv) {
                bestv = v;
                bj = j;
            }
        }
        idx[i] = (int32_t)bj;
        dist2[i] = sqdist(x, p->rows + bj * (size_t)c, c);
    }
}

/* ---- local search (see pool.h) ---- */

int rd_pool_grid_global(int h, int w, int tc)
{
    return tc <= 0 || (h <= 2 * tc && w <= 2 * tc) || (double)h * w <= 18.0 * tc * tc;
}

void rd_pool_grid_free(rd_pool_grid *g)
{
    if (!g) return;
    rd_pool_free(g->pool);
    free(g->tile_row);
    free(g);
}

/* Tile t's rows: [tile_row[t], tile_row[t + 1]) of the banded pool. */
rd_pool_grid *rd_pool_grid_new(const float *const *maps, int nmaps, int h, int w, int c, rd_pool_metric metric,
                               int tc, rd_err *err)
{
    rd_pool_grid *g = NULL;
    const float **blocks = NULL;
    size_t *rows = NULL, n = (size_t)h * w;
    float *zero = NULL;
    if (nmaps < 1 || nmaps > 64 || h < 1 || w < 1 || c < 1) {
        rd_err_set(err, RD_ERR_ARG, "reference pool: bad map shape");
        return NULL;
    }
    g = calloc(1, sizeof *g);
    if (!g) goto nomem;
    g->h = h, g->w = w, g->c = c, g->nmaps = nmaps;
    if (rd_pool_grid_global(h, w, tc)) {
        size_t nr[64];
        for (int i = 0; i < nmaps; i++) nr[i] = n;
        if (!(g->pool = rd_pool_new(maps, nr, nmaps, c, metric, err))) goto fail;
        g->rows = g->pool->rows;
        return g;
    }
    /* Banded layout: tile after tile (row-major over tiles), each tile's rows
     * of every map, padded to a whole panel with rows that never win.  The
     * 3×3 neighbourhood of a tile is then 3 contiguous row ranges, one per
     * band, of a single pool: nothing is stored twice. */
    g->tc = tc;
    g->ntx = (w + tc - 1) / tc;
    g->nty = (h + tc - 1) / tc;
    const size_t nt = (size_t)g->ntx * g->nty, maxb = (size_t)nmaps * tc * nt + nt;
    g->tile_row = calloc(nt + 1, sizeof *g->tile_row);
    blocks = malloc(maxb * sizeof *blocks);
    rows = malloc(maxb * sizeof *rows);
    zero = calloc((size_t)RD_POOL_PANEL * c, sizeof *zero);
    if (!g->tile_row || !blocks || !rows || !zero) goto nomem;
    size_t nb = 0, at = 0;
    for (int ty = 0; ty < g->nty; ty++)
        for (int tx = 0; tx < g->ntx; tx++) {
            int y0 = ty * tc, x0 = tx * tc, y1 = y0 + tc > h ? h : y0 + tc, x1 = x0 + tc > w ? w : x0 + tc;
            g->tile_row[ty * g->ntx + tx] = at;
            for (int i = 0; i < nmaps; i++)
                for (int y = y0; y < y1; y++) {
                    blocks[nb] = maps[i] + ((size_t)y * w + x0) * c;
                    rows[nb++] = (size_t)(x1 - x0);
                    at += (size_t)(x1 - x0);
                }
            size_t pad = (RD_POOL_PANEL - at % RD_POOL_PANEL) % RD_POOL_PANEL;
            if (pad) {
                blocks[nb] = zero;
                rows[nb++] = pad;
                at += pad;
            }
        }
    g->tile_row[nt] = at;
    if (!(g->pool = rd_pool_new(blocks, rows, (int)nb, c, metric, err))) goto fail;
    g->rows = g->pool->rows;
    /* padding rows never win: bias −inf (the fused kernel's panel bias too) */
    nb = 0;
    for (size_t t = 0; t < nt; t++) {
        size_t r = g->tile_row[t];
        for (int i = 0; i < nmaps; i++) {
            int ty = (int)(t / (size_t)g->ntx), tx = (int)(t % (size_t)g->ntx);
            int y1 = (ty + 1) * tc > h ? h : (ty + 1) * tc, x1 = (tx + 1) * tc > w ? w : (tx + 1) * tc;
            r += (size_t)(y1 - ty * tc) * (size_t)(x1 - tx * tc);
        }
        for (; r < g->tile_row[t + 1]; r++) {
            g->pool->bias[r] = -INFINITY;
            if (g->pool->panel_bias) g->pool->panel_bias[r] = -INFINITY;
            if (g->pool->panel16_bias) g->pool->panel16_bias[r] = -INFINITY;
        }
    }
    free(blocks);
    free(rows);
    free(zero);
    return g;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "out of memory building the reference pool");
fail:
    free(blocks);
    free(rows);
    free(zero);
    rd_pool_grid_free(g);
    return NULL;
}

size_t rd_pool_grid_scratch_bytes(const rd_pool_grid *g)
{
    size_t n = (size_t)g->h * g->w;
    if (!g->tc) return rd_pool_scratch_bytes(g->c, n);
    size_t tn = (size_t)g->tc * g->tc;
    return rd_arena_need(tn * (size_t)g->c * sizeof(float)) + 2 * rd_arena_need(tn * sizeof(float)) +
           rd_pool_scratch_bytes(g->c, tn);
}

rd_status rd_pool_grid_nearest(const rd_pool_grid *g, const float *q, int32_t *idx, float *dist2, rd_team *team,
                               rd_arena *a, rd_err *err)
{
    const int c = g->c, tc = g->tc;
    size_t mark = rd_arena_mark(a);
    rd_status st = RD_OK;
    if (!tc) return rd_pool_nearest(g->pool, q, (size_t)g->h * g->w, idx, dist2, team, a, err);
    const size_t tn = (size_t)tc * tc;
    float *qt = rd_arena_floats(a, tn * (size_t)c), *dt = rd_arena_floats(a, tn);
    int32_t *it = (int32_t *)rd_arena_alloc(a, tn * sizeof(int32_t));
    if (!qt || !dt || !it) return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");
    for (int ty = 0; ty < g->nty && st == RD_OK; ty++)
        for (int tx = 0; tx < g->ntx && st == RD_OK; tx++) {
            int y0 = ty * tc, x0 = tx * tc, y1 = y0 + tc, x1 = x0 + tc;
            int ta = tx > 0 ? tx - 1 : 0, tb = tx + 1 < g->ntx ? tx + 1 : tx;
            size_t nq = 0;
            row_ranges rr = {{0}, 0};
            if (y1 > g->h) y1 = g->h;
            if (x1 > g->w) x1 = g->w;
            for (int b = ty > 0 ? ty - 1 : 0; b <= ty + 1 && b < g->nty; b++) {
                rr.r[2 * rr.n] = g->tile_row[b * g->ntx + ta];
                rr.r[2 * rr.n + 1] = g->tile_row[b * g->ntx + tb + 1];
                rr.n++;
            }
            const int rw = x1 - x0;
            for (int y = y0; y < y1; y++, nq += (size_t)rw)
                memcpy(qt + nq * c, q + ((size_t)y * g->w + x0) * c, (size_t)rw * c * sizeof(float));
            st = nearest_ranges(g->pool, &rr, qt, nq, it, dt, team, a, err);
            nq = 0;
            for (int y = y0; st == RD_OK && y < y1; y++)
                for (int x = x0; x < x1; x++, nq++) {
                    idx[(size_t)y * g->w + x] = it[nq];
                    dist2[(size_t)y * g->w + x] = dt[nq];
                }
        }
    rd_arena_rewind(a, mark);
    return st;
}
