/* pool.h — a class's reference pool at one feature level, and the nearest-
 * neighbour search that turns a test feature into a residual.
 *
 * ResAD's residual is x − x*, where x* is the pool vector closest to x over
 * the *whole* pool (all positions of all k references, not a spatial
 * neighbourhood).  At the first level with 4 shots that is a 3136 × 12544
 * similarity matrix per image, so the search is done in tiles: a block of
 * queries × a block of pool rows is one cblas_sgemm into a tile small enough
 * to stay in cache, followed by a running arg-max per query.  The full matrix
 * never exists.
 *   L2 (paper):      argmin ‖x − p‖² = argmax (x·p − ½‖p‖²); ½‖p‖² precomputed.
 *   cosine (code):   argmax x̂·p̂ with rows normalized once at pool build.
 * The reported distance of the winner is recomputed exactly from the vectors.
 *
 * On x86-64 CPUs with AVX-512 or AVX2+FMA (detected at run time) a fused
 * kernel replaces GEMM + arg-max: similarities live only in registers (see
 * pool.c); queries are split across the caller's rd_team.  Elsewhere OpenBLAS
 * tiles are used (and threaded by OpenBLAS).
 *
 * Kernels, in the order AUTO prefers them (the first the CPU runs):
 *   bf16-fused    AVX512_BF16 (vdpbf16ps, 2 channels per lane and instruction):
 *                 coarse bf16 scores of mean-centred vectors keep each query's
 *                 RD_POOL_BF16_TOPK best rows, which are re-scored exactly
 *                 (double) and the best kept; the distance is always fp32 from
 *                 the chosen row.  The winner is the exact nearest row whenever
 *                 its margin over the next row exceeds twice the bf16 error
 *                 bound, and otherwise one of ≥ TOPK rows that score within that
 *                 bound of it (on real features: near-duplicate positions).
 *   avx512-fused  512-bit fp32 FMA, 16 queries per register
 *   avx2-fused    256-bit fp32 FMA, 8 queries per register
 *   sgemm-tiles   OpenBLAS GEMM tiles + arg-max (any CPU; the reference path)
 * The environment variable RESAD_SEARCH_KERNEL (a kernel name or its prefix:
 * bf16, avx512, avx2, sgemm, auto), read once at start-up, forces one (for
 * benchmarks and accuracy checks; ignored when the CPU cannot run it).
 * A pool carries the panels of the kernel selected when it is built: bf16
 * pairs for bf16-fused (half the bytes of fp32 panels; fp32 below
 * RD_POOL_BF16_MIN_C channels), fp32 for the other fused kernels; a search whose kernel finds no panels of its kind uses
 * sgemm-tiles (bf16-fused on fp32 panels: avx512-fused).
 *
 * Ownership: rd_pool_new copies its inputs; the pool is immutable after
 * that and may be searched by many threads at once (scratch is the caller's). */
#ifndef RD_POOL_H
#define RD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "status.h"
#include "team.h"

typedef enum rd_pool_metric { RD_POOL_L2, RD_POOL_COSINE } rd_pool_metric;

#define RD_POOL_PANEL 16 /* pool rows per panel of the fused kernel */

typedef struct rd_pool {
    int c;           /* channels */
    size_t n;        /* rows */
    rd_pool_metric metric;
    float *rows;     /* n×c, the original vectors (residuals use these) */
    float *keys;     /* n×c search keys: = rows (L2) or normalized rows (cosine) */
    float *bias;     /* n: −½‖p‖² (L2) or 0 (cosine) */
    /* Fused-kernel layout (only where the CPU has AVX2 or AVX-512): keys transposed in
     * panels of RD_POOL_PANEL rows, panel b = [c][16] floats; the last panel is
     * padded with bias −inf so padding never wins. */
    float *panels;
    float *panel_bias;
    size_t npanels;
    /* bf16-fused layout (instead of panels, where that kernel is selected at build):
     * keys − center rounded to bf16, panel b = [⌈c/2⌉][16] 32-bit words of two
     * channels each (an odd c pads a zero channel), bias of the centred keys
     * (−½‖k − μ‖² for L2, μ·(k − μ) for cosine; −inf pads), and the error
     * bound's terms: the largest ‖k − μ‖ and |bias| (and, after μ in center, the
     * largest |kₖ − μₖ| per channel). */
    uint32_t *panels16;
    float *panel16_bias;
    float *center; /* 2c: μ, the mean key, then max over rows of |kₖ − μₖ| */
    double kmax, bmax;
} rd_pool;

/* Concatenates nblocks blocks of rows[i]×c floats. */
rd_pool *rd_pool_new(const float *const *blocks, const size_t *rows, int nblocks, int c,
                     rd_pool_metric metric, rd_err *err);
void rd_pool_free(rd_pool *p);

/* Scratch bytes rd_pool_nearest needs for up to nq queries of c channels (any pool size). */
size_t rd_pool_scratch_bytes(int c, size_t nq);

/* For each of nq query rows (nq×c), index of the nearest pool row and the
 * squared L2 distance to it (also for the cosine metric, where the winner is
 * chosen by cosine).  idx and dist2 may not be NULL. */
rd_status rd_pool_nearest(const rd_pool *p, const float *q, size_t nq, int32_t *idx, float *dist2,
                          rd_team *team, rd_arena *scratch, rd_err *err) RD_WARN_UNUSED;

/* Rows per query the bf16 kernel keeps for exact re-scoring, and the fewest
 * channels it is used for (below, 8-bit mantissas tie too many rows, and the
 * fp32 dot product is short anyway: such pools get fp32 panels). */
#define RD_POOL_BF16_TOPK 2
#define RD_POOL_BF16_MIN_C 8

/* The search kernels.  AUTO picks the best the CPU has (BF16 > AVX512 > AVX2 > SGEMM). */
typedef enum rd_pool_kern {
    RD_POOL_KERN_AUTO,
    RD_POOL_KERN_SGEMM,  /* "sgemm-tiles": OpenBLAS GEMM tiles + arg-max; also the reference path */
    RD_POOL_KERN_AVX2,   /* "avx2-fused": 256-bit FMA, 8 queries per register */
    RD_POOL_KERN_AVX512, /* "avx512-fused": 512-bit FMA, 16 queries per register */
    RD_POOL_KERN_BF16,   /* "bf16-fused": AVX512_BF16 coarse scores + exact re-scoring */
    RD_POOL_KERN_COUNT
} rd_pool_kern;

/* Which search kernel rd_pool_nearest uses now, by name (see rd_pool_kern). */
const char *rd_pool_kernel(void);
const char *rd_pool_kernel_name(rd_pool_kern k);
/* Forces a kernel (tests and benchmarks compare them): 1 if the CPU runs it,
 * else 0 and nothing changes.  A fused kernel needs its panels, which pools
 * built while it (or, for the fp32 ones, any fp32 fused kernel) is selected
 * have: force before building the pools.  Not thread-safe. */
int rd_pool_force_kernel(rd_pool_kern k);
/* = rd_pool_force_kernel(on ? RD_POOL_KERN_SGEMM : RD_POOL_KERN_AUTO). */
void rd_pool_force_sgemm(int on);
/* Queries the bf16 kernel has searched since start-up, and for how many of
 * them the error bound could not prove the winner exact (a TOPK+1-th row
 * might score higher; benchmarks report the share). */
void rd_pool_bf16_counts(uint64_t *queries, uint64_t *unsure);
/* Heap bytes of a pool (all its arrays, whichever panels it has). */
size_t rd_pool_heap_bytes(const rd_pool *p);

/* ---- local search over aligned reference maps (whole-frame inspection) ----
 *
 * The global search costs (query positions) × (pool rows) = k·(h·w)²: quadratic
 * in the working pixels.  For aligned parts (a fixed camera) a feature's
 * nearest normal neighbour lies near the same position, so rd_pool_grid cuts
 * the h×w level grid into tc×tc-cell tiles and gives each tile a pool of the
 * references' rows in that tile and its 8 neighbours (≤ 9·k·tc² rows): every
 * query compares against a bounded number of rows, and the cost is linear in
 * h·w.  Nothing is stored twice: the pool is laid out tile by tile, so a
 * neighbourhood is 3 contiguous row ranges (one per band of tiles) of one
 * pool, searched by the same kernels.  A query whose nearest normal feature lies
 * more than a tile away is not matched to it — the price of linearity, and
 * why the neighbourhood spans 3×3 tiles.  A grid of at most 18 tiles' worth of
 * positions (h·w ≤ 18·tc²; then a neighbourhood would be half of it or more)
 * keeps one plain pool: the result is exactly the global search's, and the
 * rows a query is compared with stay below 18·k·tc² in every case. */
typedef struct rd_pool_grid {
    int h, w, c, nmaps;
    rd_pool *pool;      /* global: the maps in order; local: banded (tile after tile, each
                           tile's rows of every map, padded to a panel with rows that never win) */
    const float *rows;  /* = pool->rows: what rd_pool_grid_nearest's indices point into */
    size_t *tile_row;   /* local: tile t holds pool rows [tile_row[t], tile_row[t+1]) */
    int tc, ntx, nty;   /* tc = 0: global */
} rd_pool_grid;

/* 1 if an h×w grid with tc×tc tiles is searched globally (tc ≤ 0: always). */
int rd_pool_grid_global(int h, int w, int tc);
/* nmaps maps of h×w×c floats (copied).  tc ≤ 0: always global. */
rd_pool_grid *rd_pool_grid_new(const float *const *maps, int nmaps, int h, int w, int c, rd_pool_metric metric,
                               int tc, rd_err *err);
void rd_pool_grid_free(rd_pool_grid *g);
static inline int rd_pool_grid_is_local(const rd_pool_grid *g) { return g->tc > 0; }
/* Scratch bytes of rd_pool_grid_nearest (q of g->h·g->w rows). */
size_t rd_pool_grid_scratch_bytes(const rd_pool_grid *g);
/* For each of the h·w rows of the query map q (h×w×c), the index into g->rows
 * of its nearest row within its tile's neighbourhood (local) or the whole pool
 * (global), and the squared L2 distance (as rd_pool_nearest). */
rd_status rd_pool_grid_nearest(const rd_pool_grid *g, const float *q, int32_t *idx, float *dist2, rd_team *team,
                               rd_arena *scratch, rd_err *err) RD_WARN_UNUSED;

/* Brute-force reference of rd_pool_nearest, for tests. */
void rd_pool_nearest_naive(const rd_pool *p, const float *q, size_t nq, int32_t *idx, float *dist2);

#endif
