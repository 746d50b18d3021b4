/* bench_camera.c — a large camera frame through the inspection: full-size
 * decode vs DCT-scaled decode (rd_decode_opts.min_short = the working size).
 *
 * usage: bench_camera [-m MODEL] BACKBONE THREADS ITERS IMAGE REF1 REF2 ...
 * For each of "full" (decode at full size, then the pipeline's resize) and
 * "scaled" (decode at 1/2, 1/4 or 1/8 keeping the short side >= S), prints one
 * JSON line with per-stage medians over ITERS runs (after one warm-up): decode,
 * preprocess, backbone, nn, score, inspect (= rd_inspect's total), heatmap
 * (the overlay PNG over the whole frame at the decoded size, rd_result_render),
 * total (decode + inspect + heatmap) and the decode share of the total, the
 * decoded size and the scale; then a line with the full/scaled total ratio and
 * the two image scores.
 * Not a test: bench/camera.sh drives it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
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

enum { T_DECODE, T_PREP, T_BACKBONE, T_NN, T_SCORE, T_INSPECT, T_HEAT, T_TOTAL, T_N };

/* One mode: min_short 0 (full) or S (scaled).  Returns the total median (ms). */
static double run_mode(const rd_model *m, rd_worker *w, const rd_refset *rs, const unsigned char *bytes, size_t len,
                       int min_short, int iters, float *score)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_decode_opts dopt = {min_short, RD_ALPHA_COMPOSITE, 0};
    rd_err err = {0};
    double *t[T_N];
    int dw = 0, dh = 0, fw = 0, fh = 0, denom = 1;
    for (int s = 0; s < T_N; s++) t[s] = calloc((size_t)iters, sizeof(double));
    for (int it = -1; it < iters; it++) {
        rd_image im;
        rd_result res;
        double a = now_ms();
        if (rd_image_decode_opts(bytes, len, &lim, &dopt, &im, &err) != RD_OK) {
            fprintf(stderr, "bench_camera: %s\n", err.msg);
            exit(1);
        }
        double b = now_ms();
        if (rd_inspect(m, w, rs, &im, NAN, &res, &err) != RD_OK) {
            fprintf(stderr, "bench_camera: %s\n", err.msg);
            exit(1);
        }
        double c = now_ms();
        rd_png_buf png = {0};
        if (rd_result_render(&res, RD_HEAT_OVERLAY, &im, &png, &err) != RD_OK) {
            fprintf(stderr, "bench_camera: %s\n", err.msg);
            exit(1);
        }
        rd_png_buf_release(&png);
        double e = now_ms();
        if (it >= 0) {
            t[T_DECODE][it] = b - a;
            t[T_PREP][it] = res.t.preprocess;
            t[T_BACKBONE][it] = res.t.backbone;
            t[T_NN][it] = res.t.nn;
            t[T_SCORE][it] = res.t.score;
            t[T_INSPECT][it] = c - b;
            t[T_HEAT][it] = e - c;
            t[T_TOTAL][it] = e - a;
        }
        dw = im.w, dh = im.h, denom = im.scale_denom;
        rd_image_full_size(&im, &fw, &fh);
        *score = res.score;
        rd_result_release(&res);
        rd_image_release(&im);
    }
    double md[T_N];
    for (int s = 0; s < T_N; s++) md[s] = median(t[s], iters);
    printf("{\"mode\":\"%s\",\"frame\":\"%dx%d\",\"decoded\":\"%dx%d\",\"scale\":\"1/%d\",\"decode\":%.2f,"
           "\"preprocess\":%.2f,\"backbone\":%.2f,\"nn\":%.2f,\"score\":%.2f,\"inspect\":%.2f,\"heatmap\":%.2f,"
           "\"total\":%.2f,"
           "\"decode_share\":%.3f,\"image_score\":%.4f}\n",
           min_short ? "scaled" : "full", fw, fh, dw, dh, denom, md[T_DECODE], md[T_PREP], md[T_BACKBONE], md[T_NN],
           md[T_SCORE], md[T_INSPECT], md[T_HEAT], md[T_TOTAL], md[T_DECODE] / md[T_TOTAL], *score);
    for (int s = 0; s < T_N; s++) free(t[s]);
    return md[T_TOTAL];
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
    if (argc < 7) {
        fprintf(stderr, "usage: bench_camera [-m MODEL] BACKBONE THREADS ITERS IMAGE REF1 REF2 ...\n");
        return 2;
    }
    o.backbone_path = argv[1];
    o.threads = atoi(argv[2]);
    int iters = atoi(argv[3]);
    const char *image = argv[4];
    int k = argc - 5;
    if (iters < 1 || k < 2 || k > 16) return 2;
    rd_model *m = rd_model_load(&o, &err);
    rd_worker *w = m ? rd_worker_new(m, &err) : NULL;
    if (!w) {
        fprintf(stderr, "bench_camera: %s\n", err.msg);
        return 1;
    }
    const int S = rd_model_get_info(m)->size;
    rd_feats *f[16];
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_decode_opts dopt = {S, RD_ALPHA_COMPOSITE, 0};
    for (int i = 0; i < k; i++) {
        rd_image im;
        if (rd_image_load_opts(argv[5 + i], &lim, &dopt, &im, &err) || rd_extract(m, w, &im, &f[i], NULL, &err)) {
            fprintf(stderr, "bench_camera: %s\n", err.msg);
            return 1;
        }
        rd_image_release(&im);
    }
    rd_refset *rs = rd_refset_build(m, w, f, k, &err);
    size_t len;
    unsigned char *bytes = rd_read_file(image, &len);
    if (!rs || !bytes) {
        fprintf(stderr, "bench_camera: %s\n", rs ? image : err.msg);
        return 1;
    }
    float s_full = 0, s_scaled = 0;
    double full = run_mode(m, w, rs, bytes, len, 0, iters, &s_full);
    double scaled = run_mode(m, w, rs, bytes, len, S, iters, &s_scaled);
    printf("{\"S\":%d,\"threads\":%d,\"scorer\":\"%s\",\"full_over_scaled\":%.2f,\"score_full\":%.4f,"
           "\"score_scaled\":%.4f,\"blas\":\"%s\"}\n",
           S, o.threads, rd_model_get_info(m)->scorer, full / scaled, s_full, s_scaled, rd_blas_describe());
    free(bytes);
    for (int i = 0; i < k; i++) rd_feats_free(f[i]);
    rd_refset_unref(rs);
    rd_worker_free(w);
    rd_model_free(m);
    return 0;
}
