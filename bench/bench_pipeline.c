/* bench_pipeline.c — ms/image per stage of the whole inspection pipeline.
 *
 * usage: bench_pipeline [-m MODEL] BACKBONE SIZE THREADS ITERS REF1 REF2 ... -- IMAGE
 * Prints one JSON line: per-stage medians (decode, preprocess, backbone, nn,
 * score — of which "learned" is the constraintor + flow of the learned model
 * given with -m —, heatmap, total) over ITERS runs, the backbone's MACs and
 * GFLOP/s.
 * Not a test: bench/run.sh drives it and compares with PyTorch. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "heatmap.h"
#include "resad.h"
#include "testutil.h"

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
    if (argc < 8) {
        fprintf(stderr, "usage: bench_pipeline [-m MODEL] BACKBONE SIZE THREADS ITERS REF... -- IMAGE\n");
        return 2;
    }
    o.backbone_path = argv[1];
    o.size = atoi(argv[2]);
    o.threads = atoi(argv[3]);
    int iters = atoi(argv[4]);
    int k = 0, sep = 0;
    for (int i = 5; i < argc; i++)
        if (!strcmp(argv[i], "--")) sep = i;
    if (!sep || sep + 1 >= argc || iters < 1) return 2;
    k = sep - 5;
    rd_model *m = rd_model_load(&o, &err);
    if (!m) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    rd_worker *w = rd_worker_new(m, &err);
    rd_feats *f[64];
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    for (int i = 0; i < k; i++) {
        rd_image im;
        if (rd_image_load(argv[5 + i], &lim, &im, &err) || rd_extract(m, w, &im, &f[i], NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        rd_image_release(&im);
    }
    double t0 = now_ms();
    rd_refset *rs = rd_refset_build(m, w, f, k, &err);
    double t_reg = now_ms() - t0;
    if (!rs) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    size_t len;
    unsigned char *bytes = rd_read_file(argv[sep + 1], &len);
    if (!bytes) return 1;
    double *st[8];
    for (int s = 0; s < 8; s++) st[s] = calloc((size_t)iters, sizeof(double));
    for (int it = -2; it < iters; it++) { /* 2 warm-up runs */
        rd_image im;
        rd_result res;
        rd_png_buf png = {0};
        double a = now_ms();
        if (rd_image_decode(bytes, len, &lim, &im, &err)) return 1;
        double b = now_ms();
        if (rd_inspect(m, w, rs, &im, NAN, &res, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        double c = now_ms();
        if (rd_result_render(&res, RD_HEAT_OVERLAY, &im, &png, &err)) return 1;
        double d = now_ms();
        if (it >= 0) {
            st[0][it] = b - a;
            st[1][it] = res.t.preprocess;
            st[2][it] = res.t.backbone;
            st[3][it] = res.t.nn;
            st[4][it] = res.t.score;
            st[5][it] = d - c;
            st[6][it] = d - a;
            st[7][it] = res.t.learned;
        }
        (void)c;
        rd_png_buf_release(&png);
        rd_result_release(&res);
        rd_image_release(&im);
    }
    const rd_model_info *in = rd_model_get_info(m);
    double bb = median(st[2], iters);
    double macs = rd_model_backbone_macs(m);
    printf("{\"arch\":\"%s\",\"scorer\":\"%s\",\"size\":%d,\"threads\":%d,\"shots\":%d,\"decode\":%.3f,"
           "\"preprocess\":%.3f,\"backbone\":%.3f,\"nn\":%.3f,\"score\":%.3f,\"learned\":%.3f,\"heatmap\":%.3f,"
           "\"total\":%.3f,"
           "\"backbone_gmacs\":%.3f,\"backbone_gflops\":%.1f,\"register_ms\":%.1f,\"blas\":\"%s\"}\n",
           in->arch, in->scorer, in->size, o.threads, k, median(st[0], iters), median(st[1], iters), bb,
           median(st[3], iters), median(st[4], iters), median(st[7], iters), median(st[5], iters),
           median(st[6], iters),
           macs / 1e9, 2 * macs / (bb * 1e6), t_reg, rd_blas_describe());
    for (int s = 0; s < 8; s++) free(st[s]);
    free(bytes);
    for (int i = 0; i < k; i++) rd_feats_free(f[i]);
    rd_refset_unref(rs);
    rd_worker_free(w);
    rd_model_free(m);
    return 0;
}
