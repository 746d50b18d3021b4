/* bench_geometry.c — cost of an inspection against the number of working pixels.
 *
 * usage: bench_geometry [-m MODEL] BACKBONE THREADS ITERS TEXTURE.jpg [S...]
 * 16:9 frames are tiled from a (seamless) texture photograph at exactly the
 * working size for each short side S (default 224 448 672 896), 4 references
 * and one test frame each.  For every S the inspection is timed (median of
 * ITERS after a warm-up) twice in the same run: with the default local
 * nearest-neighbour search (each 224×224-working-pixel tile searches the
 * references' positions in its own and the 8 neighbouring tiles) and with the
 * global search over the whole pool (the paper's; skipped above S = 448, where
 * it is quadratic and takes minutes).  One JSON line per (S, search) with the
 * stage times and, against the same run's S = 224 line of the same search,
 * the ratio of time to the ratio of working pixels: linear cost keeps
 * time_ratio / pixel_ratio near 1 (or below: fixed costs amortize).
 * Not a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "resad.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* w×h frame tiled from tex at offset (ox, oy), lighting factor f. */
static int tile_frame(const rd_image *tex, int w, int h, int ox, int oy, float f, rd_image *out)
{
    memset(out, 0, sizeof *out);
    out->w = w;
    out->h = h;
    out->rgb = malloc((size_t)w * h * 3);
    if (!out->rgb) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = tex->rgb[(((size_t)((y + oy) % tex->h)) * tex->w + (size_t)((x + ox) % tex->w)) * 3 + c] * f;
                out->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return 0;
}

int main(int argc, char **argv)
{
    rd_blas_autofix(argc, argv);
    rd_model_opts o;
    rd_err err = {0};
    rd_model_opts_default(&o);
    if (argc > 2 && !strcmp(argv[1], "-m")) {
        o.model_path = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc < 5) {
        fprintf(stderr, "usage: bench_geometry [-m MODEL] BACKBONE THREADS ITERS TEXTURE.jpg [S...]\n");
        return 2;
    }
    o.backbone_path = argv[1];
    o.threads = atoi(argv[2]);
    int iters = atoi(argv[3]);
    int sizes[16] = {224, 448, 672, 896}, ns = 4;
    if (argc > 5) {
        ns = 0;
        for (int i = 5; i < argc && ns < 16; i++) sizes[ns++] = atoi(argv[i]);
    }
    rd_model *m = rd_model_load(&o, &err);
    rd_worker *w = m ? rd_worker_new(m, &err) : NULL;
    rd_image tex;
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    if (!w || rd_image_load(argv[4], &lim, &tex, &err) != RD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double base[2] = {0, 0}, base_px = 0;
    for (int si = 0; si < ns; si++) {
        const int S = sizes[si], W = rd_geometry_long_side(S, 16.0 / 9.0, 16), H = S;
        for (int mode = 0; mode < 2; mode++) { /* 0 local (default), 1 global */
            if (mode == 1 && S > 448) continue;
            rd_geo_opts go = {0};
            rd_geometry g;
            rd_feats *f[4] = {0};
            rd_image frame;
            go.s = S;
            go.search_tile = mode ? -1 : 0;
            if (rd_model_geometry(m, W, H, &go, &g, &err) != RD_OK) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            for (int i = 0; i < 4; i++) {
                if (tile_frame(&tex, W, H, 37 * i + 11, 53 * i + 7, 0.95f + 0.03f * i, &frame) ||
                    rd_extract_geo(m, w, &g, &frame, &f[i], NULL, &err) != RD_OK) {
                    fprintf(stderr, "bench: %s\n", err.msg);
                    return 1;
                }
                rd_image_release(&frame);
            }
            double t0 = now_ms();
            rd_refset *rs = rd_refset_build(m, w, f, 4, &err);
            double reg = now_ms() - t0;
            if (!rs || tile_frame(&tex, W, H, 101, 67, 1.0f, &frame)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            double *tt = calloc((size_t)iters, sizeof *tt), *tn = calloc((size_t)iters, sizeof *tn),
                   *tb = calloc((size_t)iters, sizeof *tb), *ts = calloc((size_t)iters, sizeof *ts);
            for (int it = -1; it < iters; it++) {
                rd_result res;
                if (rd_inspect(m, w, rs, &frame, NAN, &res, &err) != RD_OK) {
                    fprintf(stderr, "bench: %s\n", err.msg);
                    return 1;
                }
                if (it >= 0) {
                    tt[it] = res.t.total;
                    tn[it] = res.t.nn;
                    tb[it] = res.t.backbone + res.t.preprocess;
                    ts[it] = res.t.score;
                }
                rd_result_release(&res);
            }
            qsort(tt, (size_t)iters, sizeof *tt, cmpd);
            qsort(tn, (size_t)iters, sizeof *tn, cmpd);
            qsort(tb, (size_t)iters, sizeof *tb, cmpd);
            qsort(ts, (size_t)iters, sizeof *ts, cmpd);
            double px = (double)g.work_w * g.work_h, total = tt[iters / 2];
            if (si == 0) {
                base[mode] = total;
                base_px = px;
            }
            printf("{\"search\":\"%s\",\"s\":%d,\"work\":\"%dx%d\",\"work_mpx\":%.3f,\"local\":%s,\"total_ms\":%.1f,"
                   "\"backbone_ms\":%.1f,\"nn_ms\":%.1f,\"score_ms\":%.1f,\"register_ms\":%.0f,"
                   "\"pixel_ratio\":%.2f,\"time_ratio\":%.2f,\"time_per_pixel_ratio\":%.2f,\"threads\":%d}\n",
                   mode ? "global" : "local", S, g.work_w, g.work_h, px / 1e6,
                   rd_refset_local_search(rs) ? "true" : "false", total, tb[iters / 2], tn[iters / 2],
                   ts[iters / 2], reg, px / base_px, base[mode] > 0 ? total / base[mode] : 0,
                   base[mode] > 0 ? (total / base[mode]) / (px / base_px) : 0, o.threads);
            fflush(stdout);
            free(tt);
            free(tn);
            free(tb);
            free(ts);
            rd_image_release(&frame);
            rd_refset_unref(rs);
            for (int i = 0; i < 4; i++) rd_feats_free(f[i]);
        }
    }
    rd_image_release(&tex);
    rd_worker_free(w);
    rd_model_free(m);
    return 0;
}
