/* handlers.c — one function per route, and the route table itself.  By the
 * time a handler runs, the matcher has validated {name}/{id}, the token has
 * the row's scope, and the body (if the row takes one) passed its type and
 * size checks.  Handlers turn the request into an engine call and the
 * engine's structs into a JSON view; nothing else. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bodies.h"
#include "browser.h"
#include "dashboard.h"
#include "tokens.h"
#include "metrics.h"
#include "req.h"
#include "hooks.h"
#include "labels.h"
#include "sse.h"
#include "views.h"
#include "isotime.h"

#define MAX_UPLOADS 64

static int h_healthz(rd_req *r) { return rd_reply_json(r, 200, json_pack("{s:s}", "status", "ok")); }

static int h_readyz(rd_req *r)
{
    const rd_model_info *in = rd_engine_info(r->e);
    int db = rd_engine_writable(r->e), loading = rd_engine_loading(r->e);
    int ready = db && in && !loading;
    json_t *o = json_pack("{s:s, s:b, s:b, s:i, s:s?, s:i}", "status", ready ? "ready" : "not_ready", "model_loaded",
                          in != NULL, "db_writable", db, "classes_loading", loading, "model_id",
                          in ? in->model_id : NULL, "queue_depth", rd_engine_queue_depth(r->e));
    return rd_reply_json(r, ready ? 200 : 503, o);
}

static int h_metrics(rd_req *r)
{
    char *t = rd_metrics_render(r->e, rd_engine_info(r->e) && rd_engine_writable(r->e) && !rd_engine_loading(r->e));
    if (!t) return rd_reply_err(r, 500, "internal", "out of memory");
    return rd_reply_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), 1);
}

static int h_openapi(rd_req *r)
{
    return rd_reply_buf(r, 200, "application/json", (void *)rd_openapi_json, strlen(rd_openapi_json), 0);
}

static int h_model(rd_req *r)
{
    const rd_model_info *in = rd_engine_info(r->e);
    if (!in) return rd_reply_err(r, 503, "busy", "the model is still loading; retry shortly");
    return rd_reply_json(r, 200, rd_view_model(in));
}

/* ---- classes ---- */
static int h_class_list(rd_req *r)
{
    rd_engine_class *c = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_engine_class_list(r->e, &c, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = rd_view_classes(c, n);
    free(c);
    return rd_reply_json(r, 200, o);
}

static int h_class_create(rd_req *r)
{
    rd_class_create_body *b = malloc(sizeof *b);
    rd_engine_class *c = malloc(sizeof *c);
    rd_body_err be = {0};
    rd_err err = {0};
    int ret;
    if (!b || !c) {
        ret = rd_reply_err(r, 500, "internal", "out of memory");
    } else if (rd_body_class_create((const char *)r->body, r->len, r->o->max_json_depth, b, &be)) {
        ret = rd_reply_err(r, 400, be.code, "%s", be.msg);
    } else {
        rd_ecode code = rd_engine_class_create_geo(r->e, b->name, b->description, b->has_geo ? &b->geo : NULL, c, &err);
        ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 201, rd_view_class(c));
    }
    free(b);
    free(c);
    return ret;
}

static int h_class_get(rd_req *r)
{
    rd_engine_class *c = malloc(sizeof *c);
    rd_err err = {0};
    if (!c) return rd_reply_err(r, 500, "internal", "out of memory");
    rd_ecode code = rd_engine_class_get(r->e, r->name, c, &err);
    json_t *o = code == RD_E_OK ? rd_view_class(c) : NULL;
    if (o) rd_labels_decorate_class(r, r->name, o); /* threshold_policy (api/labels.c) */
    int ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 200, o);
    free(c);
    return ret;
}

static int h_class_patch(rd_req *r)
{
    rd_class_patch_body *b = malloc(sizeof *b);
    rd_engine_class *c = malloc(sizeof *c);
    rd_body_err be = {0};
    rd_err err = {0};
    int ret;
    if (!b || !c) {
        ret = rd_reply_err(r, 500, "internal", "out of memory");
    } else if (rd_body_class_patch((const char *)r->body, r->len, r->o->max_json_depth, b, &be)) {
        ret = rd_reply_err(r, 400, be.code, "%s", be.msg);
    } else {
        rd_ecode code = b->has_geo ? rd_engine_class_set_geo(r->e, r->name, &b->geo, NULL, &err) : RD_E_OK;
        if (code == RD_E_OK)
            code = rd_engine_class_update(r->e, r->name, b->has_description ? b->description : NULL,
                                          b->set_threshold, b->threshold, c, &err);
        ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 200, rd_view_class(c));
    }
    free(b);
    free(c);
    return ret;
}

static int h_class_delete(rd_req *r)
{
    rd_err err = {0};
    rd_ecode code = rd_engine_class_delete(r->e, r->name, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, json_pack("{s:s}", "deleted", r->name));
}

/* ---- ROI mask (a PNG or JPEG of the frame's aspect ratio; engine.h) ---- */
/* Sets (u) or removes (NULL) the mask and answers with the class. */
static int roi_mask_set(rd_req *r, const rd_upload *u)
{
    rd_err err = {0};
    rd_engine_class *c = malloc(sizeof *c);
    if (!c) return rd_reply_err(r, 500, "internal", "out of memory");
    rd_ecode code = rd_engine_class_set_roi_mask(r->e, r->name, u, c, &err);
    int ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 200, rd_view_class(c));
    free(c);
    return ret;
}

static int h_roi_mask_put(rd_req *r)
{
    rd_upload u[1];
    if (rd_req_uploads(r, u, 1) < 0) return MHD_YES;
    return roi_mask_set(r, &u[0]);
}

static int h_roi_mask_get(rd_req *r)
{
    uint8_t *data;
    size_t len;
    char ct[64];
    rd_err err = {0};
    rd_ecode code = rd_engine_class_roi_mask(r->e, r->name, &data, &len, ct, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_browser_reply_image(r, ct, data, len, 0);
}

static int h_roi_mask_delete(rd_req *r) { return roi_mask_set(r, NULL); }

/* ---- references ---- */
static int h_refs_list(rd_req *r)
{
    rd_ref_row *rows = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_engine_ref_list(r->e, r->name, &rows, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = rd_view_refs(r->name, rows, n);
    free(rows);
    return rd_reply_json(r, 200, o);
}

static int h_refs_post(rd_req *r)
{
    rd_upload u[MAX_UPLOADS];
    rd_err err = {0};
    rd_engine_reg *reg = malloc(sizeof *reg);
    if (!reg) return rd_reply_err(r, 500, "internal", "out of memory");
    int n = rd_req_uploads(r, u, MAX_UPLOADS), ret;
    if (n < 0) {
        free(reg);
        return MHD_YES;
    }
    rd_ecode code = rd_engine_register(r->e, r->name, u, n, reg, &err);
    if (code == RD_E_OK) rd_labels_pool_changed(r);
    ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 201, rd_view_registration(reg));
    free(reg);
    return ret;
}

static int h_ref_get(rd_req *r)
{
    uint8_t *data;
    size_t len;
    char ct[64];
    rd_err err = {0};
    rd_ecode code = rd_engine_ref_image(r->e, r->name, r->id, &data, &len, ct, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_browser_reply_image(r, ct, data, len, 1);
}

static int h_ref_delete(rd_req *r)
{
    rd_err err = {0};
    int left = 0;
    rd_ecode code = rd_engine_ref_delete(r->e, r->name, r->id, &left, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    rd_labels_pool_changed(r);
    return rd_reply_json(r, 200, json_pack("{s:I, s:i}", "deleted", (json_int_t)r->id, "references", left));
}

/* ---- inspections ---- */
static int h_inspect(rd_req *r)
{
    rd_upload u[MAX_UPLOADS];
    rd_err err = {0};
    const char *as = rd_req_query(r, "async");
    int async = as && (!strcmp(as, "1") || !strcmp(as, "true"));
    const char *ext = rd_req_header(r, "X-Request-Id"), *qext = rd_req_query(r, "external_id");
    if (ext) rd_req_add_header(r, "X-Request-Id", ext); /* echoed on every reply */
    if (ext && qext && strcmp(ext, qext))
        return rd_reply_err(r, 400, "bad_request", "X-Request-Id and ?external_id= differ; give one, or the same");
    if (!ext) ext = qext;
    if (ext && (strlen(ext) > RD_STORE_EXTID_MAX || !*ext))
        return rd_reply_err(r, 400, "bad_request", "X-Request-Id must be 1 to %d bytes (got %zu)", RD_STORE_EXTID_MAX,
                            strlen(ext));
    rd_engine_insp_opts io = {.threshold = NAN, .sensitivity = NAN};
    rd_body_err be = {0};
    if (rd_body_inspect_query(rd_req_query(r, "threshold"), rd_req_query(r, "sensitivity"), &io.threshold,
                              &io.sensitivity, &be))
        return rd_reply_err(r, 400, be.code, "%s", be.msg);
    int n = rd_req_uploads(r, u, MAX_UPLOADS);
    if (n < 0) return MHD_YES;
    if (n != 1) return rd_reply_err(r, 400, "bad_request", "an inspection takes exactly one image (got %d)", n);
    rd_insp_row *row = malloc(sizeof *row);
    if (!row) return rd_reply_err(r, 500, "internal", "out of memory");
    rd_ecode code = rd_engine_inspect_opts(r->e, r->name, &u[0], ext, async, &io, row, &err);
    int ret;
    if (code != RD_E_OK) {
        ret = rd_reply_code(r, code, &err);
    } else if (io.replayed) { /* the original, whatever its state */
        rd_req_add_header(r, "Idempotent-Replay", "true");
        ret = rd_reply_json(r, 200, rd_view_inspection(row));
    } else if (async) {
        char loc[64];
        snprintf(loc, sizeof loc, "/v1/inspections/%lld", (long long)row->id);
        json_t *o = json_pack("{s:I, s:s, s:s, s:s*}", "id", (json_int_t)row->id, "class", row->cls, "status",
                              "queued", "external_id", ext);
        ret = rd_reply_json_loc(r, 202, o, loc);
    } else {
        ret = rd_reply_json(r, 200, rd_view_inspection(row));
    }
    free(row);
    return ret;
}

static int parse_since(const char *s, char out[32])
{
    size_t n = strlen(s);
    int digits = n > 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) digits = 0;
    if (digits && n <= 12) {
        rd_isotime(strtoll(s, NULL, 10), 0, out);
        return 0;
    }
    int Y, M, D, h = 0, mi = 0, se = 0;
    if (n < 10 || n > 30 || sscanf(s, "%4d-%2d-%2d", &Y, &M, &D) != 3) return -1;
    if (n > 10 && sscanf(s + 10, "T%2d:%2d:%2d", &h, &mi, &se) < 2) return -1;
    if (Y < 0 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60)
        return -1;
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", Y, M, D, h, mi, se);
    return 0;
}

static int h_insp_list(rd_req *r)
{
    rd_insp_query q = {.anomalous = -1, .limit = 50};
    rd_insp_page page;
    char since[32];
    rd_err err = {0};
    const char *v;
    if ((v = rd_req_query(r, "class"))) {
        if (!rd_route_valid_name(v)) return rd_reply_err(r, 400, "bad_name", "class must match [a-z0-9][a-z0-9_-]{0,63}");
        q.cls = v;
    }
    if ((v = rd_req_query(r, "anomalous"))) {
        if (!strcmp(v, "true") || !strcmp(v, "1")) q.anomalous = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0")) q.anomalous = 0;
        else return rd_reply_err(r, 400, "bad_request", "anomalous is true or false");
    }
    if ((v = rd_req_query(r, "since"))) {
        if (parse_since(v, since))
            return rd_reply_err(r, 400, "bad_request", "since is ISO 8601 (2026-01-31T08:00:00Z) or unix seconds");
        q.since = since;
    }
    if ((v = rd_req_query(r, "after_id")) && rd_route_parse_id(v, &q.after_id) && strcmp(v, "0"))
        return rd_reply_err(r, 400, "bad_id", "after_id must be a positive integer");
    q.after_set = v != NULL;
    if ((v = rd_req_query(r, "before_id")) && rd_route_parse_id(v, &q.before_id))
        return rd_reply_err(r, 400, "bad_id", "before_id must be a positive integer");
    if (q.after_set && v)
        return rd_reply_err(r, 400, "bad_request", "after_id pages forward on the completion sequence (seq) and "
                            "before_id backward on ids: give one");
    if ((v = rd_req_query(r, "external_id"))) {
        if (!q.cls) return rd_reply_err(r, 400, "bad_request", "external_id needs class= (ids are unique per class)");
        q.external_id = v;
    }
    if ((v = rd_req_query(r, "limit"))) {
        int64_t l;
        if (rd_route_parse_id(v, &l) || l > 1000) return rd_reply_err(r, 400, "bad_request", "limit is 1..1000");
        q.limit = (int)l;
    }
    rd_ecode code = rd_engine_insp_list(r->e, &q, &page, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = rd_view_inspections(&page, q.after_set);
    free(page.rows);
    return rd_reply_json(r, 200, o);
}

static int h_insp_get(rd_req *r)
{
    rd_insp_row *row = malloc(sizeof *row);
    rd_err err = {0};
    if (!row) return rd_reply_err(r, 500, "internal", "out of memory");
    rd_ecode code = rd_engine_insp_get(r->e, r->id, row, &err);
    int ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 200, rd_view_inspection(row));
    free(row);
    return ret;
}

static int h_heatmap(rd_req *r)
{
    uint8_t *png;
    size_t len;
    rd_err err = {0};
    const char *kind = rd_req_query(r, "kind");
    if (!kind) kind = "overlay";
    if (strcmp(kind, "overlay") && strcmp(kind, "raw") && strcmp(kind, "mask"))
        return rd_reply_err(r, 400, "bad_request", "kind is overlay, raw or mask");
    rd_ecode code = rd_engine_heatmap(r->e, r->id, kind, &png, &len, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_browser_reply_image(r, "image/png", png, len, 0);
}

static int h_stats(rd_req *r)
{
    char since[32];
    rd_stats st;
    rd_err err = {0};
    const char *cls = rd_req_query(r, "class"), *sv = rd_req_query(r, "since");
    if (cls && !rd_route_valid_name(cls))
        return rd_reply_err(r, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
    if (sv && parse_since(sv, since)) return rd_reply_err(r, 400, "bad_request", "since is ISO 8601 or unix seconds");
    rd_ecode code = rd_engine_stats(r->e, cls, sv ? since : NULL, &st, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, rd_view_stats(cls, sv ? since : NULL, &st, rd_engine_queue_depth(r->e)));
}

/* The API.  Order matters only for readability: the matcher tries every row.
 * /metrics is RD_SCOPE_READ; http.c lets it through without a token when
 * metrics_public is set. */
const rd_route rd_api_routes[] = {
    {"GET", "/", RD_SCOPE_NONE, RD_BODY_NONE, rd_dashboard_serve},
    {"GET", "/dashboard/app.js", RD_SCOPE_NONE, RD_BODY_NONE, rd_dashboard_serve},
    {"GET", "/dashboard/style.css", RD_SCOPE_NONE, RD_BODY_NONE, rd_dashboard_serve},
    {"POST", "/v1/tokens", RD_SCOPE_ADMIN, RD_BODY_JSON, rd_tokens_create},
    {"GET", "/v1/tokens", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_tokens_list},
    {"DELETE", "/v1/tokens/{id}", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_tokens_revoke},
    {"GET", "/v1/signed-url", RD_SCOPE_READ, RD_BODY_NONE, rd_browser_h_signed_url},
    {"GET", "/v1/inspections/{id}/image", RD_SCOPE_READ, RD_BODY_NONE, rd_browser_h_image},
    {"GET", "/healthz", RD_SCOPE_NONE, RD_BODY_NONE, h_healthz},
    {"GET", "/readyz", RD_SCOPE_NONE, RD_BODY_NONE, h_readyz},
    {"GET", "/metrics", RD_SCOPE_READ, RD_BODY_NONE, h_metrics},
    {"GET", "/v1/openapi.json", RD_SCOPE_NONE, RD_BODY_NONE, h_openapi},
    {"GET", "/v1/model", RD_SCOPE_READ, RD_BODY_NONE, h_model},
    {"GET", "/v1/classes", RD_SCOPE_READ, RD_BODY_NONE, h_class_list},
    {"POST", "/v1/classes", RD_SCOPE_ADMIN, RD_BODY_JSON, h_class_create},
    {"GET", "/v1/classes/{name}", RD_SCOPE_READ, RD_BODY_NONE, h_class_get},
    {"PATCH", "/v1/classes/{name}", RD_SCOPE_ADMIN, RD_BODY_JSON, h_class_patch},
    {"DELETE", "/v1/classes/{name}", RD_SCOPE_ADMIN, RD_BODY_NONE, h_class_delete},
    {"PUT", "/v1/classes/{name}/roi-mask", RD_SCOPE_ADMIN, RD_BODY_IMAGE, h_roi_mask_put},
    {"GET", "/v1/classes/{name}/roi-mask", RD_SCOPE_READ, RD_BODY_NONE, h_roi_mask_get},
    {"DELETE", "/v1/classes/{name}/roi-mask", RD_SCOPE_ADMIN, RD_BODY_NONE, h_roi_mask_delete},
    {"GET", "/v1/classes/{name}/references", RD_SCOPE_READ, RD_BODY_NONE, h_refs_list},
    {"POST", "/v1/classes/{name}/references", RD_SCOPE_ADMIN, RD_BODY_IMAGE, h_refs_post},
    {"GET", "/v1/classes/{name}/references/{id}", RD_SCOPE_READ, RD_BODY_NONE, h_ref_get},
    {"DELETE", "/v1/classes/{name}/references/{id}", RD_SCOPE_ADMIN, RD_BODY_NONE, h_ref_delete},
    {"POST", "/v1/classes/{name}/inspections", RD_SCOPE_INSPECT, RD_BODY_IMAGE, h_inspect},
    {"GET", "/v1/inspections", RD_SCOPE_READ, RD_BODY_NONE, h_insp_list},
    {"GET", "/v1/inspections/{id}", RD_SCOPE_READ, RD_BODY_NONE, h_insp_get},
    {"GET", "/v1/inspections/{id}/heatmap.png", RD_SCOPE_READ, RD_BODY_NONE, h_heatmap},
    {"GET", "/v1/stats", RD_SCOPE_READ, RD_BODY_NONE, h_stats},
    {"PUT", "/v1/inspections/{id}/label", RD_SCOPE_INSPECT, RD_BODY_JSON, rd_labels_h_put},
    {"POST", "/v1/inspections/{id}/label", RD_SCOPE_INSPECT, RD_BODY_JSON, rd_labels_h_put},
    {"GET", "/v1/inspections/{id}/label", RD_SCOPE_READ, RD_BODY_NONE, rd_labels_h_get},
    {"DELETE", "/v1/inspections/{id}/label", RD_SCOPE_INSPECT, RD_BODY_NONE, rd_labels_h_delete},
    {"PUT", "/v1/inspections/{id}/reference", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_labels_h_ref_put},
    {"DELETE", "/v1/inspections/{id}/reference", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_labels_h_ref_delete},
    {"GET", "/v1/classes/{name}/labels", RD_SCOPE_READ, RD_BODY_NONE, rd_labels_h_class},
    {"PUT", "/v1/classes/{name}/threshold-policy", RD_SCOPE_ADMIN, RD_BODY_JSON, rd_labels_h_policy},
    {"GET", "/v1/events", RD_SCOPE_READ, RD_BODY_NONE, rd_sse_serve},
    {"POST", "/v1/webhooks", RD_SCOPE_ADMIN, RD_BODY_JSON, rd_hooks_create},
    {"GET", "/v1/webhooks", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_hooks_list},
    {"GET", "/v1/webhooks/{id}", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_hooks_get},
    {"DELETE", "/v1/webhooks/{id}", RD_SCOPE_ADMIN, RD_BODY_NONE, rd_hooks_delete},
};
const int rd_api_nroutes = (int)(sizeof rd_api_routes / sizeof rd_api_routes[0]);
