/* args.c — numeric command-line values, checked whole (see args.h). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int rd_arg_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int rd_arg_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int rd_arg_float(const char *s, double lo, double hi, float *out)
{
    double v;
    if (rd_arg_double(s, lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}
