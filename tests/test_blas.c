/* test_blas.c — the OpenBLAS kernel set chosen after rd_blas_autofix is the
 * one CPUID supports, and its sgemm agrees with a naive triple loop. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"
#include "testutil.h"

int main(int argc, char **argv)
{
    enum { M = 67, N = 131, K = 259 };
    rd_blas_autofix(argc, argv);
    const char *best = rd_blas_best_core();
    fprintf(stderr, "%s; CPU best: %s\n", rd_blas_describe(), best ? best : "unknown");
    if (best && !getenv("OPENBLAS_CORETYPE") && !getenv("RD_BLAS_NO_AUTOFIX"))
        RD_CHECK(strcasecmp(rd_blas_corename(), "Prescott") != 0, "still on Prescott kernels on a %s CPU", best);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
    rd_fill_uniform(a, M * K, 1, -1, 1);
    rd_fill_uniform(b, K * N, 2, -1, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            r[i * N + j] = (float)s;
        }
    double e = rd_rel_err(c, r, M * N);
    RD_CHECK(e < 1e-5, "sgemm vs naive rel err %g", e);
    free(a);
    free(b);
    free(c);
    free(r);
    return rd_test_done("blas");
}
