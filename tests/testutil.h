/* testutil.h — tiny helpers shared by the C unit tests.
 *
 * Tests are plain programs run by automake's harness: exit 0 = pass,
 * 1 = fail, 77 = skip.  RD_CHECK records a failure with file:line and keeps
 * going so one run reports every broken case; rd_test_done() turns the count
 * into the exit status. */
#ifndef RD_TESTUTIL_H
#define RD_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>

extern int rd_test_failures;

#define RD_CHECK(cond, ...)                                                      \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            rd_test_failures++;                                                  \
        }                                                                        \
    } while (0)

/* Prints "ok"/"FAIL" summary and returns the process exit status. */
int rd_test_done(const char *name);

/* max|a−b| / max(max|b|, tiny): the normalized error used for kernel parity. */
double rd_rel_err(const float *a, const float *b, size_t n);
double rd_max_abs_diff(const float *a, const float *b, size_t n);

/* Deterministic uniform floats in [lo, hi) (xorshift, seeded). */
void rd_fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi);

/* scipy's "reflect" index (half-sample symmetric) for any i, the naive way. */
int rd_test_reflect(int i, int n);
/* Gaussian blur of in (h×w) as a direct 2-D convolution in double with the
 * outer product of the normalised 1-D taps (radius floor(4σ + 0.5)), reflect
 * borders: the reference for the separable blurs. */
void rd_test_blur_naive(const float *in, int h, int w, double sigma, double *out);

/* Reads a whole file (malloc'ed, caller frees); NULL on error. */
unsigned char *rd_read_file(const char *path, size_t *len);

/* Makes a fresh temp dir under $TMPDIR (or /tmp); returns a static path. */
const char *rd_test_tmpdir(const char *tag);

#endif
