/* backbone_tool.c — runs a backbone from the command line for the parity test
 * and the benchmark.
 *
 *   backbone_tool levels MODEL.safetensors INPUT.raw S OUTDIR [LEVELS]
 *       INPUT.raw: S·S·3 float32, HWC, already normalized.  Writes each level
 *       as OUTDIR/<name>.raw (float32 HWC) and prints "name h w c" lines.
 *       With BACKBONE_TOOL_TEAM=n in the environment it runs
 *       rd_graph_forward_team with a team of n (OpenBLAS single-threaded).
 *   backbone_tool bench MODEL.safetensors S ITERS THREADS [LEVELS]
 *       Prints "ms=<per forward> gflops=<2·MACs/time> arch=<arch>" for the
 *       best of ITERS forwards, OpenBLAS running THREADS threads.
 *   backbone_tool benchteam ...   the same with single-threaded OpenBLAS and
 *       a team of THREADS (rd_graph_forward_team). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "backbone.h"
#include "blas.h"
#include "team.h"
#include "testutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run(int argc, char **argv)
{
    const int bench_team = strcmp(argv[1], "benchteam") == 0, bench = bench_team || strcmp(argv[1], "bench") == 0;
    const char *team_env = getenv("BACKBONE_TOOL_TEAM");
    const int use_team = bench_team || (!bench && team_env && atoi(team_env) > 1);
    const int threads = bench ? atoi(argv[5]) : (use_team ? atoi(team_env) : 1);
    rd_team *team = NULL;
    const char *levels_csv = argc > 6 ? argv[6] : NULL;
    int s = atoi(argv[4 - bench]), rc = 1;
    rd_err err = {0};
    rd_backbone *bb = rd_backbone_load(argv[2], levels_csv, &err);
    rd_arena a = {0};
    rd_tensor lv[RD_MAX_LEVELS] = {{0}};
    float *input = NULL;
    size_t scratch = 0;

    if (!bb) {
        fprintf(stderr, "backbone_tool: %s\n", err.msg);
        return 1;
    }
    if (use_team && !(team = rd_team_new(threads, &err))) {
        fprintf(stderr, "backbone_tool: %s\n", err.msg);
        goto out;
    }
    if (rd_graph_plan(bb->graph, s, &scratch, &err) != RD_OK ||
        rd_arena_init(&a, rd_graph_scratch_team(bb->graph, threads), &err) != RD_OK) {
        fprintf(stderr, "backbone_tool: %s\n", err.msg);
        goto out;
    }
    for (int l = 0; l < bb->graph->nlevels; l++) {
        int h, w, c;
        rd_graph_level_shape(bb->graph, l, &h, &w, &c);
        lv[l].data = malloc((size_t)h * w * c * sizeof(float));
        if (!lv[l].data) goto out;
    }
    if (bench) {
        int iters = atoi(argv[4]);
        double t0, best = 1e30;
        rd_blas_set_threads(use_team ? 1 : threads);
        input = malloc((size_t)s * s * 3 * sizeof *input);
        if (!input) goto out;
        rd_fill_uniform(input, (size_t)s * s * 3, 1, -2, 2);
        if (rd_graph_forward_team(bb->graph, input, &a, team, lv, &err) != RD_OK) goto fail; /* warm-up */
        for (int i = 0; i < iters; i++) {
            t0 = now_s();
            if (rd_graph_forward_team(bb->graph, input, &a, team, lv, &err) != RD_OK) goto fail;
            t0 = now_s() - t0;
            if (t0 < best) best = t0;
        }
        printf("ms=%.2f gflops=%.1f arch=%s macs=%.3g\n", best * 1e3, 2 * rd_graph_macs(bb->graph) / best * 1e-9,
               bb->arch, rd_graph_macs(bb->graph));
    } else {
        size_t len = 0;
        input = (float *)rd_read_file(argv[3], &len);
        if (!input || len != (size_t)s * s * 3 * sizeof(float)) {
            fprintf(stderr, "backbone_tool: %s: want %d·%d·3 float32\n", argv[3], s, s);
            goto out;
        }
        if (use_team) rd_blas_set_threads(1);
        if (rd_graph_forward_team(bb->graph, input, &a, team, lv, &err) != RD_OK) goto fail;
        for (int l = 0; l < bb->graph->nlevels; l++) {
            char path[1024];
            FILE *f;
            snprintf(path, sizeof path, "%s/%s.raw", argv[5], bb->level_names[l]);
            f = fopen(path, "wb");
            if (!f || fwrite(lv[l].data, sizeof(float), rd_tensor_numel(&lv[l]), f) != rd_tensor_numel(&lv[l])) {
                fprintf(stderr, "backbone_tool: cannot write %s\n", path);
                if (f) fclose(f);
                goto out;
            }
            fclose(f);
            printf("%s %d %d %d\n", bb->level_names[l], lv[l].h, lv[l].w, lv[l].c);
        }
        printf("arch %s sha256 %s peak %zu plan %zu\n", bb->arch, bb->sha256, a.peak,
               rd_graph_scratch_team(bb->graph, threads));
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "backbone_tool: %s\n", err.msg);
out:
    for (int l = 0; l < RD_MAX_LEVELS; l++) free(lv[l].data);
    free(input);
    rd_arena_release(&a);
    rd_team_free(team);
    rd_backbone_free(bb);
    return rc;
}

int main(int argc, char **argv)
{
    rd_blas_autofix(argc, argv);
    if (argc >= 6 && (strcmp(argv[1], "levels") == 0 || strcmp(argv[1], "bench") == 0 ||
                      strcmp(argv[1], "benchteam") == 0))
        return run(argc, argv);
    fprintf(stderr, "usage: backbone_tool levels MODEL INPUT.raw S OUTDIR [LEVELS]\n"
                    "       backbone_tool bench|benchteam MODEL S ITERS THREADS [LEVELS]\n");
    return 2;
}
