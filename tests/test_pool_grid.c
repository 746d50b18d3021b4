/* test_pool_grid.c — the local (tiled) nearest-neighbour search against brute
 * force over exactly the rows it is meant to see.
 *
 * Random maps: for every query position, the answer must be the nearest row
 * among all maps' positions in the query's tile and its 8 neighbours (brute
 * force in double), with its exact squared distance; on a grid of at most 18
 * tiles' worth of positions it must equal the global search, index for index;
 * the sgemm-tiles kernel and the fused kernel agree; the scratch bound holds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "testutil.h"

static void check_grid(int nmaps, int h, int w, int c, int tc, rd_pool_metric metric, rd_team *team, unsigned seed)
{
    rd_err err = {0};
    rd_arena a;
    const size_t n = (size_t)h * w;
    float *data = malloc(sizeof(float) * n * nmaps * c), *q = malloc(sizeof(float) * n * c);
    const float *maps[8];
    int32_t *idx = malloc(n * sizeof *idx);
    float *d2 = malloc(n * sizeof *d2);
    rd_fill_uniform(data, n * nmaps * c, seed, 0, 1);
    rd_fill_uniform(q, n * c, seed + 1, 0, 1);
    for (int i = 0; i < nmaps; i++) maps[i] = data + (size_t)i * n * c;
    rd_pool_grid *g = rd_pool_grid_new(maps, nmaps, h, w, c, metric, tc, &err);
    RD_CHECK(g != NULL, "grid: %s", err.msg);
    if (!g) return;
    const int local = tc > 0 && (h > 2 * tc || w > 2 * tc) && h * w > 18 * tc * tc;
    RD_CHECK(rd_pool_grid_is_local(g) == local, "%dx%d tile %d: local %d", h, w, tc, rd_pool_grid_is_local(g));
    RD_CHECK(rd_arena_init(&a, rd_pool_grid_scratch_bytes(g), &err) == RD_OK, "arena");
    RD_CHECK(rd_pool_grid_nearest(g, q, idx, d2, team, &a, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(a.used == 0 && a.peak <= a.cap, "scratch");
    int wrong = 0;
    double worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int y0 = 0, y1 = h, x0 = 0, x1 = w;
            if (local) {
                int ty = y / tc, tx = x / tc;
                y0 = (ty - 1) * tc, y1 = (ty + 2) * tc, x0 = (tx - 1) * tc, x1 = (tx + 2) * tc;
                if (y0 < 0) y0 = 0;
                if (x0 < 0) x0 = 0;
                if (y1 > h) y1 = h;
                if (x1 > w) x1 = w;
            }
            const float *qq = q + ((size_t)y * w + x) * c;
            double best = INFINITY;
            long bi = -1;
            for (int m = 0; m < nmaps; m++)
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) {
                        size_t r = (size_t)m * n + (size_t)yy * w + xx;
                        const float *p = data + r * c;
                        double s = 0, pq = 0, pp = 0, qn = 0;
                        for (int k = 0; k < c; k++) {
                            s += ((double)qq[k] - p[k]) * ((double)qq[k] - p[k]);
                            pq += (double)qq[k] * p[k];
                            pp += (double)p[k] * p[k];
                            qn += (double)qq[k] * qq[k];
                        }
                        double key = metric == RD_POOL_L2 ? s : -pq / sqrt(pp * qn);
                        if (key < best) best = key, bi = (long)r;
                    }
            size_t at = (size_t)y * w + x;
            const float *p = data + (size_t)bi * c;
            double dd = 0;
            for (int k = 0; k < c; k++) dd += ((double)qq[k] - p[k]) * ((double)qq[k] - p[k]);
            if (local ? memcmp(g->rows + (size_t)idx[at] * c, data + (size_t)bi * c, c * sizeof(float)) : idx[at] != bi)
                wrong++;
            worst = fmax(worst, fabs(d2[at] - dd));
        }
    RD_CHECK(wrong == 0, "%dx%d tile %d metric %d: %d of %zu queries not the neighbourhood's nearest", h, w, tc,
             (int)metric, wrong, n);
    RD_CHECK(worst < 1e-4, "distance error %g", worst);
    if (!local) { /* exactly the global search */
        size_t rows[8];
        for (int i = 0; i < nmaps; i++) rows[i] = n;
        rd_pool *p = rd_pool_new(maps, rows, nmaps, c, metric, &err);
        int32_t *i2 = malloc(n * sizeof *i2);
        float *e2 = malloc(n * sizeof *e2);
        rd_arena b;
        RD_CHECK(p && rd_arena_init(&b, rd_pool_scratch_bytes(c, n), &err) == RD_OK &&
                     rd_pool_nearest(p, q, n, i2, e2, team, &b, &err) == RD_OK,
                 "%s", err.msg);
        RD_CHECK(!memcmp(i2, idx, n * sizeof *i2) && !memcmp(e2, d2, n * sizeof *e2), "not the global search");
        rd_arena_release(&b);
        rd_pool_free(p);
        free(i2);
        free(e2);
    }
    rd_arena_release(&a);
    rd_pool_grid_free(g);
    free(data);
    free(q);
    free(idx);
    free(d2);
}

int main(void)
{
    rd_err err;
    rd_team *team = rd_team_new(2, &err);
    RD_CHECK(team != NULL, "team");
    for (int pass = 0; pass < 2; pass++) {
        rd_pool_force_sgemm(pass);
        check_grid(3, 23, 37, 8, 5, RD_POOL_L2, team, 11u + pass);      /* 5×8 tiles, ragged edges */
        check_grid(2, 30, 12, 24, 4, RD_POOL_COSINE, team, 21u + pass); /* 8×3 tiles */
        check_grid(4, 14, 70, 16, 7, RD_POOL_L2, team, 31u + pass);     /* 2×10 tiles: local along x */
        check_grid(4, 14, 14, 16, 7, RD_POOL_L2, team, 41u + pass);     /* 2×2: global */
        check_grid(2, 21, 42, 8, 7, RD_POOL_L2, team, 61u + pass);      /* 3×6 tiles, 18 tiles' worth: global */
        check_grid(2, 9, 9, 8, 0, RD_POOL_L2, team, 51u + pass);        /* tile 0: global */
    }
    rd_pool_force_sgemm(0);
    rd_team_free(team);
    return rd_test_done("test_pool_grid");
}
