/* threshold.h — a class's decision-threshold policy from its operators' labels.
 *
 * Pure computation shared by the daemon (engine/labels.c) and `resad eval
 * --simulate-line` (cli/simline.c).  A policy is one of
 *   loo        the reference set's leave-one-out threshold (rd_refset_threshold)
 *   fpr:RATE   the score a good part exceeds with probability RATE, estimated
 *              from good scores (on the pool's present scale:
 *              rd_tpolicy_apply_pool): a normal
 *              prediction bound on log scores (Student t with n−1 degrees of
 *              freedom, so a few labels give a conservative threshold), never
 *              below the largest labelled-good score when n·RATE < 1
 *   f1         the threshold that maximises F1 (defect = positive) over the
 *              labelled goods and defects (midway between adjacent scores)
 * With too few labels (fewer than RD_TP_MIN_GOODS goods, or for f1 fewer than
 * RD_TP_MIN_DEFECTS defects) the result falls back to loo and says why. */
#ifndef RD_THRESHOLD_H
#define RD_THRESHOLD_H

#include <stddef.h>

#include "status.h"

#define RD_TP_MIN_GOODS 4
#define RD_TP_MIN_DEFECTS 2

typedef enum rd_tp_kind { RD_TP_LOO, RD_TP_FPR, RD_TP_F1 } rd_tp_kind;

typedef struct rd_tpolicy {
    rd_tp_kind kind;
    double rate; /* fpr only: 0 < rate < 0.5 */
} rd_tpolicy;

/* "loo", "fpr:0.01" (rate in (0, 0.5)), "f1".  Errors: RD_ERR_ARG naming the forms. */
rd_status rd_tpolicy_parse(const char *s, rd_tpolicy *p, rd_err *err) RD_WARN_UNUSED;
/* The canonical text ("fpr:0.01"); buf of n ≥ 32 bytes. */
void rd_tpolicy_format(const rd_tpolicy *p, char *buf, size_t n);

typedef struct rd_tpolicy_result {
    double threshold;
    rd_tp_kind applied;     /* the policy used: loo after a fall-back */
    int goods_used, defects_used;
    int pool_scores_used;   /* rd_tpolicy_apply_pool: the pool's leave-one-out scores among the goods; else 0 */
    double expected_recall; /* share of labelled defects at or above threshold; NaN without defects */
    double expected_frr;    /* fpr: the rate; else share of labelled goods at or above; NaN without goods */
    char reason[160];       /* why it fell back to loo; "" when it did not */
} rd_tpolicy_result;

/* loo_threshold: the reference set's.  goods/defects: scores of good and
 * defective parts on the pool's present scale (non-finite ones are skipped). */
void rd_tpolicy_apply(const rd_tpolicy *p, double loo_threshold, const double *goods, int ng, const double *defects,
                      int nd, rd_tpolicy_result *out);

/* The policy on the pool's present scale, as the daemon (engine/labels.c) and
 * `resad eval --simulate-line` (cli/simline.c) both compute it.  A recorded
 * score is on the scale of the pool it was scored against, and a growing pool
 * shifts that scale (its leave-one-out statistics shrink), so fpr and f1 take
 * as goods the labelled ones outside the pool (their recorded scores) and the
 * pool's leave-one-out scores as it is now (pool_loo, nloo), which stand for
 * every good that joined it.  goods: the recorded scores of all ng good
 * labels, the ng_pool that are pool members last.  "At least RD_TP_MIN_GOODS
 * good labels" still counts labels (goods_used = ng; pool_scores_used = nloo).
 * Without pool scores (nloo 0), or with too few labels, it is
 * rd_tpolicy_apply on the recorded scores (pool_scores_used 0). */
void rd_tpolicy_apply_pool(const rd_tpolicy *p, double loo_threshold, const double *goods, int ng, int ng_pool,
                           const double *pool_loo, int nloo, const double *defects, int nd, rd_tpolicy_result *out);

/* Standard normal quantile (|error| < 1.2e-9, Acklam) and Student t quantile
 * (Cornish–Fisher expansion in 1/df, 4 terms); 0 < q < 1, df ≥ 1. */
double rd_norm_quantile(double q);
double rd_t_quantile(double q, double df);

#endif
