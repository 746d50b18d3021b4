/* resad.c — the inspection pipeline: model, workers, features, reference sets,
 * inspection (see resad.h for the whole flow).
 *
 * Memory: a worker's arena is sized here once, at rd_worker_new, from the
 * model's plan (backbone scratch, level buffers, search tiles, maps).  The only
 * per-call allocations are outputs the caller keeps (rd_feats, the result map)
 * and the preprocessing buffer, which depends on the input image's size and
 * grows (rarely) to the largest image seen. */
#include "resad.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "blas.h"
#include "constraintor.h"
#include "flow.h"
#include "mapops.h"
#include "safetensors.h"
#include "sha256.h"

#define FEATS_MAGIC 0x31464452u /* "RDF1" little-endian */
#define FEATS_VERSION 1u

struct rd_model {
    rd_model_opts opts;
    rd_backbone *bb;
    int s;
    rd_model_info info;
    char model_id[RD_SHA256_HEX];
    size_t graph_scratch;
    size_t worker_bytes;
    size_t level_n[RD_MAX_LEVELS]; /* positions per level */
    /* learned scorer (NULL without a model file) */
    rd_cstr *cstr[RD_MAX_LEVELS];
    rd_cstr_plan *cplan[RD_MAX_LEVELS];
    rd_flow *flow[RD_MAX_LEVELS];
    rd_flow_plan *fplan[RD_MAX_LEVELS];
    int learned;
    char model_sha[RD_SHA256_HEX];
    char *model_meta;  /* JSON text of the learned model's provenance (owned) */
    char model_file[256];
    char levels_buf[RD_MAX_LEVELS * 64];
};

struct rd_worker {
    const rd_model *m;
    rd_team *team; /* helper threads for the non-BLAS heavy stages */
    rd_arena arena;
    rd_arena pre; /* preprocessing scratch, grown to the largest image */
};

struct rd_refset {
    atomic_int refs;
    int k, nlevels;
    rd_pool *pool[RD_MAX_LEVELS];
    float mu[RD_MAX_LEVELS], sigma[RD_MAX_LEVELS];
    float *loo;      /* k leave-one-out image scores */
    float threshold;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void rd_model_opts_default(rd_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->metric = RD_POOL_L2;
    o->resid = RD_RESID_X_MINUS_NN;
    o->topk_frac = 0.0f;
    o->sigma = 4.0f;
    o->max_shots = 16;
}

static size_t worker_bytes(const rd_model *m)
{
    const rd_model_info *in = &m->info;
    const size_t ss = (size_t)m->s * (size_t)m->s;
    size_t b = m->graph_scratch + rd_arena_need(ss * 3 * sizeof(float));
    size_t maxn = 0, maxnc = 0, maxc = 0;
    for (int l = 0; l < in->nlevels; l++) {
        size_t nc = m->level_n[l] * (size_t)in->level_c[l];
        b += rd_arena_need(nc * sizeof(float));                 /* level features */
        b += rd_arena_need(m->level_n[l] * sizeof(float));      /* level scores */
        if (m->level_n[l] > maxn) maxn = m->level_n[l];
        if (nc > maxnc) maxnc = nc;
        if ((size_t)in->level_c[l] > maxc) maxc = (size_t)in->level_c[l];
    }
    /* per level, reused: residuals, nn idx, dist, level map */
    b += rd_arena_need(maxnc * sizeof(float)) + 3 * rd_arena_need(maxn * sizeof(float));
    b += rd_pool_scratch_bytes((int)maxc, maxn);
    /* accumulated map, upsample tmp, blur tmp, top-k tmp */
    b += 4 * rd_arena_need(ss * sizeof(float));
    if (m->learned) {
        size_t extra = 0;
        int team = m->opts.threads > 0 ? m->opts.threads : 1;
        for (int l = 0; l < in->nlevels; l++) {
            size_t e = rd_arena_need(m->level_n[l] * (size_t)in->level_c[l] * sizeof(float)) +
                       rd_arena_need(m->level_n[l] * sizeof(float));
            size_t cs = m->cplan[l] ? rd_cstr_plan_scratch(m->cplan[l], in->level_h[l], in->level_w[l]) : 0;
            size_t fs = rd_flow_plan_scratch_team(m->fplan[l], team);
            e += cs > fs ? cs : fs;
            if (e > extra) extra = e;
        }
        b += extra;
    }
    return b + 4096;
}

static const char *metric_name(rd_pool_metric m) { return m == RD_POOL_COSINE ? "cosine" : "l2"; }
static const char *resid_name(rd_resid r) { return r == RD_RESID_SQUARED ? "(x-x*)^2" : "x-x*"; }

/* Reads the learned model's metadata that decides the feature geometry. */
static rd_status learned_meta(rd_model *m, const rd_st_file *st, rd_err *err)
{
    const char *kind = rd_st_meta(st, "resadd.kind"), *v;
    if (!kind || strcmp(kind, "resad-model"))
        return rd_err_set(err, RD_ERR_FORMAT, "not a resad model file (metadata resadd.kind missing)");
    v = rd_st_meta(st, "resadd.levels");
    if (!v || strlen(v) >= sizeof m->levels_buf)
        return rd_err_set(err, RD_ERR_FORMAT, "model file has no resadd.levels");
    snprintf(m->levels_buf, sizeof m->levels_buf, "%s", v);
    m->opts.levels_csv = m->levels_buf;
    if ((v = rd_st_meta(st, "resadd.size"))) {
        int s = atoi(v);
        if (s < 32 || s > 1024) return rd_err_set(err, RD_ERR_FORMAT, "model file: bad resadd.size %s", v);
        if (m->opts.size && m->opts.size != s)
            return rd_err_set(err, RD_ERR_MISMATCH, "model was trained at size %d, %d requested", s, m->opts.size);
        m->opts.size = s;
    }
    if ((v = rd_st_meta(st, "resadd.residual"))) m->opts.resid = !strcmp(v, "sq") ? RD_RESID_SQUARED : RD_RESID_X_MINUS_NN;
    if ((v = rd_st_meta(st, "resadd.metric"))) m->opts.metric = !strcmp(v, "cosine") ? RD_POOL_COSINE : RD_POOL_L2;
    return RD_OK;
}

/* The learned model's provenance as a JSON object (what /v1/model and
 * `resad info` report): training data, shape, losses, evaluation summary.
 * Values that are JSON themselves (losses, eval) are embedded as objects. */
static char *learned_provenance(const rd_st_file *st)
{
    static const char *const keys[] = {"created", "train_classes", "train_manifest_sha256", "epochs", "stopped_early",
                                       "seed", "constraintor", "cstr_kernel", "flow_blocks", "flow_hidden", "residual",
                                       "metric", "final_losses", "eval"};
    json_t *o = json_object();
    char *txt = NULL;
    if (!o) return NULL;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char k[64];
        snprintf(k, sizeof k, "resadd.%s", keys[i]);
        const char *v = rd_st_meta(st, k);
        if (!v) continue;
        json_t *j = (v[0] == '{' || v[0] == '[') ? json_loads(v, 0, NULL) : NULL;
        json_object_set_new(o, keys[i], j ? j : json_string(v));
    }
    txt = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return txt;
}

/* Constraintor + flow per level, checked against the loaded backbone. */
static rd_status learned_load(rd_model *m, const rd_st_file *st, rd_err *err)
{
    const rd_model_info *in = &m->info;
    const char *sha = rd_st_meta(st, "resadd.backbone_sha256");
    const char *cs = rd_st_meta(st, "resadd.constraintor");
    int use_cstr = !cs || strcmp(cs, "off") != 0;
    if (!sha || strcmp(sha, m->bb->sha256))
        return rd_err_set(err, RD_ERR_MISMATCH,
                          "the model was trained on backbone %s (sha256 %.12s...), but the backbone loaded is "
                          "%s (sha256 %.12s...): pass the backbone it was trained with",
                          rd_st_meta(st, "resadd.backbone_arch") ? rd_st_meta(st, "resadd.backbone_arch") : "?",
                          sha ? sha : "?", m->bb->arch, m->bb->sha256);
    for (int l = 0; l < in->nlevels; l++) {
        char prefix[32];
        if (use_cstr) {
            snprintf(prefix, sizeof prefix, "level%d.cstr", l);
            m->cstr[l] = rd_cstr_import(st, prefix, err);
            if (!m->cstr[l]) return err ? err->code : RD_ERR_FORMAT;
            if (m->cstr[l]->c != in->level_c[l])
                return rd_err_set(err, RD_ERR_MISMATCH, "level %d: constraintor has %d channels, backbone %d", l,
                                  m->cstr[l]->c, in->level_c[l]);
            m->cplan[l] = rd_cstr_plan_new(m->cstr[l], err);
            if (!m->cplan[l]) return err ? err->code : RD_ERR_NOMEM;
        }
        snprintf(prefix, sizeof prefix, "level%d.flow", l);
        m->flow[l] = rd_flow_import(st, prefix, err);
        if (!m->flow[l]) return err ? err->code : RD_ERR_FORMAT;
        if (m->flow[l]->cfg.c != in->level_c[l])
            return rd_err_set(err, RD_ERR_MISMATCH, "level %d: flow has %d channels, backbone %d", l,
                              m->flow[l]->cfg.c, in->level_c[l]);
        m->fplan[l] = rd_flow_plan_new(m->flow[l], in->level_h[l], in->level_w[l], err);
        if (!m->fplan[l]) return err ? err->code : RD_ERR_NOMEM;
    }
    m->learned = 1;
    return RD_OK;
}

rd_model *rd_model_load(const rd_model_opts *o, rd_err *err)
{
    rd_model *m = NULL;
    rd_sha256 *h = NULL;
    rd_st_file *st = NULL;
    if (!o || !o->backbone_path) {
        rd_err_set(err, RD_ERR_ARG, "no backbone file given");
        return NULL;
    }
    if (o->size != 0 && (o->size < 32 || o->size > 1024)) {
        rd_err_set(err, RD_ERR_ARG, "image size %d out of range (32..1024)", o->size);
        return NULL;
    }
    if (o->topk_frac < 0 || o->topk_frac > 1 || !(o->sigma >= 0) || o->sigma > 64) {
        rd_err_set(err, RD_ERR_ARG, "topk fraction must be in [0,1] and sigma in [0,64]");
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->opts = *o;
    if (m->opts.max_shots < 2) m->opts.max_shots = 2;
    if (o->model_path) {
        st = rd_st_open(o->model_path, err); /* its errors name the file already */
        if (!st) goto fail;
        if (learned_meta(m, st, err) != RD_OK) {
            rd_err_prefix(err, "%s", o->model_path);
            goto fail;
        }
        snprintf(m->model_sha, sizeof m->model_sha, "%s", rd_st_sha256(st));
        const char *base = strrchr(o->model_path, '/');
        snprintf(m->model_file, sizeof m->model_file, "%s", base ? base + 1 : o->model_path);
        if (!(m->model_meta = learned_provenance(st))) goto nomem;
    }
    m->bb = rd_backbone_load(o->backbone_path, m->opts.levels_csv, err);
    if (!m->bb) goto fail;
    m->s = o->size ? o->size : (m->bb->default_size ? m->bb->default_size : 224);
    if (rd_graph_plan(m->bb->graph, m->s, &m->graph_scratch, err) != RD_OK) goto fail;
    {
        /* Parallelism comes from each worker's team (backbone, search, flow all
         * split their work across it); OpenBLAS runs single-threaded inside. */
        size_t team_bytes = rd_graph_scratch_team(m->bb->graph, m->opts.threads > 0 ? m->opts.threads : 1);
        if (team_bytes > m->graph_scratch) m->graph_scratch = team_bytes;
    }

    rd_model_info *in = &m->info;
    in->arch = m->bb->arch;
    in->backbone_sha256 = m->bb->sha256;
    in->scorer = "residual-norm";
    in->model_sha256 = m->model_sha;
    in->model_file = m->model_file;
    in->model_meta = m->model_meta ? m->model_meta : "";
    in->size = m->s;
    in->nlevels = m->bb->graph->nlevels;
    in->metric = metric_name(o->metric);
    in->resid = resid_name(o->resid);
    in->topk_frac = o->topk_frac;
    h = rd_sha256_new();
    if (!h) goto nomem;
    rd_sha256_update(h, m->bb->sha256, strlen(m->bb->sha256));
    for (int l = 0; l < in->nlevels; l++) {
        rd_graph_level_shape(m->bb->graph, l, &in->level_h[l], &in->level_w[l], &in->level_c[l]);
        in->level_names[l] = m->bb->level_names[l];
        m->level_n[l] = (size_t)in->level_h[l] * (size_t)in->level_w[l];
        rd_sha256_update(h, "|", 1);
        rd_sha256_update(h, m->bb->level_names[l], strlen(m->bb->level_names[l]));
    }
    {
        char sz[32];
        snprintf(sz, sizeof sz, "|S=%d", m->s);
        rd_sha256_update(h, sz, strlen(sz));
    }
    if (rd_sha256_final_hex(h, m->model_id) != 0) {
        h = NULL;
        goto nomem;
    }
    h = NULL;
    in->model_id = m->model_id;
    if (st) {
        if (learned_load(m, st, err) != RD_OK) {
            rd_err_prefix(err, "%s", o->model_path);
            goto fail;
        }
        in->scorer = "resad";
        rd_st_free(st);
        st = NULL;
    }
    m->worker_bytes = worker_bytes(m);
    rd_blas_set_threads(1);
    return m;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "out of memory loading the model");
fail:
    if (h) {
        char tmp[RD_SHA256_HEX];
        (void)rd_sha256_final_hex(h, tmp);
    }
    rd_st_free(st);
    rd_model_free(m);
    return NULL;
}

void rd_model_free(rd_model *m)
{
    if (!m) return;
    for (int l = 0; l < RD_MAX_LEVELS; l++) {
        rd_cstr_plan_free(m->cplan[l]);
        rd_cstr_free(m->cstr[l]);
        rd_flow_plan_free(m->fplan[l]);
        rd_flow_free(m->flow[l]);
    }
    rd_backbone_free(m->bb);
    free(m->model_meta);
    free(m);
}

const rd_model_info *rd_model_get_info(const rd_model *m) { return &m->info; }
double rd_model_backbone_macs(const rd_model *m) { return rd_graph_macs(m->bb->graph); }

rd_worker *rd_worker_new(const rd_model *m, rd_err *err)
{
    rd_worker *w = calloc(1, sizeof *w);
    if (!w) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory creating a worker");
        return NULL;
    }
    w->m = m;
    w->team = rd_team_new(m->opts.threads > 0 ? m->opts.threads : 1, err);
    if (!w->team) {
        rd_worker_free(w);
        return NULL;
    }
    if (rd_arena_init(&w->arena, m->worker_bytes, err) != RD_OK ||
        rd_arena_init(&w->pre, rd_preprocess_scratch(1024, 1024, m->s) * sizeof(float), err) != RD_OK) {
        rd_worker_free(w);
        return NULL;
    }
    return w;
}

void rd_worker_free(rd_worker *w)
{
    if (!w) return;
    rd_arena_release(&w->arena);
    rd_arena_release(&w->pre);
    rd_team_free(w->team);
    free(w);
}

/* Preprocess + backbone into level buffers taken from the worker's arena. */
static rd_status run_backbone(const rd_model *m, rd_worker *w, const rd_image *img, rd_tensor *lv,
                              rd_crop *crop, rd_timings *t, rd_err *err)
{
    const rd_model_info *in = &m->info;
    size_t need = rd_preprocess_scratch(img->w, img->h, m->s) * sizeof(float);
    float *input;
    double t0 = now_ms(), t1;
    if (w->pre.cap < need) {
        rd_arena_release(&w->pre);
        if (rd_arena_init(&w->pre, need, err) != RD_OK) return err ? err->code : RD_ERR_NOMEM;
    }
    rd_arena_reset(&w->pre);
    for (int l = 0; l < in->nlevels; l++) {
        lv[l].h = in->level_h[l];
        lv[l].w = in->level_w[l];
        lv[l].c = in->level_c[l];
        lv[l].data = rd_arena_floats(&w->arena, rd_tensor_numel(&lv[l]));
        if (!lv[l].data) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (levels)");
    }
    size_t mark = rd_arena_mark(&w->arena);
    input = rd_arena_floats(&w->arena, (size_t)m->s * m->s * 3);
    if (!input) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (input)");
    rd_status st = rd_preprocess(img, m->s, m->bb->mean, m->bb->std, input, crop, &w->pre, err);
    if (st != RD_OK) return st;
    t1 = now_ms();
    if (t) t->preprocess += t1 - t0;
    st = rd_graph_forward_team(m->bb->graph, input, &w->arena, w->team, lv, err);
    if (t) t->backbone += now_ms() - t1;
    rd_arena_rewind(&w->arena, mark);
    return st;
}

rd_status rd_extract(const rd_model *m, rd_worker *w, const rd_image *img, rd_feats **out,
                     rd_timings *t, rd_err *err)
{
    rd_tensor lv[RD_MAX_LEVELS];
    rd_crop crop;
    rd_feats *f = NULL;
    rd_status st;
    *out = NULL;
    rd_arena_reset(&w->arena);
    st = run_backbone(m, w, img, lv, &crop, t, err);
    if (st != RD_OK) goto out;
    f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->crop = crop;
    f->img_w = img->w;
    f->img_h = img->h;
    f->nlevels = m->info.nlevels;
    for (int l = 0; l < f->nlevels; l++) {
        size_t n = rd_tensor_numel(&lv[l]);
        f->h[l] = lv[l].h;
        f->w[l] = lv[l].w;
        f->c[l] = lv[l].c;
        f->data[l] = malloc(n * sizeof(float));
        if (!f->data[l]) goto nomem;
        memcpy(f->data[l], lv[l].data, n * sizeof(float));
    }
    *out = f;
    f = NULL;
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory storing features");
out:
    rd_feats_free(f);
    rd_arena_reset(&w->arena);
    return st;
}

void rd_feats_free(rd_feats *f)
{
    if (!f) return;
    for (int l = 0; l < RD_MAX_LEVELS; l++) free(f->data[l]);
    free(f);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

rd_status rd_feats_serialize(const rd_feats *f, uint8_t **blob, size_t *len, rd_err *err)
{
    size_t n = 12 + 12 * (size_t)f->nlevels, total = n;
    uint8_t *b, *p;
    for (int l = 0; l < f->nlevels; l++) total += (size_t)f->h[l] * f->w[l] * f->c[l] * 4;
    b = malloc(total);
    if (!b) return rd_err_set(err, RD_ERR_NOMEM, "out of memory serializing features");
    put_u32(b, FEATS_MAGIC);
    put_u32(b + 4, FEATS_VERSION);
    put_u32(b + 8, (uint32_t)f->nlevels);
    p = b + 12;
    for (int l = 0; l < f->nlevels; l++, p += 12) {
        put_u32(p, (uint32_t)f->h[l]);
        put_u32(p + 4, (uint32_t)f->w[l]);
        put_u32(p + 8, (uint32_t)f->c[l]);
    }
    for (int l = 0; l < f->nlevels; l++) {
        size_t cnt = (size_t)f->h[l] * f->w[l] * f->c[l];
        for (size_t i = 0; i < cnt; i++, p += 4) {
            uint32_t u;
            memcpy(&u, &f->data[l][i], 4);
            put_u32(p, u);
        }
    }
    *blob = b;
    *len = total;
    return RD_OK;
}

rd_status rd_feats_deserialize(const rd_model *m, const uint8_t *blob, size_t len, rd_feats **out,
                               rd_err *err)
{
    const rd_model_info *in = &m->info;
    rd_feats *f = NULL;
    size_t need;
    const uint8_t *p;
    *out = NULL;
    if (len < 12 || get_u32(blob) != FEATS_MAGIC || get_u32(blob + 4) != FEATS_VERSION)
        return rd_err_set(err, RD_ERR_FORMAT, "stored features: bad header");
    if (get_u32(blob + 8) != (uint32_t)in->nlevels)
        return rd_err_set(err, RD_ERR_MISMATCH, "stored features: %u levels, model has %d",
                          get_u32(blob + 8), in->nlevels);
    need = 12 + 12 * (size_t)in->nlevels;
    if (len < need) return rd_err_set(err, RD_ERR_FORMAT, "stored features: truncated");
    for (int l = 0; l < in->nlevels; l++) {
        const uint8_t *q = blob + 12 + 12 * l;
        if (get_u32(q) != (uint32_t)in->level_h[l] || get_u32(q + 4) != (uint32_t)in->level_w[l] ||
            get_u32(q + 8) != (uint32_t)in->level_c[l])
            return rd_err_set(err, RD_ERR_MISMATCH, "stored features: level %d shape differs from model", l);
        need += m->level_n[l] * (size_t)in->level_c[l] * 4;
    }
    if (len != need) return rd_err_set(err, RD_ERR_FORMAT, "stored features: %zu bytes, expected %zu", len, need);
    f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->nlevels = in->nlevels;
    p = blob + 12 + 12 * (size_t)in->nlevels;
    for (int l = 0; l < in->nlevels; l++) {
        size_t cnt = m->level_n[l] * (size_t)in->level_c[l];
        f->h[l] = in->level_h[l];
        f->w[l] = in->level_w[l];
        f->c[l] = in->level_c[l];
        f->data[l] = malloc(cnt * sizeof(float));
        if (!f->data[l]) goto nomem;
        for (size_t i = 0; i < cnt; i++, p += 4) {
            uint32_t u = get_u32(p);
            memcpy(&f->data[l][i], &u, 4);
            if (!isfinite(f->data[l][i])) {
                rd_feats_free(f);
                return rd_err_set(err, RD_ERR_FORMAT, "stored features: non-finite value");
            }
        }
    }
    *out = f;
    return RD_OK;
nomem:
    rd_feats_free(f);
    return rd_err_set(err, RD_ERR_NOMEM, "out of memory loading stored features");
}

/* ---- scoring core shared by calibration and inspection ---- */

/* Raw per-position scores of one level's features x (n×c) against pool. */
static rd_status level_scores(const rd_model *m, rd_worker *w, int level, const rd_pool *pool, const float *x,
                              size_t n, int c, float *out, rd_timings *t, rd_err *err)
{
    size_t mark = rd_arena_mark(&w->arena);
    int32_t *idx = (int32_t *)rd_arena_alloc(&w->arena, n * sizeof(int32_t));
    float *d2 = rd_arena_floats(&w->arena, n);
    float *r = rd_arena_floats(&w->arena, n * (size_t)c);
    double t0 = now_ms(), t1;
    rd_status st;
    if (!idx || !d2 || !r) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (scores)");
    st = rd_pool_nearest(pool, x, n, idx, d2, w->team, &w->arena, err);
    if (st != RD_OK) goto out;
    t1 = now_ms();
    if (t) t->nn += t1 - t0;
    rd_residuals(x, pool->rows, idx, n, c, m->opts.resid, r);
    if (m->learned) {
        const rd_model_info *in = &m->info;
        const float *e = r;
        if (m->cplan[level]) {
            float *eb = rd_arena_floats(&w->arena, n * (size_t)c);
            if (!eb) {
                st = rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (constraintor)");
                goto out;
            }
            st = rd_cstr_plan_forward(m->cplan[level], r, in->level_h[level], in->level_w[level], eb, &w->arena, err);
            if (st != RD_OK) goto out;
            e = eb;
        }
        st = rd_flow_plan_lpc_team(m->fplan[level], e, out, w->team, &w->arena, err);
        if (st != RD_OK) goto out;
        for (size_t i = 0; i < n; i++) out[i] = -out[i]; /* higher = more anomalous */
        if (t) t->learned += now_ms() - t1;
    } else {
        rd_score_residual_norm(r, n, c, out);
    }
    if (t) t->score += now_ms() - t1;
out:
    rd_arena_rewind(&w->arena, mark);
    return st;
}

/* Calibrated, combined, blurred S×S map from per-level raw scores; returns the image score. */
static float assemble(const rd_model *m, rd_worker *w, float *const *lvl_scores, const float *mu,
                      const float *sigma, float *map)
{
    const rd_model_info *in = &m->info;
    const size_t ss = (size_t)m->s * m->s;
    size_t mark = rd_arena_mark(&w->arena);
    float *tmp = rd_arena_floats(&w->arena, ss);
    memset(map, 0, ss * sizeof(float));
    for (int l = 0; l < in->nlevels; l++)
        rd_score_accumulate(lvl_scores[l], in->level_h[l], in->level_w[l], mu[l], sigma[l],
                            1.0f / (float)in->nlevels, map, m->s, tmp);
    if (m->opts.sigma > 0) rd_gauss_blur(map, m->s, m->s, m->opts.sigma, tmp);
    float score = rd_score_image(map, ss, m->opts.topk_frac, tmp);
    rd_arena_rewind(&w->arena, mark);
    return score;
}

static void refset_free(rd_refset *r)
{
    if (!r) return;
    for (int l = 0; l < RD_MAX_LEVELS; l++) rd_pool_free(r->pool[l]);
    free(r->loo);
    free(r);
}

static rd_status check_feats(const rd_model *m, const rd_feats *f, rd_err *err)
{
    const rd_model_info *in = &m->info;
    if (!f || f->nlevels != in->nlevels) return rd_err_set(err, RD_ERR_MISMATCH, "features do not match the model");
    for (int l = 0; l < in->nlevels; l++)
        if (f->h[l] != in->level_h[l] || f->w[l] != in->level_w[l] || f->c[l] != in->level_c[l] || !f->data[l])
            return rd_err_set(err, RD_ERR_MISMATCH, "features do not match the model (level %d)", l);
    return RD_OK;
}

rd_refset *rd_refset_build(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, rd_err *err)
{
    const rd_model_info *in = &m->info;
    rd_refset *r = NULL;
    const float *blocks[64];
    size_t rows[64];
    float *scores[RD_MAX_LEVELS] = {0};
    float *map = NULL;
    int L = in->nlevels;

    if (k < 2) {
        rd_err_set(err, RD_ERR_STATE, "a class needs at least 2 reference images (has %d)", k);
        return NULL;
    }
    if (k > 64 || k > m->opts.max_shots) {
        rd_err_set(err, RD_ERR_LIMIT, "%d reference images: at most %d are supported", k,
                   m->opts.max_shots < 64 ? m->opts.max_shots : 64);
        return NULL;
    }
    for (int i = 0; i < k; i++)
        if (check_feats(m, refs[i], err) != RD_OK) return NULL;
    r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    atomic_init(&r->refs, 1);
    r->k = k;
    r->nlevels = L;
    r->loo = calloc((size_t)k, sizeof(float));
    map = malloc((size_t)m->s * m->s * sizeof(float));
    if (!r->loo || !map) goto nomem;
    for (int l = 0; l < L; l++) {
        scores[l] = malloc((size_t)k * m->level_n[l] * sizeof(float));
        if (!scores[l]) goto nomem;
    }
    /* Leave-one-out: score each reference against the pool of the others. */
    rd_arena_reset(&w->arena);
    for (int i = 0; i < k; i++) {
        for (int l = 0; l < L; l++) {
            int nb = 0;
            rd_pool *p;
            for (int j = 0; j < k; j++)
                if (j != i) {
                    blocks[nb] = refs[j]->data[l];
                    rows[nb++] = m->level_n[l];
                }
            p = rd_pool_new(blocks, rows, nb, in->level_c[l], m->opts.metric, err);
            if (!p) goto fail;
            rd_status st = level_scores(m, w, l, p, refs[i]->data[l], m->level_n[l], in->level_c[l],
                                        scores[l] + (size_t)i * m->level_n[l], NULL, err);
            rd_pool_free(p);
            if (st != RD_OK) goto fail;
        }
    }
    for (int l = 0; l < L; l++) {
        double mu, sd;
        rd_score_moments(scores[l], (size_t)k * m->level_n[l], &mu, &sd);
        r->mu[l] = (float)mu;
        r->sigma[l] = sd > 1e-6 ? (float)sd : 1e-6f;
    }
    for (int i = 0; i < k; i++) {
        float *lv[RD_MAX_LEVELS];
        for (int l = 0; l < L; l++) lv[l] = scores[l] + (size_t)i * m->level_n[l];
        r->loo[i] = assemble(m, w, lv, r->mu, r->sigma, map);
    }
    {
        /* Default threshold: mean + 3·sd of the leave-one-out image scores, with
         * sd floored at 10% of |mean| (k is small), never below their max.
         * References scored against k−1 others score a little higher than a
         * normal test image scored against all k, so this errs towards fewer
         * false alarms.  Users tune it per class. */
        double mu, sd, mx = r->loo[0];
        rd_score_moments(r->loo, (size_t)k, &mu, &sd);
        for (int i = 1; i < k; i++)
            if (r->loo[i] > mx) mx = r->loo[i];
        if (sd < 0.1 * fabs(mu)) sd = 0.1 * fabs(mu);
        r->threshold = (float)fmax(mu + 3 * sd, mx);
    }
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < k; j++) {
            blocks[j] = refs[j]->data[l];
            rows[j] = m->level_n[l];
        }
        r->pool[l] = rd_pool_new(blocks, rows, k, in->level_c[l], m->opts.metric, err);
        if (!r->pool[l]) goto fail;
    }
    goto out;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "out of memory building the reference set");
fail:
    refset_free(r);
    r = NULL;
out:
    for (int l = 0; l < RD_MAX_LEVELS; l++) free(scores[l]);
    free(map);
    rd_arena_reset(&w->arena);
    return r;
}

rd_refset *rd_refset_ref(rd_refset *r)
{
    if (r) atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void rd_refset_unref(rd_refset *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) refset_free(r);
}

int rd_refset_shots(const rd_refset *r) { return r->k; }
float rd_refset_threshold(const rd_refset *r) { return r->threshold; }
const float *rd_refset_loo_scores(const rd_refset *r) { return r->loo; }

/* Scores level features lv (in the worker's arena or caller memory) into out. */
static rd_status score_levels(const rd_model *m, rd_worker *w, const rd_refset *r, float *const *lv,
                              float threshold_override, rd_result *out, rd_err *err)
{
    const rd_model_info *in = &m->info;
    float *scores[RD_MAX_LEVELS];
    const size_t ss = (size_t)m->s * m->s;
    rd_status st;
    for (int l = 0; l < in->nlevels; l++) {
        scores[l] = rd_arena_floats(&w->arena, m->level_n[l]);
        if (!scores[l]) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (maps)");
        st = level_scores(m, w, l, r->pool[l], lv[l], m->level_n[l], in->level_c[l], scores[l], &out->t, err);
        if (st != RD_OK) return st;
    }
    double t1 = now_ms();
    out->score = assemble(m, w, scores, r->mu, r->sigma, out->map);
    out->t.score += now_ms() - t1;
    out->threshold = isnan(threshold_override) ? r->threshold : threshold_override;
    out->anomalous = out->score >= out->threshold;
    out->scorer = in->scorer;
    out->s = m->s;
    out->map_min = out->map_max = out->map[0];
    for (size_t i = 1; i < ss; i++) {
        if (out->map[i] > out->map_max) out->map_max = out->map[i];
        if (out->map[i] < out->map_min) out->map_min = out->map[i];
    }
    return RD_OK;
}

static rd_status result_begin(const rd_model *m, const rd_refset *r, rd_result *out, rd_err *err)
{
    memset(out, 0, sizeof *out);
    if (r->nlevels != m->info.nlevels)
        return rd_err_set(err, RD_ERR_MISMATCH, "reference set built for another model");
    out->map = malloc((size_t)m->s * m->s * sizeof(float));
    if (!out->map) return rd_err_set(err, RD_ERR_NOMEM, "out of memory for the anomaly map");
    return RD_OK;
}

rd_status rd_inspect(const rd_model *m, rd_worker *w, const rd_refset *r, const rd_image *img,
                     float threshold_override, rd_result *out, rd_err *err)
{
    rd_tensor lv[RD_MAX_LEVELS];
    float *lvp[RD_MAX_LEVELS];
    double t0 = now_ms();
    rd_status st = result_begin(m, r, out, err);
    if (st != RD_OK) return st;
    rd_arena_reset(&w->arena);
    st = run_backbone(m, w, img, lv, &out->crop, &out->t, err);
    for (int l = 0; st == RD_OK && l < m->info.nlevels; l++) lvp[l] = lv[l].data;
    if (st == RD_OK) st = score_levels(m, w, r, lvp, threshold_override, out, err);
    rd_arena_reset(&w->arena);
    if (st != RD_OK) {
        rd_result_release(out);
        return st;
    }
    out->img_w = img->w;
    out->img_h = img->h;
    out->t.total = now_ms() - t0;
    return RD_OK;
}

rd_status rd_inspect_feats(const rd_model *m, rd_worker *w, const rd_refset *r, const rd_feats *f,
                           float threshold_override, rd_result *out, rd_err *err)
{
    double t0 = now_ms();
    rd_status st = check_feats(m, f, err);
    if (st != RD_OK) return st;
    st = result_begin(m, r, out, err);
    if (st != RD_OK) return st;
    rd_arena_reset(&w->arena);
    st = score_levels(m, w, r, f->data, threshold_override, out, err);
    rd_arena_reset(&w->arena);
    if (st != RD_OK) {
        rd_result_release(out);
        return st;
    }
    out->crop = f->crop;
    out->img_w = f->img_w;
    out->img_h = f->img_h;
    out->t.total = now_ms() - t0;
    return RD_OK;
}

void rd_result_release(rd_result *res)
{
    if (!res) return;
    free(res->map);
    res->map = NULL;
}

void rd_result_heat_params(const rd_result *res, rd_heat_params *p)
{
    p->lo = 0.0f;
    p->hi = fmaxf(2.0f * res->threshold, res->map_max);
    if (!(p->hi > p->lo)) p->hi = p->lo + 1.0f;
    p->threshold = res->threshold;
    p->out_w = res->img_w;
    p->out_h = res->img_h;
}
