/* test_threshold.c — core/threshold.c: the quantile functions against reference
 * values (scipy.stats.norm.ppf / t.ppf, 10 digits), policy parsing, the
 * fall-backs and their reasons, f1 on separable and overlapping labels against a
 * naive search over every cut, and fpr:RATE on fresh scores from the labels'
 * distribution, 4 to 200 labels: log-normal (the bound's model) within 1 point
 * of the rate and near it with many labels; normal (mis-specified) never above
 * rate + 1 point, conservative; the pool-scale composition (rd_tpolicy_apply_pool)
 * against rd_tpolicy_apply on the union it stands for. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "testutil.h"
#include "threshold.h"

static void quantiles(void)
{
    static const struct { double q, df, t; } T[] = {
        {0.99, 3, 4.5407028587}, {0.99, 11, 2.7180791835}, {0.95, 4, 2.1318467813}, {0.999, 7, 4.7852896286},
        {0.99, 1, 31.8205159538}, {0.99, 2, 6.9645567188}, {0.99, 199, 2.3452322311}};
    RD_CHECK(fabs(rd_norm_quantile(0.975) - 1.9599639845) < 1e-8, "norm 0.975");
    RD_CHECK(fabs(rd_norm_quantile(0.99) - 2.3263478740) < 1e-8, "norm 0.99");
    RD_CHECK(fabs(rd_norm_quantile(0.001) + 3.0902323062) < 1e-8, "norm 0.001");
    RD_CHECK(fabs(rd_norm_quantile(0.5)) < 1e-12, "norm 0.5");
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        double got = rd_t_quantile(T[i].q, T[i].df);
        /* Cornish-Fisher: relative error under 0.6% from 3 degrees of freedom on */
        RD_CHECK(fabs(got - T[i].t) / T[i].t < (T[i].df <= 2 ? 1e-7 : 6e-3), "t(%g, %g) = %.6f, want %.6f", T[i].q,
                 T[i].df, got, T[i].t);
    }
}

static void parsing(void)
{
    rd_tpolicy p;
    char buf[32];
    RD_CHECK(rd_tpolicy_parse("loo", &p, NULL) == RD_OK && p.kind == RD_TP_LOO, "loo");
    RD_CHECK(rd_tpolicy_parse("f1", &p, NULL) == RD_OK && p.kind == RD_TP_F1, "f1");
    RD_CHECK(rd_tpolicy_parse("fpr:0.01", &p, NULL) == RD_OK && p.kind == RD_TP_FPR && p.rate == 0.01, "fpr");
    rd_tpolicy_format(&p, buf, sizeof buf);
    RD_CHECK(!strcmp(buf, "fpr:0.01"), "format %s", buf);
    const char *bad[] = {"", "fpr", "fpr:", "fpr:0", "fpr:0.5", "fpr:-1", "fpr:0.01x", "F1", "loo ", NULL};
    for (int i = 0; bad[i]; i++) RD_CHECK(rd_tpolicy_parse(bad[i], &p, NULL) == RD_ERR_ARG, "'%s' refused", bad[i]);
    RD_CHECK(rd_tpolicy_parse(NULL, &p, NULL) == RD_ERR_ARG, "NULL refused");
}

static void fallbacks(void)
{
    rd_tpolicy_result r;
    const double g[] = {1, 2, 3}, d[] = {5};
    rd_tpolicy_apply(&(rd_tpolicy){RD_TP_FPR, 0.01}, 7.5, g, 3, NULL, 0, &r);
    RD_CHECK(r.applied == RD_TP_LOO && r.threshold == 7.5 && strstr(r.reason, "3 good labels"), "fpr with 3: %s",
             r.reason);
    const double g4[] = {1, 2, 3, NAN, 4};
    rd_tpolicy_apply(&(rd_tpolicy){RD_TP_F1, 0}, 7.5, g4, 5, d, 1, &r);
    RD_CHECK(r.applied == RD_TP_LOO && strstr(r.reason, "1 defect label") && r.goods_used == 4,
             "f1 with 1 defect: %s (goods %d, NaN skipped)", r.reason, r.goods_used);
    RD_CHECK(r.expected_recall == 0 && r.expected_frr == 0, "loo's expected figures from the labels");
    rd_tpolicy_apply(&(rd_tpolicy){RD_TP_LOO, 0}, 2.5, g, 3, NULL, 0, &r);
    RD_CHECK(r.applied == RD_TP_LOO && !r.reason[0] && isnan(r.expected_recall) && fabs(r.expected_frr - 1.0 / 3) < 1e-12,
             "loo reports the labelled goods' false-reject share");
}

/* naive: best F1 over every cut at a labelled score */
static double naive_f1(const double *g, int ng, const double *d, int nd, double t)
{
    int tp = 0, fp = 0;
    for (int i = 0; i < nd; i++) tp += d[i] >= t;
    for (int i = 0; i < ng; i++) fp += g[i] >= t;
    return 2.0 * tp / (2.0 * tp + fp + (nd - tp));
}

static void f1(void)
{
    rd_tpolicy_result r;
    const double g[] = {1, 1.5, 2, 2.2}, d[] = {3, 4, 5};
    rd_tpolicy_apply(&(rd_tpolicy){RD_TP_F1, 0}, 9, g, 4, d, 3, &r);
    RD_CHECK(r.applied == RD_TP_F1 && r.threshold > 2.2 && r.threshold < 3 && r.expected_recall == 1 &&
                 r.expected_frr == 0,
             "separable: %g recall %g frr %g", r.threshold, r.expected_recall, r.expected_frr);
    rd_rng rng;
    rd_rng_seed(&rng, 7);
    for (int trial = 0; trial < 50; trial++) {
        double G[30], D[12], best = 0;
        for (int i = 0; i < 30; i++) G[i] = rd_rng_normal(&rng);
        for (int i = 0; i < 12; i++) D[i] = 1.2 + rd_rng_normal(&rng);
        for (int i = 0; i < 12; i++) best = fmax(best, naive_f1(G, 30, D, 12, D[i]));
        rd_tpolicy_apply(&(rd_tpolicy){RD_TP_F1, 0}, 9, G, 30, D, 12, &r);
        RD_CHECK(fabs(naive_f1(G, 30, D, 12, r.threshold) - best) < 1e-12, "trial %d: F1 %g at %g, best %g", trial,
                 naive_f1(G, 30, D, 12, r.threshold), r.threshold, best);
    }
}

/* fpr:RATE on labelled goods, checked on fresh goods from the same distribution */
static void fpr(void)
{
    static const int ns[] = {4, 8, 12, 30, 200};
    rd_rng rng;
    rd_rng_seed(&rng, 11);
    for (int lognormal = 0; lognormal < 2; lognormal++)
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            const int n = ns[k];
            double frr = 0, g[200];
            const int trials = 400, fresh = 500;
            for (int t = 0; t < trials; t++) {
                rd_tpolicy_result r;
                for (int i = 0; i < n; i++) g[i] = lognormal ? exp(0.3 * rd_rng_normal(&rng)) : 5 + rd_rng_normal(&rng);
                rd_tpolicy_apply(&(rd_tpolicy){RD_TP_FPR, 0.01}, 99, g, n, NULL, 0, &r);
                RD_CHECK(r.applied == RD_TP_FPR && r.expected_frr == 0.01, "fpr applies with %d", n);
                int over = 0;
                for (int i = 0; i < fresh; i++) {
                    double x = lognormal ? exp(0.3 * rd_rng_normal(&rng)) : 5 + rd_rng_normal(&rng);
                    over += x >= r.threshold;
                }
                frr += (double)over / fresh / trials;
            }
            printf("fpr:0.01 with %3d %s labels: false-reject rate on fresh goods %.4f\n", n,
                   lognormal ? "log-normal" : "normal", frr);
            RD_CHECK(frr <= 0.02, "%d labels: false-reject rate %.4f over 2%%", n, frr);
            if (lognormal && n >= 200) RD_CHECK(frr >= 0.004, "%d labels: false-reject rate %.4f far below 1%%", n, frr);
        }
}

/* rd_tpolicy_apply_pool: the goods outside the pool plus the pool's leave-one-out
 * scores, the same as rd_tpolicy_apply on that union; the label count decides
 * the minimum; without pool scores or with too few labels, the recorded ones. */
static void pool_scale(void)
{
    rd_tpolicy_result a, b;
    const rd_tpolicy f = {RD_TP_FPR, 0.05};
    /* six good labels, the last four pool members (their recorded scores 9: another scale) */
    const double rec[] = {1.0, 1.4, 9, 9, 9, 9}, loo[] = {1.1, 1.2, 1.3, 0.9, 1.25}, uni[] = {1.0, 1.4, 1.1, 1.2, 1.3,
                                                                                          0.9, 1.25};
    rd_tpolicy_apply_pool(&f, 7.5, rec, 6, 4, loo, 5, NULL, 0, &a);
    rd_tpolicy_apply(&f, 7.5, uni, 7, NULL, 0, &b);
    RD_CHECK(a.applied == RD_TP_FPR && a.threshold == b.threshold && a.threshold < 9, "pool scale: %g vs %g",
             a.threshold, b.threshold);
    RD_CHECK(a.goods_used == 6 && a.pool_scores_used == 5, "goods_used counts labels: %d, pool scores %d",
             a.goods_used, a.pool_scores_used);
    rd_tpolicy_apply_pool(&f, 7.5, rec, 6, 4, loo, 0, NULL, 0, &a);
    rd_tpolicy_apply(&f, 7.5, rec, 6, NULL, 0, &b);
    RD_CHECK(a.applied == RD_TP_FPR && a.threshold == b.threshold && a.threshold >= 9 && !a.pool_scores_used,
             "no pool scores: recorded");
    rd_tpolicy_apply_pool(&f, 7.5, rec, 3, 3, loo, 5, NULL, 0, &a); /* three labels: too few, even with 5 pool scores */
    RD_CHECK(a.applied == RD_TP_LOO && a.threshold == 7.5 && strstr(a.reason, "3 good labels"), "3 labels: %s",
             a.reason);
    rd_tpolicy_apply_pool(&(rd_tpolicy){RD_TP_LOO, 0}, 2.5, rec, 6, 4, loo, 5, NULL, 0, &a);
    RD_CHECK(a.applied == RD_TP_LOO && a.threshold == 2.5 && fabs(a.expected_frr - 4.0 / 6) < 1e-12,
             "loo: the recorded scores report, the pool's are not used");
}

int main(void)
{
    quantiles();
    parsing();
    fallbacks();
    f1();
    fpr();
    pool_scale();
    return rd_test_done("test_threshold");
}
