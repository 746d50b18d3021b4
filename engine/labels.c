/* labels.c — operators' labels, confirmed goods joining the pool, threshold policies; see labels.h.
 *
 * Built on the engine's public calls (inspections, registration, reference
 * deletion) and the store's label queries: a join registers the inspection's
 * kept image as a reference like any upload (same checks, same max_references),
 * a leave deletes that reference (the pool is rebuilt from the rest).  One
 * mutex per process serializes label changes so that a label and its
 * reference id never disagree. */
#include "labels.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static pthread_mutex_t labels_mu = PTHREAD_MUTEX_INITIALIZER;

/* the inspection's class and recorded score; RD_E_CONFLICT while it has none */
static rd_ecode insp_scored(rd_engine *e, int64_t insp, char cls[RD_STORE_NAME_MAX + 8], double *score, rd_err *err)
{
    rd_insp_row *row = malloc(sizeof *row);
    if (!row) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    rd_ecode rc = rd_engine_insp_get(e, insp, row, err);
    if (rc == RD_E_OK && (strcmp(row->status, "done") || !(row->present & (1u << RD_INSP_SCORE)))) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld is %s: only a scored inspection can be labelled",
                   (long long)insp, row->status);
        rc = RD_E_CONFLICT;
    }
    if (rc == RD_E_OK) {
        snprintf(cls, RD_STORE_NAME_MAX + 8, "%s", row->cls);
        *score = row->score;
    }
    free(row);
    return rc;
}

/* recomputes the class's policy threshold from its labels and stores it (NULL while loo applies) */
static rd_ecode recalibrate(rd_engine *e, const char *cls, rd_labels_policy *out, rd_err *err)
{
    rd_labels_policy p;
    rd_ecode rc = rd_labels_policy_get(e, cls, &p, err);
    if (rc != RD_E_OK) return rc;
    double t = p.res.applied == RD_TP_LOO ? NAN : p.res.threshold;
    rc = rd_store_class_policy_set(rd_engine_store(e), cls, NULL, -1, t, NULL, err);
    if (rc == RD_E_OK && out) *out = p;
    return rc;
}

rd_ecode rd_labels_recalibrate(rd_engine *e, const char *cls, rd_err *err)
{
    char policy[32];
    int learn;
    double pt;
    rd_ecode rc = rd_store_class_policy_get(rd_engine_store(e), cls, policy, &learn, &pt, err);
    if (rc != RD_E_OK || !strcmp(policy, "loo")) return rc; /* loo stores no threshold of its own */
    pthread_mutex_lock(&labels_mu);
    rc = recalibrate(e, cls, NULL, err);
    pthread_mutex_unlock(&labels_mu);
    return rc;
}

/* the kept image of insp joins cls's pool (under labels_mu) */
static rd_ecode join_locked(rd_engine *e, const rd_label_row *lr, const char *actor, rd_label_outcome *oc,
                            rd_err *err)
{
    uint8_t *img = NULL;
    size_t len = 0;
    rd_engine_reg *reg = NULL;
    rd_ecode rc = rd_engine_insp_image(e, lr->inspection_id, &img, &len, err);
    if (rc == RD_E_NOTFOUND) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld: its image was not kept (keep_images), so it cannot join",
                   (long long)lr->inspection_id);
        return RD_E_CONFLICT;
    }
    if (rc != RD_E_OK) return rc;
    rd_upload u = {img, len, rd_image_sniff(img, len) == RD_IMG_PNG ? "image/png" : "image/jpeg"};
    if (!(reg = malloc(sizeof *reg))) {
        rc = RD_E_INTERNAL;
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    } else if ((rc = rd_engine_register(e, lr->cls, &u, 1, reg, err)) == RD_E_OK) {
        if (reg->items[0].duplicate) { /* the same bytes are a reference already: not ours to remove later */
            snprintf(oc->note, sizeof oc->note, "the image is already reference %lld of class '%s'",
                     (long long)reg->items[0].id, lr->cls);
        } else {
            rc = rd_store_label_set_ref(rd_engine_store(e), lr->inspection_id, reg->items[0].id, actor, err);
            if (rc != RD_E_OK) { /* keep the pool and the labels consistent */
                int left;
                rd_err e2 = {0};
                if (rd_engine_ref_delete(e, lr->cls, reg->items[0].id, &left, &e2) != RD_E_OK)
                    rd_err_set(err, err->code, "%s; and the new reference %lld could not be removed: %s", err->msg,
                               (long long)reg->items[0].id, e2.msg);
            } else {
                oc->joined = 1;
            }
        }
    }
    free(reg);
    free(img);
    return rc;
}

/* the reference that came from lr leaves the pool (under labels_mu) */
static rd_ecode leave_locked(rd_engine *e, const rd_label_row *lr, const char *actor, rd_label_outcome *oc,
                             rd_err *err)
{
    int left;
    rd_ecode rc = rd_engine_ref_delete(e, lr->cls, lr->reference_id, &left, err);
    if (rc != RD_E_OK && rc != RD_E_NOTFOUND) return rc; /* NOTFOUND: deleted by hand already */
    rc = rd_store_label_set_ref(rd_engine_store(e), lr->inspection_id, 0, actor, err);
    if (rc == RD_E_OK) oc->left = 1;
    return rc;
}

rd_ecode rd_labels_set(rd_engine *e, int64_t insp, const char *label, int join, const char *actor,
                       rd_label_row *out, rd_label_outcome *oc, rd_err *err)
{
    char cls[RD_STORE_NAME_MAX + 8];
    double score;
    rd_label_row lr;
    rd_store *s = rd_engine_store(e);
    memset(oc, 0, sizeof *oc);
    if (!label || (strcmp(label, "good") && strcmp(label, "defect"))) {
        rd_err_set(err, RD_ERR_ARG, "label is \"good\" or \"defect\"");
        return RD_E_BADREQ;
    }
    rd_ecode rc = insp_scored(e, insp, cls, &score, err);
    if (rc != RD_E_OK) return rc;
    if (join < 0) {
        rd_labels_policy p;
        if ((rc = rd_labels_policy_get(e, cls, &p, err)) != RD_E_OK) return rc;
        join = p.learn_from_labels;
    }
    pthread_mutex_lock(&labels_mu);
    /* a good part that joined and is now called a defect leaves the pool first */
    if (!strcmp(label, "defect") && rd_store_label_get(s, insp, &lr, NULL) == RD_E_OK && lr.reference_id > 0 &&
        (rc = leave_locked(e, &lr, actor, oc, err)) != RD_E_OK)
        goto out;
    if ((rc = rd_store_label_set(s, insp, cls, label, score, actor, &oc->changed, err)) != RD_E_OK) goto out;
    if ((rc = rd_store_label_get(s, insp, &lr, err)) != RD_E_OK) goto out;
    if (join && !strcmp(label, "good") && lr.reference_id == 0) {
        rd_err je = {0};
        rd_ecode jc = join_locked(e, &lr, actor, oc, &je);
        if (jc != RD_E_OK) snprintf(oc->note, sizeof oc->note, "not added to the pool: %.170s", je.msg);
        if ((rc = rd_store_label_get(s, insp, &lr, err)) != RD_E_OK) goto out;
    }
    *out = lr;
    if (oc->changed) rc = recalibrate(e, cls, NULL, err);
out:
    pthread_mutex_unlock(&labels_mu);
    return rc;
}

rd_ecode rd_labels_delete(rd_engine *e, int64_t insp, const char *actor, rd_label_outcome *oc, rd_err *err)
{
    rd_label_row lr;
    rd_store *s = rd_engine_store(e);
    memset(oc, 0, sizeof *oc);
    pthread_mutex_lock(&labels_mu);
    rd_ecode rc = rd_store_label_get(s, insp, &lr, err);
    if (rc == RD_E_OK && lr.reference_id > 0) rc = leave_locked(e, &lr, actor, oc, err);
    if (rc == RD_E_OK) rc = rd_store_label_delete(s, insp, actor, err);
    if (rc == RD_E_OK) {
        oc->changed = 1;
        rc = recalibrate(e, lr.cls, NULL, err);
    }
    pthread_mutex_unlock(&labels_mu);
    return rc;
}

rd_ecode rd_labels_pool(rd_engine *e, int64_t insp, int join, const char *actor, rd_label_row *out,
                        rd_label_outcome *oc, rd_err *err)
{
    rd_label_row lr;
    rd_store *s = rd_engine_store(e);
    memset(oc, 0, sizeof *oc);
    pthread_mutex_lock(&labels_mu);
    rd_ecode rc = rd_store_label_get(s, insp, &lr, err);
    if (rc == RD_E_NOTFOUND && join) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld has no label: label it good first", (long long)insp);
        rc = RD_E_CONFLICT;
    } else if (rc == RD_E_OK && join && strcmp(lr.label, "good")) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld is labelled %s: a defect never joins the pool",
                   (long long)insp, lr.label);
        rc = RD_E_CONFLICT;
    } else if (rc == RD_E_OK && join && lr.reference_id == 0) {
        rc = join_locked(e, &lr, actor, oc, err);
        if (rc == RD_E_OK && !oc->joined) { /* a duplicate: nothing of ours joined */
            rd_err_set(err, RD_ERR_STATE, "%s", oc->note);
            rc = RD_E_CONFLICT;
        }
    } else if (rc == RD_E_OK && !join && lr.reference_id > 0) {
        rc = leave_locked(e, &lr, actor, oc, err);
    } else if (rc == RD_E_OK && !join) {
        rd_err_set(err, RD_ERR_ARG, "inspection %lld is not in the reference pool", (long long)insp);
        rc = RD_E_NOTFOUND;
    }
    if (rc == RD_E_OK) rc = rd_store_label_get(s, insp, out, err);
    pthread_mutex_unlock(&labels_mu);
    return rc;
}

rd_ecode rd_labels_get(rd_engine *e, int64_t insp, rd_label_row *out, rd_err *err)
{
    return rd_store_label_get(rd_engine_store(e), insp, out, err);
}

rd_ecode rd_labels_events(rd_engine *e, const char *cls, int64_t insp, rd_label_event **rows, int *n, rd_err *err)
{
    return rd_store_label_events(rd_engine_store(e), cls, insp, rows, n, err);
}

rd_ecode rd_labels_policy_get(rd_engine *e, const char *cls, rd_labels_policy *out, rd_err *err)
{
    rd_engine_class *c = malloc(sizeof *c);
    double *g = NULL, *d = NULL, pt;
    int ng = 0, ng_pool = 0, nd = 0;
    rd_tpolicy tp;
    memset(out, 0, sizeof *out);
    if (!c) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    rd_ecode rc = rd_engine_class_get(e, cls, c, err);
    if (rc == RD_E_OK)
        rc = rd_store_class_policy_get(rd_engine_store(e), cls, out->policy, &out->learn_from_labels, &pt, err);
    if (rc == RD_E_OK) rc = rd_store_label_scores(rd_engine_store(e), cls, &g, &ng, &ng_pool, &d, &nd, err);
    if (rc == RD_E_OK) {
        out->manual = c->row.threshold_manual;
        out->ready = c->ready;
        out->loo_threshold = c->ready ? c->threshold_auto : NAN;
        if (rd_tpolicy_parse(out->policy, &tp, NULL) != RD_OK) tp = (rd_tpolicy){RD_TP_LOO, 0};
        /* fpr and f1 on the pool's present scale (rd_tpolicy_apply_pool): the
         * pool's own leave-one-out scores stand for the goods that joined it */
        double loo[RD_CALIB_MAX_SHOTS];
        int nloo = 0;
        rd_err lerr = {0}; /* without the pool's scores: the recorded ones, as before */
        if (tp.kind != RD_TP_LOO && ng >= RD_TP_MIN_GOODS && c->ready &&
            rd_engine_class_loo(e, cls, loo, &nloo, &lerr) != RD_E_OK)
            nloo = 0;
        rd_tpolicy_apply_pool(&tp, out->loo_threshold, g, ng, ng_pool, loo, nloo, d, nd, &out->res);
    }
    free(g);
    free(d);
    free(c);
    return rc;
}

rd_ecode rd_labels_policy_set(rd_engine *e, const char *cls, const char *policy, int learn, const char *actor,
                              rd_labels_policy *out, rd_err *err)
{
    rd_tpolicy tp;
    char canon[32];
    if (policy) {
        if (rd_tpolicy_parse(policy, &tp, err) != RD_OK) return RD_E_BADREQ;
        rd_tpolicy_format(&tp, canon, sizeof canon);
        policy = canon;
    }
    pthread_mutex_lock(&labels_mu);
    rd_labels_policy cur;
    rd_ecode rc = rd_labels_policy_get(e, cls, &cur, err);
    if (rc == RD_E_OK)
        rc = rd_store_class_policy_set(rd_engine_store(e), cls, policy, learn,
                                       cur.res.applied == RD_TP_LOO ? NAN : cur.res.threshold, actor, err);
    if (rc == RD_E_OK) rc = recalibrate(e, cls, out, err);
    pthread_mutex_unlock(&labels_mu);
    return rc;
}
