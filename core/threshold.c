/* threshold.c — threshold policies (loo, fpr:RATE, f1) from labelled scores; see threshold.h. */
#include "threshold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"loo", "fpr", "f1"};

rd_status rd_tpolicy_parse(const char *s, rd_tpolicy *p, rd_err *err)
{
    if (s && !strcmp(s, "loo")) {
        *p = (rd_tpolicy){RD_TP_LOO, 0};
        return RD_OK;
    }
    if (s && !strcmp(s, "f1")) {
        *p = (rd_tpolicy){RD_TP_F1, 0};
        return RD_OK;
    }
    if (s && !strncmp(s, "fpr:", 4) && s[4]) {
        char *end;
        double r = strtod(s + 4, &end);
        if (!*end && r > 0 && r < 0.5) {
            *p = (rd_tpolicy){RD_TP_FPR, r};
            return RD_OK;
        }
    }
    return rd_err_set(err, RD_ERR_ARG, "threshold_policy is loo, f1 or fpr:RATE with 0 < RATE < 0.5 (e.g. fpr:0.01)");
}

void rd_tpolicy_format(const rd_tpolicy *p, char *buf, size_t n)
{
    if (p->kind == RD_TP_FPR) snprintf(buf, n, "fpr:%g", p->rate);
    else snprintf(buf, n, "%s", kind_names[p->kind]);
}

double rd_norm_quantile(double q)
{
    /* P. J. Acklam's rational approximation */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (q <= 0) return -INFINITY;
    if (q >= 1) return INFINITY;
    if (q < 0.02425) {
        double t = sqrt(-2 * log(q));
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) /
               ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
    }
    if (q > 1 - 0.02425) return -rd_norm_quantile(1 - q);
    double u = q - 0.5, r = u * u;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * u /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

double rd_t_quantile(double q, double df)
{
    if (df <= 1) return tan(3.14159265358979323846 * (q - 0.5));
    if (df <= 2) return (2 * q - 1) / sqrt(2 * q * (1 - q));
    const double z = rd_norm_quantile(q), z2 = z * z, z3 = z2 * z, z5 = z3 * z2, z7 = z5 * z2, z9 = z7 * z2;
    return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df * df) +
           (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df * df * df) +
           (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * df * df * df * df);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the finite values of v[0, n) and w[0, nw), sorted ascending into out; returns their count */
static int finite_sorted(const double *v, int n, const double *w, int nw, double *out)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) out[m++] = v[i];
    for (int i = 0; i < nw; i++)
        if (isfinite(w[i])) out[m++] = w[i];
    qsort(out, (size_t)m, sizeof *out, cmp_double);
    return m;
}

/* share of sorted values >= t */
static double share_at_or_above(const double *s, int n, double t)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += s[i] >= t;
    return n ? (double)c / n : NAN;
}

/* the normal prediction bound at 1 − rate (log scores when all are positive) */
static double fpr_threshold(const double *g, int n, double rate)
{
    int logs = g[0] > 0;
    double mu = 0, ss = 0;
    for (int i = 0; i < n; i++) mu += logs ? log(g[i]) : g[i];
    mu /= n;
    for (int i = 0; i < n; i++) {
        double x = (logs ? log(g[i]) : g[i]) - mu;
        ss += x * x;
    }
    double sd = sqrt(ss / (n - 1));
    double b = mu + rd_t_quantile(1 - rate, n - 1) * sd * sqrt(1 + 1.0 / n);
    double t = logs ? exp(b) : b;
    if (n * rate < 1 && t < g[n - 1]) t = g[n - 1];
    return t;
}

/* the F1-maximising cut (defect = positive) over both sorted lists */
static double f1_threshold(const double *g, int ng, const double *d, int nd)
{
    double best_f1 = -1, best_t = d[0];
    /* candidate cuts: each defect score (>= keeps it), taken midway down to the next lower score */
    for (int i = 0; i < nd; i++) {
        double t = d[i];
        int tp = 0, fp = 0;
        for (int j = 0; j < nd; j++) tp += d[j] >= t;
        for (int j = 0; j < ng; j++) fp += g[j] >= t;
        double f1 = 2.0 * tp / (2.0 * tp + fp + (nd - tp));
        if (f1 > best_f1) {
            /* the highest score below t among both lists, for a cut with margin */
            double lo = -INFINITY;
            for (int j = 0; j < nd; j++)
                if (d[j] < t && d[j] > lo) lo = d[j];
            for (int j = 0; j < ng; j++)
                if (g[j] < t && g[j] > lo) lo = g[j];
            best_f1 = f1;
            best_t = isfinite(lo) ? 0.5 * (lo + t) : t;
        }
    }
    return best_t;
}

/* The goods are goods[0, ng) followed by more[0, nmore): one sorted buffer
 * for both, so rd_tpolicy_apply_pool needs no union of its own. */
static void apply(const rd_tpolicy *p, double loo_threshold, const double *goods, int ng, const double *more,
                  int nmore, const double *defects, int nd, rd_tpolicy_result *out)
{
    ng = ng > 0 ? ng : 0, nmore = nmore > 0 ? nmore : 0, nd = nd > 0 ? nd : 0;
    double *g = malloc(((size_t)ng + (size_t)nmore + (size_t)nd + 1) * sizeof *g);
    memset(out, 0, sizeof *out);
    out->threshold = loo_threshold;
    out->applied = RD_TP_LOO;
    if (!g) {
        snprintf(out->reason, sizeof out->reason, "out of memory");
        out->expected_recall = out->expected_frr = NAN;
        return;
    }
    ng = finite_sorted(goods, ng, more, nmore, g);
    double *d = g + ng;
    nd = finite_sorted(defects, nd, NULL, 0, d);
    out->goods_used = ng, out->defects_used = nd;
    if (p->kind != RD_TP_LOO && ng < RD_TP_MIN_GOODS) {
        snprintf(out->reason, sizeof out->reason, "%d good label%s, %s needs at least %d", ng, ng == 1 ? "" : "s",
                 kind_names[p->kind], RD_TP_MIN_GOODS);
    } else if (p->kind == RD_TP_F1 && nd < RD_TP_MIN_DEFECTS) {
        snprintf(out->reason, sizeof out->reason, "%d defect label%s, f1 needs at least %d", nd, nd == 1 ? "" : "s",
                 RD_TP_MIN_DEFECTS);
    } else if (p->kind == RD_TP_FPR) {
        out->threshold = fpr_threshold(g, ng, p->rate);
        out->applied = RD_TP_FPR;
    } else if (p->kind == RD_TP_F1) {
        out->threshold = f1_threshold(g, ng, d, nd);
        out->applied = RD_TP_F1;
    }
    out->expected_recall = share_at_or_above(d, nd, out->threshold);
    out->expected_frr = out->applied == RD_TP_FPR ? p->rate : share_at_or_above(g, ng, out->threshold);
    free(g);
}

void rd_tpolicy_apply(const rd_tpolicy *p, double loo_threshold, const double *goods, int ng, const double *defects,
                      int nd, rd_tpolicy_result *out)
{
    apply(p, loo_threshold, goods, ng, NULL, 0, defects, nd, out);
}

void rd_tpolicy_apply_pool(const rd_tpolicy *p, double loo_threshold, const double *goods, int ng, int ng_pool,
                           const double *pool_loo, int nloo, const double *defects, int nd, rd_tpolicy_result *out)
{
    if (p->kind != RD_TP_LOO && ng >= RD_TP_MIN_GOODS && nloo > 0) {
        const int nout = ng - (ng_pool < ng ? ng_pool : ng); /* goods outside the pool: goods[0, nout) */
        apply(p, loo_threshold, goods, nout, pool_loo, nloo, defects, nd, out);
        out->goods_used = ng; /* labels, not scores */
        out->pool_scores_used = nloo;
        return;
    }
    /* too few labels (it falls back to loo and says so) or no pool scores: the recorded scores */
    apply(p, loo_threshold, goods, ng, NULL, 0, defects, nd, out);
}
