/* views.c — JSON views of classes, references, inspections, stats, the model
 * and tokens (see views.h).  Field names and null/absent rules are the API's
 * contract (tests/daemon_api.sh): an inspection always has its result
 * fields (null until done), and error, finished_at and model_sha256 only
 * when set. */
#include "views.h"

#include <stdio.h>
#include <string.h>

/* A class's geometry: what it was created with, and once its first reference
 * fixed it, the frame, aspect and working grid; its ROI mask's size or null. */
static json_t *view_geometry(const rd_engine_class *c)
{
    const rd_geo_opts *op = &c->opts;
    json_t *o = json_object();
    json_object_set_new(o, "fixed", json_boolean(c->has_geo));
    if (c->has_geo) {
        const rd_geometry *g = &c->geo;
        char desc[160];
        rd_geometry_describe(g, desc, sizeof desc);
        json_object_set_new(o, "frame", json_pack("{s:i, s:i}", "width", g->frame_w, "height", g->frame_h));
        json_object_set_new(o, "aspect", json_real((double)g->frame_w / g->frame_h));
        json_object_set_new(o, "working", json_pack("{s:i, s:i}", "width", g->work_w, "height", g->work_h));
        json_object_set_new(o, "size", json_integer(g->work_w < g->work_h ? g->work_w : g->work_h));
        json_object_set_new(o, "stride", json_integer(g->stride));
        json_object_set_new(o, "fit", json_string(rd_fit_name(g->fit)));
        json_object_set_new(o, "roi", json_pack("[i, i, i, i]", g->roi.x, g->roi.y, g->roi.w, g->roi.h));
        json_object_set_new(o, "alpha", json_string(g->alpha ? "ignore" : "composite"));
        json_object_set_new(o, "search_tile", json_integer(g->search_tile));
        json_object_set_new(o, "description", json_string(desc));
    } else {
        json_object_set_new(o, "size", op->s ? json_integer(op->s) : json_null());
        json_object_set_new(o, "fit", json_string(rd_fit_name(op->fit)));
        json_object_set_new(o, "roi", op->roi.w ? json_pack("[i, i, i, i]", op->roi.x, op->roi.y, op->roi.w, op->roi.h)
                                                : json_null());
        json_object_set_new(o, "alpha", json_string(op->alpha ? "ignore" : "composite"));
        json_object_set_new(o, "search_tile", op->search_tile < 0 ? json_integer(0)
                                              : op->search_tile ? json_integer(op->search_tile) : json_null());
    }
    json_object_set_new(o, "roi_mask", c->row.roi_mask_w > 0 ? json_pack("{s:i, s:i}", "width", c->row.roi_mask_w,
                                                                          "height", c->row.roi_mask_h)
                                                              : json_null());
    return o;
}

json_t *rd_view_class(const rd_engine_class *c)
{
    const rd_class_row *r = &c->row;
    json_t *o = json_object();
    json_t *autov = c->ready && c->threshold_auto == c->threshold_auto ? json_real(c->threshold_auto) : json_null();
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "description", json_string(r->description));
    json_object_set_new(o, "references", json_integer(r->references));
    json_object_set_new(o, "created_at", json_string(r->created_at));
    json_object_set_new(o, "updated_at", json_string(r->updated_at));
    json_object_set_new(o, "threshold", r->threshold_manual ? json_real(r->threshold) : json_incref(autov));
    json_object_set_new(o, "threshold_source", json_string(r->threshold_manual ? "manual" : "auto"));
    json_object_set_new(o, "threshold_auto", autov);
    json_object_set_new(o, "ready", json_boolean(c->ready));
    json_object_set_new(o, "loaded", json_boolean(c->loaded));
    if (c->loading) json_object_set_new(o, "loading", json_true());
    json_object_set_new(o, "geometry", view_geometry(c));
    return o;
}

json_t *rd_view_classes(const rd_engine_class *c, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, rd_view_class(&c[i]));
    return json_pack("{s:o}", "classes", a);
}

json_t *rd_view_refs(const char *cls, const rd_ref_row *rows, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:I, s:i, s:i, s:s}", "id", (json_int_t)rows[i].id,
                                           "sha256", rows[i].sha256, "content_type", rows[i].content_type, "size",
                                           (json_int_t)rows[i].size, "width", rows[i].width, "height",
                                           rows[i].height, "created_at", rows[i].created_at));
    return json_pack("{s:s, s:o}", "class", cls, "references", a);
}

json_t *rd_view_registration(const rd_engine_reg *r)
{
    json_t *added = json_array(), *dups = json_array();
    for (int i = 0; i < r->n; i++)
        json_array_append_new(r->items[i].duplicate ? dups : added,
                              json_pack("{s:I, s:s}", "id", (json_int_t)r->items[i].id, "sha256", r->items[i].sha256));
    return json_pack("{s:o, s:o, s:i, s:b, s:o}", "added", added, "duplicates", dups, "references", r->references,
                     "ready", r->ready, "threshold_auto", r->ready ? json_real(r->threshold_auto) : json_null());
}

#define HAS(r, col) ((r)->present & (1u << (col)))

json_t *rd_view_inspection(const rd_insp_row *r)
{
    json_t *o = json_object();
    char url[96];
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "class", json_string(r->cls));
    json_object_set_new(o, "external_id", HAS(r, RD_INSP_EXTID) ? json_string(r->external_id) : json_null());
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "score", HAS(r, RD_INSP_SCORE) ? json_real(r->score) : json_null());
    json_object_set_new(o, "threshold", HAS(r, RD_INSP_THRESHOLD) ? json_real(r->threshold) : json_null());
    json_object_set_new(o, "anomalous", HAS(r, RD_INSP_ANOMALOUS) ? json_boolean(r->anomalous) : json_null());
    json_object_set_new(o, "scorer", HAS(r, RD_INSP_SCORER) ? json_string(r->scorer) : json_null());
    json_object_set_new(o, "shots", HAS(r, RD_INSP_SHOTS) ? json_integer(r->shots) : json_null());
    json_object_set_new(o, "width", HAS(r, RD_INSP_WIDTH) ? json_integer(r->width) : json_null());
    json_object_set_new(o, "height", HAS(r, RD_INSP_HEIGHT) ? json_integer(r->height) : json_null());
    json_t *t = HAS(r, RD_INSP_TIMINGS) ? json_loads(r->timings, 0, NULL) : NULL;
    json_object_set_new(o, "timings_ms", t ? t : json_null());
    /* verdict fields (sql/005_integrator.sql): null until done, and on rows
     * from before they existed */
    json_object_set_new(o, "confidence", HAS(r, RD_INSP_CONFIDENCE) ? json_real(r->confidence) : json_null());
    json_object_set_new(o, "anomalous_area", HAS(r, RD_INSP_AREA) ? json_real(r->anomalous_area) : json_null());
    json_t *rg = HAS(r, RD_INSP_REGIONS) ? json_loads(r->regions, 0, NULL) : NULL;
    json_object_set_new(o, "regions", rg ? rg : json_null());
    json_object_set_new(o, "regions_total", HAS(r, RD_INSP_REGIONS_TOTAL) ? json_integer(r->regions_total) : json_null());
    json_object_set_new(o, "threshold_source",
                        HAS(r, RD_INSP_THRSRC) ? json_string(r->threshold_source) : json_null());
    if (HAS(r, RD_INSP_SENS)) json_object_set_new(o, "sensitivity", json_real(r->sensitivity));
    json_object_set_new(o, "seq", HAS(r, RD_INSP_SEQ) ? json_integer(r->seq) : json_null());
    if (HAS(r, RD_INSP_ERRCODE) || HAS(r, RD_INSP_ERROR)) {
        json_t *e = json_object();
        if (HAS(r, RD_INSP_ERRCODE)) json_object_set_new(e, "code", json_string(r->error_code));
        if (HAS(r, RD_INSP_ERROR)) json_object_set_new(e, "message", json_string(r->error));
        json_object_set_new(o, "error", e);
    }
    if (HAS(r, RD_INSP_CREATED)) json_object_set_new(o, "created_at", json_string(r->created_at));
    if (HAS(r, RD_INSP_FINISHED)) json_object_set_new(o, "finished_at", json_string(r->finished_at));
    if (HAS(r, RD_INSP_MODEL)) json_object_set_new(o, "model_sha256", json_string(r->model_sha256));
    if (HAS(r, RD_INSP_GEOMETRY)) { /* what the inspection covered (sql/004_geometry.sql) */
        rd_geometry g;
        json_object_set_new(o, "inspected_fraction", json_real(r->inspected_fraction));
        json_object_set_new(o, "left_out_fraction", json_real(r->left_out_fraction));
        json_object_set_new(o, "fitted", json_boolean(r->fitted));
        if (rd_geometry_parse(r->geometry, &g, NULL) == RD_OK)
            json_object_set_new(o, "geometry", json_pack("{s:{s:i, s:i}, s:{s:i, s:i}, s:s, s:[i, i, i, i]}", "frame",
                                                         "width", g.frame_w, "height", g.frame_h, "working", "width",
                                                         g.work_w, "height", g.work_h, "fit", rd_fit_name(g.fit),
                                                         "roi", g.roi.x, g.roi.y, g.roi.w, g.roi.h));
    }
    if (!strcmp(r->status, "done")) {
        snprintf(url, sizeof url, "/v1/inspections/%lld/heatmap.png", (long long)r->id);
        json_object_set_new(o, "heatmap_url", json_string(url));
    }
    return o;
}

json_t *rd_view_inspections(const rd_insp_page *p, int after)
{
    json_t *a = json_array();
    for (int i = 0; i < p->n; i++) json_array_append_new(a, rd_view_inspection(&p->rows[i]));
    json_t *o = json_pack("{s:o, s:I}", "inspections", a, "last_id", (json_int_t)p->last_id);
    if (o && p->next_before_id) json_object_set_new(o, "next_before_id", json_integer(p->next_before_id));
    if (o && after) { /* forward paging on the completion sequence */
        json_object_set_new(o, "next", json_integer(p->next));
        json_object_set_new(o, "has_more", json_boolean(p->has_more));
    }
    return o;
}

json_t *rd_view_stats(const char *cls, const char *since, const rd_stats *s, int queue_depth)
{
    json_t *l = json_object();
    json_object_set_new(l, "p50", s->have_latency ? json_real(s->p50) : json_null());
    json_object_set_new(l, "p90", s->have_latency ? json_real(s->p90) : json_null());
    json_object_set_new(l, "p99", s->have_latency ? json_real(s->p99) : json_null());
    json_object_set_new(l, "max", s->have_latency ? json_real(s->max) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "class", cls ? json_string(cls) : json_null());
    json_object_set_new(o, "since", since ? json_string(since) : json_null());
    json_object_set_new(o, "inspections", json_integer(s->total));
    json_object_set_new(o, "done", json_integer(s->done));
    json_object_set_new(o, "failed", json_integer(s->failed));
    json_object_set_new(o, "queued", json_integer(s->queued));
    json_object_set_new(o, "anomalous", json_integer(s->anomalous));
    json_object_set_new(o, "anomaly_rate", s->done ? json_real((double)s->anomalous / (double)s->done) : json_null());
    json_object_set_new(o, "latency_ms", l);
    json_object_set_new(o, "queue_depth", json_integer(queue_depth));
    return o;
}

json_t *rd_view_model(const rd_model_info *in)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:f}", "arch", in->arch, "scorer", in->scorer,
                          "model_id", in->model_id, "size", in->size, "levels", in->nlevels, "backbone_sha256",
                          in->backbone_sha256, "metric", in->metric, "residual", in->resid, "topk",
                          (double)in->topk_frac);
    if (o && in->model_sha256[0]) { /* the learned model: which file, and how it was made */
        json_t *prov = in->model_meta[0] ? json_loads(in->model_meta, 0, NULL) : NULL;
        json_object_set_new(o, "model", json_pack("{s:s, s:s, s:o}", "file", in->model_file, "sha256",
                                                  in->model_sha256, "provenance", prov ? prov : json_object()));
    }
    return o;
}

json_t *rd_view_tokens(const rd_token_row *t, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o}", "id", (json_int_t)t[i].id, "name",
                                           t[i].name, "scope", t[i].scope, "created_at", t[i].created_at,
                                           "revoked_at", t[i].revoked_at[0] ? json_string(t[i].revoked_at) : json_null(),
                                           "expires_at", t[i].expires_at[0] ? json_string(t[i].expires_at) : json_null()));
    return a;
}

json_t *rd_view_error(const char *code, const char *msg)
{
    /* messages may echo client bytes (a path, a part's type): keep them
     * printable ASCII so the envelope is always valid JSON text */
    char clean[1024];
    size_t i;
    for (i = 0; msg[i] && i < sizeof clean - 1; i++)
        clean[i] = (unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] >= 0x7f ? '?' : msg[i];
    clean[i] = '\0';
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", clean);
}
