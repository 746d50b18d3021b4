/* labels.h — a line that learns from its operators: labels on inspections
 * (good | defect), confirmed goods joining the class's reference pool, and the
 * class's threshold policy calibrated from the labels (core/threshold.h).
 *
 * Every change is recorded in the store with its actor and time
 * (sql/009_labels.sql) and is reversible: a label can be changed or removed,
 * and a reference that came from a label leaves the pool again when the label
 * is removed, changed to defect, or on request — the pool is rebuilt from the
 * references that remain, so its calibration is what it was before.  A
 * defect-labelled image never joins.  Inspections keep the score they were
 * given; a pool change affects only later ones. */
#ifndef RD_LABELS_H
#define RD_LABELS_H

#include "engine.h"
#include "threshold.h"

/* What a label call did beside writing the label. */
typedef struct rd_label_outcome {
    int changed;      /* 0: it already had this label */
    int joined, left; /* the pool changed: the image joined / its reference left */
    char note[200];   /* why a wanted join did not happen ("" = none wanted or done) */
} rd_label_outcome;

/* join: 1 join the pool (only with good), 0 do not, -1 the class's learn_from_labels.
 * Errors: RD_E_NOTFOUND (no inspection), RD_E_CONFLICT (it has no score yet: queued or failed),
 * RD_E_BADREQ (label not good|defect). */
rd_ecode rd_labels_set(rd_engine *e, int64_t insp, const char *label, int join, const char *actor,
                       rd_label_row *out, rd_label_outcome *oc, rd_err *err);
/* Removes the label (and its reference from the pool). RD_E_NOTFOUND: no label. */
rd_ecode rd_labels_delete(rd_engine *e, int64_t insp, const char *actor, rd_label_outcome *oc, rd_err *err);
/* The inspection's image joins (join = 1) or leaves (0) its class's pool.  Joining
 * needs a good label and the kept image; RD_E_CONFLICT otherwise, RD_E_LIMIT at max_references. */
rd_ecode rd_labels_pool(rd_engine *e, int64_t insp, int join, const char *actor, rd_label_row *out,
                        rd_label_outcome *oc, rd_err *err);
rd_ecode rd_labels_get(rd_engine *e, int64_t insp, rd_label_row *out, rd_err *err);
rd_ecode rd_labels_events(rd_engine *e, const char *cls, int64_t insp, rd_label_event **rows, int *n, rd_err *err);

/* A class's threshold policy as it applies now. */
typedef struct rd_labels_policy {
    char policy[32];   /* as set: loo | fpr:RATE | f1 */
    int learn_from_labels;
    int manual;        /* a manual threshold overrides every policy */
    int ready;         /* the class has a pool (loo_threshold valid) */
    double loo_threshold;
    rd_tpolicy_result res; /* threshold, applied, labels and pool scores used, expected recall / false rejects,
                              reason */
} rd_labels_policy;
rd_ecode rd_labels_policy_get(rd_engine *e, const char *cls, rd_labels_policy *out, rd_err *err);
/* Recomputes and stores the class's fpr / f1 threshold after its reference
 * pool changed other than through a label (they use the pool's scores); a loo
 * class is left as it is. */
rd_ecode rd_labels_recalibrate(rd_engine *e, const char *cls, rd_err *err);
/* policy NULL / learn < 0: unchanged.  RD_E_BADREQ: an unknown policy. */
rd_ecode rd_labels_policy_set(rd_engine *e, const char *cls, const char *policy, int learn, const char *actor,
                              rd_labels_policy *out, rd_err *err);

#endif
