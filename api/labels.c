/* labels.c — the label routes: JSON bodies, the actor (the token's name), the views; see labels.h. */
#include "labels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/labels.h"
#include "engine/log.h"
#include "req.h"
#include "sha256.h"

/* a flat JSON object whose keys are all in keys (NULL-terminated); NULL after rd_body_fail() */
static json_t *flat_object(const char *text, size_t len, const char *const *keys, const char *form, rd_body_err *e)
{
    json_error_t je;
    json_t *b = rd_body_json_depth(text, len) > 2 ? NULL : json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *k;
    if (!json_is_object(b)) {
        json_decref(b);
        rd_body_fail(e, "bad_json", "the body is a JSON object %s", form);
        return NULL;
    }
    json_object_foreach(b, k, v)
    {
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= !strcmp(k, keys[i]);
        if (!known) {
            rd_body_fail(e, "bad_request", "unknown field '%.64s' in %s", k, form);
            json_decref(b);
            return NULL;
        }
    }
    return b;
}

int rd_body_label(const char *text, size_t len, char label[8], int *join, rd_body_err *e)
{
    static const char *const keys[] = {"label", "join_pool", NULL};
    json_t *b = flat_object(text, len, keys, "{\"label\": \"good\"|\"defect\", \"join_pool\"?: bool}", e);
    int rc = -1;
    if (!b) return -1;
    const char *l = json_string_value(json_object_get(b, "label"));
    json_t *j = json_object_get(b, "join_pool");
    if (!l || (strcmp(l, "good") && strcmp(l, "defect"))) rd_body_fail(e, "bad_label", "label is \"good\" or \"defect\"");
    else if (j && !json_is_boolean(j)) rd_body_fail(e, "bad_request", "join_pool is true or false");
    else if (j && json_is_true(j) && strcmp(l, "good")) rd_body_fail(e, "bad_request", "a defect never joins the pool");
    else {
        snprintf(label, 8, "%s", l);
        *join = j ? json_is_true(j) : -1;
        rc = 0;
    }
    json_decref(b);
    return rc;
}

int rd_body_label_policy(const char *text, size_t len, char policy[32], int *learn, rd_body_err *e)
{
    static const char *const keys[] = {"threshold_policy", "learn_from_labels", NULL};
    json_t *b = flat_object(text, len, keys, "{\"threshold_policy\"?: \"loo\"|\"fpr:RATE\"|\"f1\", "
                            "\"learn_from_labels\"?: bool}", e);
    int rc = -1;
    if (!b) return -1;
    json_t *p = json_object_get(b, "threshold_policy"), *l = json_object_get(b, "learn_from_labels");
    rd_tpolicy tp;
    rd_err err = {0};
    if (!p && !l) rd_body_fail(e, "bad_request", "give threshold_policy, learn_from_labels or both");
    else if (p && (!json_is_string(p) || rd_tpolicy_parse(json_string_value(p), &tp, &err) != RD_OK))
        rd_body_fail(e, "bad_request", "%s", err.msg[0] ? err.msg : "threshold_policy is a string");
    else if (l && !json_is_boolean(l)) rd_body_fail(e, "bad_request", "learn_from_labels is true or false");
    else {
        policy[0] = '\0';
        if (p) rd_tpolicy_format(&tp, policy, 32);
        *learn = l ? json_is_true(l) : -1;
        rc = 0;
    }
    json_decref(b);
    return rc;
}

/* who is asking: "token NAME" (or "token #ID" without a name), "local" without auth */
static void actor_of(rd_req *r, char out[136])
{
    char hash[RD_SHA256_HEX], scope[16];
    int64_t id = 0;
    rd_token_row *rows = NULL;
    int n = 0;
    rd_err err = {0};
    const char *a = rd_req_header(r, "Authorization");
    snprintf(out, 136, "local");
    if (!a || strncasecmp(a, "Bearer ", 7)) return;
    const char *tok = a + 7;
    while (*tok == ' ') tok++;
    if (strlen(tok) > 256 || rd_sha256_hex(tok, strlen(tok), hash) != 0 ||
        rd_engine_token_auth(r->e, hash, scope, &id) != RD_E_OK)
        return;
    snprintf(out, 136, "token #%lld", (long long)id);
    if (rd_engine_token_list(r->e, &rows, &n, &err) == RD_E_OK)
        for (int i = 0; i < n; i++)
            if (rows[i].id == id && rows[i].name[0]) snprintf(out, 136, "token %.120s", rows[i].name);
    free(rows);
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *view_label(const rd_label_row *l)
{
    return json_pack("{s:I, s:s, s:s, s:o, s:s, s:s, s:b, s:o}", "inspection_id", (json_int_t)l->inspection_id,
                     "class", l->cls, "label", l->label, "score", num_or_null(l->score), "actor", l->actor,
                     "labelled_at", l->at, "in_pool", l->reference_id > 0, "reference_id",
                     l->reference_id > 0 ? json_integer(l->reference_id) : json_null());
}

static json_t *view_events(const rd_label_event *ev, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:o, s:s, s:o, s:o, s:s, s:s}", "id", (json_int_t)ev[i].id, "class", ev[i].cls,
                         "inspection_id", ev[i].inspection_id ? json_integer(ev[i].inspection_id) : json_null(),
                         "action", ev[i].action, "value", ev[i].value[0] ? json_string(ev[i].value) : json_null(),
                         "reference_id", ev[i].reference_id ? json_integer(ev[i].reference_id) : json_null(),
                         "actor", ev[i].actor, "at", ev[i].at));
    return a;
}

static json_t *view_policy(const rd_labels_policy *p)
{
    static const char *const kinds[] = {"loo", "fpr", "f1"};
    const rd_tpolicy_result *q = &p->res;
    return json_pack("{s:s, s:b, s:s, s:o, s:o, s:o, s:o, s:{s:i, s:i, s:i}, s:o, s:b}", "policy", p->policy,
                     "learn_from_labels", p->learn_from_labels, "applied", kinds[q->applied], "threshold",
                     num_or_null(q->applied == RD_TP_LOO ? p->loo_threshold : q->threshold), "loo_threshold",
                     num_or_null(p->loo_threshold), "expected_recall", num_or_null(q->expected_recall),
                     "expected_false_reject_rate", num_or_null(q->expected_frr), "labels_used", "good", q->goods_used,
                     "defect", q->defects_used, "pool_scores", q->pool_scores_used, "reason",
                     q->reason[0] ? json_string(q->reason) : json_null(),
                     "overridden_by_manual_threshold", p->manual);
}

static json_t *with_outcome(json_t *o, const rd_label_outcome *oc)
{
    json_object_set_new(o, "changed", json_boolean(oc->changed));
    json_object_set_new(o, "joined_pool", json_boolean(oc->joined));
    json_object_set_new(o, "left_pool", json_boolean(oc->left));
    json_object_set_new(o, "note", oc->note[0] ? json_string(oc->note) : json_null());
    return o;
}

int rd_labels_h_put(rd_req *r)
{
    char label[8], actor[136];
    int join;
    rd_body_err be = {0};
    rd_err err = {0};
    rd_label_row lr;
    rd_label_outcome oc;
    if (rd_body_label((const char *)r->body, r->len, label, &join, &be))
        return rd_reply_err(r, 400, be.code, "%s", be.msg);
    actor_of(r, actor);
    rd_ecode code = rd_labels_set(r->e, r->id, label, join, actor, &lr, &oc, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, with_outcome(view_label(&lr), &oc));
}

int rd_labels_h_get(rd_req *r)
{
    rd_label_row lr;
    rd_label_event *ev = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_labels_get(r->e, r->id, &lr, &err);
    if (code == RD_E_OK) code = rd_labels_events(r->e, lr.cls, r->id, &ev, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = view_label(&lr);
    json_object_set_new(o, "history", view_events(ev, n));
    free(ev);
    return rd_reply_json(r, 200, o);
}

int rd_labels_h_delete(rd_req *r)
{
    char actor[136];
    rd_err err = {0};
    rd_label_outcome oc;
    actor_of(r, actor);
    rd_ecode code = rd_labels_delete(r->e, r->id, actor, &oc, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, with_outcome(json_pack("{s:I, s:n}", "inspection_id", (json_int_t)r->id, "label"), &oc));
}

static int pool(rd_req *r, int join)
{
    char actor[136];
    rd_err err = {0};
    rd_label_row lr;
    rd_label_outcome oc;
    actor_of(r, actor);
    rd_ecode code = rd_labels_pool(r->e, r->id, join, actor, &lr, &oc, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, with_outcome(view_label(&lr), &oc));
}

int rd_labels_h_ref_put(rd_req *r) { return pool(r, 1); }
int rd_labels_h_ref_delete(rd_req *r) { return pool(r, 0); }

int rd_labels_h_class(rd_req *r)
{
    rd_labels_policy p;
    rd_label_event *ev = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_labels_policy_get(r->e, r->name, &p, &err);
    if (code == RD_E_OK) code = rd_labels_events(r->e, r->name, 0, &ev, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = json_pack("{s:s, s:o, s:o}", "class", r->name, "threshold_policy", view_policy(&p), "events",
                          view_events(ev, n));
    free(ev);
    return rd_reply_json(r, 200, o);
}

int rd_labels_h_policy(rd_req *r)
{
    char policy[32], actor[136];
    int learn;
    rd_body_err be = {0};
    rd_err err = {0};
    rd_labels_policy p;
    if (rd_body_label_policy((const char *)r->body, r->len, policy, &learn, &be))
        return rd_reply_err(r, 400, be.code, "%s", be.msg);
    actor_of(r, actor);
    rd_ecode code = rd_labels_policy_set(r->e, r->name, policy[0] ? policy : NULL, learn, actor, &p, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, json_pack("{s:s, s:o}", "class", r->name, "threshold_policy", view_policy(&p)));
}

void rd_labels_decorate_class(rd_req *r, const char *cls, json_t *o)
{
    rd_labels_policy p;
    rd_err err = {0};
    if (!o || rd_labels_policy_get(r->e, cls, &p, &err) != RD_E_OK) return;
    if (!p.manual && p.res.applied != RD_TP_LOO) {
        json_object_set_new(o, "threshold", json_real(p.res.threshold));
        json_object_set_new(o, "threshold_source", json_string("policy"));
    }
    json_object_set_new(o, "threshold_policy", view_policy(&p));
}

void rd_labels_pool_changed(rd_req *r)
{
    rd_err err = {0};
    if (rd_labels_recalibrate(r->e, r->name, &err) != RD_E_OK)
        rd_log(RD_LOG_WARN, "class %s: threshold policy not recomputed after a reference change: %s", r->name, err.msg);
}
