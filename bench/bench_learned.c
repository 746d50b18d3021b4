/* bench_learned.c — inference cost of the learned scorer's parts at the
 * MobileNetV2 levels: constraintor (1×1, 3×3, BN folded) and conditional flow
 * (K blocks, default subnet width unless -H), ms per image and GMAC.
 *
 *   bench_learned [-t threads] [-K blocks] [-H hidden] [-r reps] [-T rows] [-j team]
 * -j N splits each level's flow rows over a team of N threads (OpenBLAS at 1
 * thread) instead of threading the GEMMs (-t).
 * -T also times one training step of the flow (forward + backward on `rows`
 * positions, e.g. the official 8192-row chunks) per level.
 * Run with OPENBLAS_CORETYPE set (or through a binary that calls
 * rd_blas_autofix) — the numbers are meaningless on Prescott kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "constraintor.h"
#include "flow.h"
#include "team.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    int threads = 1, K = 8, hid = 0, reps = 20, train_rows = 0, team_n = 0;
    rd_team *team = NULL;
    static const int lv[3][3] = {{56, 56, 24}, {28, 28, 32}, {14, 14, 64}};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-K")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-H")) hid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-T")) train_rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-j")) team_n = atoi(argv[i + 1]);
    }
    rd_blas_autofix(argc, argv);
    if (team_n > 0) {
        rd_err err;
        threads = 1;
        team = rd_team_new(team_n, &err);
        if (!team) {
            fprintf(stderr, "bench_learned: %s\n", err.msg);
            return 1;
        }
    }
    rd_blas_set_threads(threads);
    printf("# %s\n# K %d, hidden %d (0 = default), BLAS %d thread(s), team %d, %d reps\n", rd_blas_describe(), K, hid,
           threads, team_n, reps);
    printf("%-10s %-12s %10s %10s\n", "level", "part", "GMAC", "ms/image");
    double tot[3] = {0, 0, 0}, mac[3] = {0, 0, 0};
    for (int l = 0; l < 3; l++) {
        const int h = lv[l][0], w = lv[l][1], c = lv[l][2];
        rd_err err;
        rd_flow_cfg cfg;
        rd_flow_cfg_default(&cfg, c, K);
        cfg.hid = hid;
        rd_flow *f = rd_flow_new(&cfg, 1, &err);
        rd_flow_plan *p = f ? rd_flow_plan_new(f, h, w, &err) : NULL;
        rd_cstr *m1 = rd_cstr_new(c, 1, 2, &err), *m3 = rd_cstr_new(c, 3, 3, &err);
        rd_cstr_plan *p1 = m1 ? rd_cstr_plan_new(m1, &err) : NULL, *p3 = m3 ? rd_cstr_plan_new(m3, &err) : NULL;
        rd_arena a;
        if (!p || !p1 || !p3 ||
            rd_arena_init(&a, rd_flow_plan_scratch(p) + rd_cstr_plan_scratch(p3, h, w) + 4096, &err) != RD_OK) {
            fprintf(stderr, "bench_learned: %s\n", err.msg);
            return 1;
        }
        size_t n = (size_t)h * w;
        rd_arena ta = {0};
        if (team && rd_arena_init(&ta, rd_flow_plan_scratch_team(p, team_n), &err) != RD_OK) return 1;
        float *x = malloc(n * c * sizeof(float)), *e = malloc(n * c * sizeof(float)), *lpc = malloc(n * 4);
        for (size_t i = 0; i < n * c; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        const char *names[3] = {"cstr 1x1", "cstr 3x3", "flow"};
        for (int part = 0; part < 3; part++) {
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = now_ms();
                rd_status st = RD_OK;
                if (part == 2 && team) {
                    st = rd_flow_plan_lpc_team(p, x, lpc, team, &ta, &err);
                } else {
                    st = part == 0   ? rd_cstr_plan_forward(p1, x, h, w, e, &a, &err)
                         : part == 1 ? rd_cstr_plan_forward(p3, x, h, w, e, &a, &err)
                                     : rd_flow_plan_lpc(p, x, lpc, &a, &err);
                }
                double t = now_ms() - t0;
                if (st != RD_OK) {
                    fprintf(stderr, "bench_learned: %s\n", err.msg);
                    return 1;
                }
                if (t < best) best = t;
            }
            double g = part == 2 ? rd_flow_plan_macs(p) : rd_cstr_plan_macs(part ? p3 : p1, h, w);
            printf("%dx%dx%-4d %-12s %10.3f %10.3f\n", h, w, c, names[part], g / 1e9, best);
            tot[part] += best;
            mac[part] += g;
        }
        if (train_rows > 0) {
            size_t tn = (size_t)train_rows;
            rd_flow_ws *ws = rd_flow_ws_new(f, tn, h, w, &err);
            float *tx = malloc(tn * c * sizeof(float)), *tl = malloc(tn * 4), *g = calloc(f->nparams, 4);
            int32_t *py = malloc(tn * 4), *px = malloc(tn * 4);
            if (!ws || !tx || !tl || !g || !py || !px) {
                fprintf(stderr, "bench_learned: training workspace: %s\n", err.msg);
                return 1;
            }
            for (size_t i = 0; i < tn; i++) {
                py[i] = (int32_t)((i * 7) % h);
                px[i] = (int32_t)((i * 13) % w);
                for (int j = 0; j < c; j++) tx[i * c + j] = x[(i % n) * c + j];
            }
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t0 = now_ms();
                if (rd_flow_train_forward(f, ws, tx, py, px, tn, tl, &err) != RD_OK ||
                    rd_flow_train_backward(f, ws, tl, g, NULL, &err) != RD_OK) {
                    fprintf(stderr, "bench_learned: %s\n", err.msg);
                    return 1;
                }
                double t = now_ms() - t0;
                if (t < best) best = t;
            }
            printf("%dx%dx%-4d %-12s %10.3f %10.3f  (ms per step of %d rows)\n", h, w, c, "flow train", 3 * rd_flow_plan_macs(p) * (double)tn / (double)n / 1e9, best, train_rows);
            rd_flow_ws_free(ws);
            free(tx);
            free(tl);
            free(g);
            free(py);
            free(px);
        }
        rd_arena_release(&a);
        rd_arena_release(&ta);
        rd_flow_plan_free(p);
        rd_flow_free(f);
        rd_cstr_plan_free(p1);
        rd_cstr_plan_free(p3);
        rd_cstr_free(m1);
        rd_cstr_free(m3);
        free(x);
        free(e);
        free(lpc);
    }
    printf("%-10s %-12s %10.3f %10.3f\n", "total", "cstr 1x1", mac[0] / 1e9, tot[0]);
    printf("%-10s %-12s %10.3f %10.3f\n", "total", "cstr 3x3", mac[1] / 1e9, tot[1]);
    printf("%-10s %-12s %10.3f %10.3f\n", "total", "flow", mac[2] / 1e9, tot[2]);
    rd_team_free(team);
    return 0;
}
