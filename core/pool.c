/* pool.c — reference pool and tiled nearest-neighbour search (see pool.h). */
#include "pool.h"

#include <cblas.h>
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QTILE 128  /* queries per tile */
#define PTILE 1024 /* pool rows per tile: 128×1024×4 B = 512 KiB, L2-resident */
#define QGROUP 8   /* queries per register block of the fused kernel */

static int force_sgemm;

static int have_avx512(void)
{
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached && !force_sgemm;
#else
    return 0;
#endif
}

const char *rd_pool_kernel(void) { return have_avx512() ? "avx512-fused" : "sgemm-tiles"; }
void rd_pool_force_sgemm(int on) { force_sgemm = on; }

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
    if (have_avx512() && build_panels(p) != 0) goto nomem;
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
    free(p->rows);
    free(p->bias);
    free(p);
}

static size_t fused_scratch_bytes(size_t nq, int c);

/* Row ranges [r[2i], r[2i+1]) of a pool a search visits (local search); the
 * whole pool is one range.  Range starts are multiples of RD_POOL_PANEL. */
typedef struct row_ranges {
    size_t r[6];
    int n;
} row_ranges;

size_t rd_pool_scratch_bytes(int c, size_t nq)
{
    size_t a = rd_arena_need((size_t)QTILE * PTILE * sizeof(float)) +
               rd_arena_need((size_t)QTILE * (size_t)c * sizeof(float)) +
               rd_arena_need((size_t)QTILE * sizeof(float));
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

#if defined(__x86_64__)
/* The fused kernel: for QGROUP queries at once, walks the pool panel by panel;
 * each panel is 16 pool rows, so one zmm accumulator per query holds 16
 * similarities (bias + q·p, c FMAs with a broadcast query element), and a
 * masked compare keeps the running best value and row index per lane.  The
 * similarity matrix exists only in registers.  Pool rows are visited in
 * chunks that fit L1, so each chunk is reused by every query group. */
__attribute__((target("avx512f"))) static void fused_search(const rd_pool *p, const row_ranges *rr,
                                                             const float *qrows, size_t nq, int32_t *idx,
                                                             float *state)
{
    const int c = p->c;
    const size_t chunk_panels = (size_t)(24576 / (4 * RD_POOL_PANEL * c)) > 0
                                    ? (size_t)(24576 / (4 * RD_POOL_PANEL * c)) : 1;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* state: per query 16 best values then 16 best indices (as float bits) */
    float *bv_all = state, *bi_all = state + nq * 16;

    for (size_t i = 0; i < nq; i++) {
        _mm512_storeu_ps(bv_all + i * 16, _mm512_set1_ps(-INFINITY));
        _mm512_storeu_si512((void *)(bi_all + i * 16), _mm512_setzero_si512());
    }
    for (int ri = 0; ri < rr->n; ri++) {
    const size_t pa = rr->r[2 * ri] / RD_POOL_PANEL, pe = (rr->r[2 * ri + 1] + RD_POOL_PANEL - 1) / RD_POOL_PANEL;
    for (size_t b0 = pa; b0 < pe; b0 += chunk_panels) {
        const size_t b1 = b0 + chunk_panels < pe ? b0 + chunk_panels : pe;
        for (size_t g = 0; g < nq; g += QGROUP) {
            const float *qp[QGROUP];
            __m512 bv[QGROUP];
            __m512i bi[QGROUP];
            const int gn = (int)(nq - g < QGROUP ? nq - g : QGROUP);
            for (int i = 0; i < QGROUP; i++) {
                int ii = i < gn ? i : gn - 1; /* pad by repeating the last query */
                qp[i] = qrows + (g + (size_t)ii) * (size_t)c;
                bv[i] = _mm512_loadu_ps(bv_all + (g + (size_t)ii) * 16);
                bi[i] = _mm512_loadu_si512((const void *)(bi_all + (g + (size_t)ii) * 16));
            }
            for (size_t b = b0; b < b1; b++) {
                const float *panel = p->panels + b * (size_t)c * RD_POOL_PANEL;
                const __m512 bias = _mm512_loadu_ps(p->panel_bias + b * RD_POOL_PANEL);
                __m512 acc[QGROUP];
#pragma GCC unroll 8
                for (int i = 0; i < QGROUP; i++) acc[i] = bias;
                for (int k = 0; k < c; k++) {
                    const __m512 pk = _mm512_load_ps(panel + (size_t)k * RD_POOL_PANEL);
#pragma GCC unroll 8
                    for (int i = 0; i < QGROUP; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(qp[i][k]), pk, acc[i]);
                }
                const __m512i id = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(b * RD_POOL_PANEL)));
#pragma GCC unroll 8
                for (int i = 0; i < QGROUP; i++) {
                    __mmask16 m = _mm512_cmp_ps_mask(acc[i], bv[i], _CMP_GT_OQ);
                    bv[i] = _mm512_mask_mov_ps(bv[i], m, acc[i]);
                    bi[i] = _mm512_mask_mov_epi32(bi[i], m, id);
                }
            }
            for (int i = 0; i < gn; i++) {
                _mm512_storeu_ps(bv_all + (g + (size_t)i) * 16, bv[i]);
                _mm512_storeu_si512((void *)(bi_all + (g + (size_t)i) * 16), bi[i]);
            }
        }
    }
    }
    for (size_t i = 0; i < nq; i++) {
        const float *v = bv_all + i * 16;
        int32_t ids[16];
        memcpy(ids, bi_all + i * 16, sizeof ids);
        int best = 0;
        for (int l = 1; l < 16; l++)
            if (v[l] > v[best] || (v[l] == v[best] && ids[l] < ids[best])) best = l;
        idx[i] = ids[best];
    }
}
#endif

/* Scratch of the fused kernel for nq queries. */
static size_t fused_scratch_bytes(size_t nq, int c)
{
    return rd_arena_need(nq * 32 * sizeof(float)) + rd_arena_need(nq * (size_t)c * sizeof(float));
}

#define TASK_QUERIES 64

typedef struct search_job {
    const rd_pool *p;
    const row_ranges *rr;
    const float *q;  /* original queries */
    const float *qk; /* search keys of the queries (normalized for cosine) */
    size_t nq;
    int32_t *idx;
    float *dist2;
    float *state;
} search_job;

static void search_task(void *ctx, int task)
{
#if defined(__x86_64__)
    search_job *j = ctx;
    const int c = j->p->c;
    size_t q0 = (size_t)task * TASK_QUERIES;
    size_t n = j->nq - q0 < TASK_QUERIES ? j->nq - q0 : TASK_QUERIES;
    fused_search(j->p, j->rr, j->qk + q0 * (size_t)c, n, j->idx + q0, j->state + q0 * 32);
    for (size_t i = q0; i < q0 + n; i++)
        j->dist2[i] = sqdist(j->q + i * (size_t)c, j->p->rows + (size_t)j->idx[i] * c, c);
#else
    (void)ctx;
    (void)task;
#endif
}

static rd_status nearest_ranges(const rd_pool *p, const row_ranges *rr, const float *q, size_t nq, int32_t *idx,
                                float *dist2, rd_team *team, rd_arena *scratch, rd_err *err)
{
    if (have_avx512() && p->panels) {
        size_t mark = rd_arena_mark(scratch);
        search_job j = {p, rr, q, q, nq, idx, dist2, rd_arena_floats(scratch, nq * 32)};
        if (!j.state) return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");
        if (p->metric == RD_POOL_COSINE) {
            float *qn = rd_arena_floats(scratch, nq * (size_t)p->c);
            if (!qn) return rd_err_set(err, RD_ERR_INTERNAL, "pool search: scratch arena too small");
            for (size_t i = 0; i < nq; i++) {
                const float *r = q + i * (size_t)p->c;
                double ss = 0;
                for (int k = 0; k < p->c; k++) ss += (double)r[k] * r[k];
                float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
                for (int k = 0; k < p->c; k++) qn[i * (size_t)p->c + k] = r[k] * inv;
            }
            j.qk = qn;
        }
        rd_team_run(team, search_task, &j, (int)((nq + TASK_QUERIES - 1) / TASK_QUERIES));
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
