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
#include <pthread.h>
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
#define FEATS_VERSION 2u
#define FEATS_VERSION_F16 3u /* version 2's layout, values fp16 (refblob.h) */

/* One working grid of the model: the backbone graph planned at h×w and the
 * flows planned at its level sizes.  Grid 0 is the default S×S one, made at
 * load; others are made on first use and live as long as the model. */
typedef struct rd_grid {
    int w, h;
    rd_graph *graph; /* grid 0: the backbone's own graph; else a rd_graph_share copy (owned) */
    size_t graph_scratch;
    int pad;         /* input pixels mirrored on each side (the model's input_pad); the graph runs at h+2p × w+2p */
    int glh[RD_MAX_LEVELS], glw[RD_MAX_LEVELS], loff[RD_MAX_LEVELS]; /* its level shapes and the margin cropped off */
    int lh[RD_MAX_LEVELS], lw[RD_MAX_LEVELS];
    size_t ln[RD_MAX_LEVELS];
    rd_flow_plan *fplan[RD_MAX_LEVELS]; /* learned only; grid 0's are the model's */
    size_t worker_bytes;
} rd_grid;

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
    rd_grid grids[RD_MAX_GRIDS];
    int pad, pad_meta;  /* input pad in use; the model file's resadd.input_pad (0 without) */
    atomic_int ngrids; /* published grids; grids[i < ngrids] never change */
    pthread_mutex_t grid_mu;
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
    rd_geometry geo;
    const rd_grid *grid;
    rd_pool_grid *pool[RD_MAX_LEVELS]; /* global, or local per tile (pool.h) */
    float mu[RD_MAX_LEVELS], sigma[RD_MAX_LEVELS];
    /* calibration variants (score.h): per-position mean/sd at level resolution
     * (position), the LOO score of every pool row as a 1-channel pool of the
     * same layout and its level mean (neighbour); NULL under global */
    float *pmu[RD_MAX_LEVELS], *psd[RD_MAX_LEVELS];
    rd_pool_grid *lvals[RD_MAX_LEVELS];
    float lmu[RD_MAX_LEVELS];
    float *loo;      /* k leave-one-out image scores */
    float threshold;
    uint8_t *roi;    /* ROI mask on the grid (rd_geometry_roi_grid), NULL = the whole ROI rectangle */
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
    o->calib = RD_SCORE_CALIB_GLOBAL;
    o->calib_alpha = 1.0f;
    o->calib_smooth = 1.0f;
    o->input_pad = -1;
}

static size_t worker_bytes(const rd_model *m, const rd_grid *gd)
{
    const rd_model_info *in = &m->info;
    const size_t ss = (size_t)gd->w * (size_t)gd->h;
    size_t b = gd->graph_scratch + rd_arena_need((size_t)(gd->w + 2 * gd->pad) * (gd->h + 2 * gd->pad) * 3 * sizeof(float));
    size_t maxn = 0, maxnc = 0, maxc = 0;
    for (int l = 0; gd->pad && l < in->nlevels; l++) /* the graph's padded level outputs, before the crop */
        b += rd_arena_need((size_t)gd->glh[l] * gd->glw[l] * in->level_c[l] * sizeof(float));
    for (int l = 0; l < in->nlevels; l++) {
        size_t nc = gd->ln[l] * (size_t)in->level_c[l];
        b += rd_arena_need(nc * sizeof(float));                 /* level features */
        b += rd_arena_need(gd->ln[l] * sizeof(float));      /* level scores */
        if (gd->ln[l] > maxn) maxn = gd->ln[l];
        if (nc > maxnc) maxnc = nc;
        if ((size_t)in->level_c[l] > maxc) maxc = (size_t)in->level_c[l];
    }
    /* per level, reused: residuals, nn idx, dist, level map */
    b += rd_arena_need(maxnc * sizeof(float)) + 3 * rd_arena_need(maxn * sizeof(float));
    b += rd_pool_scratch_bytes((int)maxc, maxn);
    /* local search: one tile's gathered queries and their residuals */
    b += 2 * rd_arena_need(maxnc * sizeof(float)) + rd_arena_need(maxn * sizeof(float) * 2);
    /* accumulated map, upsample tmp, blur tmp, top-k tmp */
    b += 4 * rd_arena_need(ss * sizeof(float));
    if (m->learned) {
        size_t extra = 0;
        int team = m->opts.threads > 0 ? m->opts.threads : 1;
        for (int l = 0; l < in->nlevels; l++) {
            size_t e = rd_arena_need(gd->ln[l] * (size_t)in->level_c[l] * sizeof(float)) +
                       rd_arena_need(gd->ln[l] * sizeof(float));
            size_t cs = m->cplan[l] ? rd_cstr_plan_scratch(m->cplan[l], gd->lh[l], gd->lw[l]) : 0;
            size_t fs = rd_flow_plan_scratch_team(gd->fplan[l], team);
            e += cs > fs ? cs : fs;
            if (e > extra) extra = e;
        }
        b += extra;
    }
    return b + 4096;
}

/* Plans g for the grid's input (h + 2·pad) × (w + 2·pad) and derives the level
 * shapes: the graph's, less the mirrored margin (pad / the level's stride) on
 * each side.  pad is a multiple of every level's stride (rd_model_load). */
static rd_status grid_plan(const rd_model *m, rd_grid *gd, rd_graph *g, rd_err *err)
{
    const int P = m->pad;
    gd->pad = P;
    if (rd_graph_plan_hw(g, gd->h + 2 * P, gd->w + 2 * P, &gd->graph_scratch, err) != RD_OK)
        return err ? err->code : RD_ERR_INTERNAL;
    size_t team_bytes = rd_graph_scratch_team(g, m->opts.threads > 0 ? m->opts.threads : 1);
    if (team_bytes > gd->graph_scratch) gd->graph_scratch = team_bytes;
    for (int l = 0; l < m->info.nlevels; l++) {
        int c;
        rd_graph_level_shape(g, l, &gd->glh[l], &gd->glw[l], &c);
        int stride = gd->glh[l] > 0 ? (gd->h + 2 * P) / gd->glh[l] : 0;
        gd->loff[l] = stride > 0 ? P / stride : 0;
        gd->lh[l] = gd->glh[l] - 2 * gd->loff[l];
        gd->lw[l] = gd->glw[l] - 2 * gd->loff[l];
        if (gd->lh[l] < 1 || gd->lw[l] < 1)
            return rd_err_set(err, RD_ERR_INTERNAL, "grid %dx%d: level %d is empty after the input pad", gd->w, gd->h, l);
        gd->ln[l] = (size_t)gd->lh[l] * (size_t)gd->lw[l];
    }
    return RD_OK;
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
    if ((v = rd_st_meta(st, "resadd.input_pad"))) {
        char *e;
        long p = strtol(v, &e, 10);
        if (*e || p < 0 || p > RD_MAX_INPUT_PAD) return rd_err_set(err, RD_ERR_FORMAT, "model file: bad resadd.input_pad %s", v);
        m->pad_meta = (int)p;
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
                                       "seed", "constraintor", "cstr_kernel", "flow_blocks", "flow_hidden", "flow_pos", "train_frame", "residual",
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
    if (o->topk_frac < 0 || o->topk_frac > 1 || !(o->sigma >= 0) || o->sigma > 64 || (unsigned)o->calib > RD_SCORE_CALIB_EDGE ||
        !(o->calib_alpha >= 0 && o->calib_alpha <= 1) || !(o->calib_smooth >= 0 && o->calib_smooth <= 16)) {
        rd_err_set(err, RD_ERR_ARG, "topk fraction must be in [0,1], sigma in [0,64], calibration alpha in [0,1] and "
                                    "its smoothing in [0,16]");
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    pthread_mutex_init(&m->grid_mu, NULL);
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
        if (in->level_h[l] > 0 && m->s / in->level_h[l] > in->stride) in->stride = m->s / in->level_h[l];
        rd_sha256_update(h, "|", 1);
        rd_sha256_update(h, m->bb->level_names[l], strlen(m->bb->level_names[l]));
    }
    m->pad = m->opts.input_pad >= 0 ? m->opts.input_pad : m->pad_meta;
    if (m->pad > RD_MAX_INPUT_PAD || (in->stride > 0 && m->pad % in->stride)) {
        rd_err_set(err, RD_ERR_ARG, "input pad %d: want a multiple of the backbone's stride %d up to %d", m->pad,
                   in->stride, RD_MAX_INPUT_PAD);
        goto fail;
    }
    in->input_pad = m->pad;
    {
        char sz[32];
        snprintf(sz, sizeof sz, "|S=%d", m->s);
        rd_sha256_update(h, sz, strlen(sz));
        if (m->pad) { /* other features: stored ones of another pad are not reused */
            snprintf(sz, sizeof sz, "|P=%d", m->pad);
            rd_sha256_update(h, sz, strlen(sz));
        }
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
    {
        rd_grid *g0 = &m->grids[0];
        g0->w = g0->h = m->s;
        g0->graph = m->bb->graph;
        g0->graph_scratch = m->graph_scratch;
        for (int l = 0; l < in->nlevels; l++) {
            g0->glh[l] = g0->lh[l] = in->level_h[l];
            g0->glw[l] = g0->lw[l] = in->level_w[l];
            g0->ln[l] = m->level_n[l];
            g0->fplan[l] = m->fplan[l];
        }
        if (m->pad) { /* the backbone's graph re-planned at S + 2·pad; the level shapes stay */
            if (grid_plan(m, g0, g0->graph, err) != RD_OK) goto fail;
            for (int l = 0; l < in->nlevels; l++)
                if (g0->lh[l] != in->level_h[l] || g0->lw[l] != in->level_w[l]) {
                    rd_err_set(err, RD_ERR_INTERNAL, "input pad %d: level %d is %dx%d, not %dx%d", m->pad, l,
                               g0->lh[l], g0->lw[l], in->level_h[l], in->level_w[l]);
                    goto fail;
                }
        }
        g0->worker_bytes = worker_bytes(m, g0);
        m->worker_bytes = g0->worker_bytes;
        atomic_store(&m->ngrids, 1);
    }
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
    for (int i = 1; i < atomic_load(&m->ngrids); i++) {
        rd_graph_free(m->grids[i].graph);
        for (int l = 0; l < RD_MAX_LEVELS; l++) rd_flow_plan_free(m->grids[i].fplan[l]);
    }
    for (int l = 0; l < RD_MAX_LEVELS; l++) {
        rd_cstr_plan_free(m->cplan[l]);
        rd_cstr_free(m->cstr[l]);
        rd_flow_plan_free(m->fplan[l]);
        rd_flow_free(m->flow[l]);
    }
    rd_backbone_free(m->bb);
    free(m->model_meta);
    pthread_mutex_destroy(&m->grid_mu);
    free(m);
}

const rd_model_info *rd_model_get_info(const rd_model *m) { return &m->info; }
double rd_model_backbone_macs(const rd_model *m) { return rd_graph_macs(m->bb->graph); }

rd_status rd_model_geometry(const rd_model *m, int frame_w, int frame_h, const rd_geo_opts *o, rd_geometry *g,
                            rd_err *err)
{
    return rd_geometry_init(g, frame_w, frame_h, o, m->s, m->info.stride, err);
}

/* The model's plan for a w×h working grid, made on first use.  The grid table
 * is the one mutable part of a loaded model: appended under grid_mu, read
 * without it (entries below ngrids never change). */
static const rd_grid *model_grid(const rd_model *cm, int w, int h, rd_err *err)
{
    rd_model *m = (rd_model *)cm;
    const rd_model_info *in = &m->info;
    int n = atomic_load_explicit(&m->ngrids, memory_order_acquire);
    rd_grid *gd = NULL;
    for (int i = 0; i < n; i++)
        if (m->grids[i].w == w && m->grids[i].h == h) return &m->grids[i];
    pthread_mutex_lock(&m->grid_mu);
    n = atomic_load_explicit(&m->ngrids, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (m->grids[i].w == w && m->grids[i].h == h) {
            gd = &m->grids[i];
            goto out;
        }
    if (n >= RD_MAX_GRIDS) {
        rd_err_set(err, RD_ERR_LIMIT, "the model already serves %d working grids; %dx%d is one too many", n, w, h);
        goto out;
    }
    gd = &m->grids[n];
    memset(gd, 0, sizeof *gd);
    gd->w = w;
    gd->h = h;
    if (!(gd->graph = rd_graph_share(m->bb->graph, err)) || grid_plan(m, gd, gd->graph, err) != RD_OK) goto fail;
    for (int l = 0; l < in->nlevels; l++) {
        if (m->learned &&
            !(gd->fplan[l] = rd_flow_plan_new_at(m->flow[l], gd->lh[l], gd->lw[l], in->level_h[l], in->level_w[l], err)))
            goto fail;
    }
    gd->worker_bytes = worker_bytes(m, gd);
    atomic_store_explicit(&m->ngrids, n + 1, memory_order_release);
    goto out;
fail:
    rd_graph_free(gd->graph);
    for (int l = 0; l < RD_MAX_LEVELS; l++) rd_flow_plan_free(gd->fplan[l]);
    memset(gd, 0, sizeof *gd);
    gd = NULL;
out:
    pthread_mutex_unlock(&m->grid_mu);
    return gd;
}

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

void rd_worker_share(rd_worker *w, rd_cores *cores) { rd_team_share(w->team, cores); }
void rd_worker_busy(rd_worker *w, int busy) { rd_team_busy(w->team, busy); }

void rd_worker_free(rd_worker *w)
{
    if (!w) return;
    rd_arena_release(&w->arena);
    rd_arena_release(&w->pre);
    rd_team_free(w->team);
    free(w);
}

/* Grows the worker's arena to what grid gd needs (between calls only). */
static rd_status worker_fit(rd_worker *w, const rd_grid *gd, rd_err *err)
{
    if (w->arena.cap >= gd->worker_bytes) return RD_OK;
    rd_arena_release(&w->arena);
    return rd_arena_init(&w->arena, gd->worker_bytes, err);
}

/* The legacy square crop of a view (eval/train masks at S×S); s = 0 when the
 * grid is not square or padded. */
static void view_crop(const rd_view *v, rd_crop *c)
{
    memset(c, 0, sizeof *c);
    if (v->work_w != v->work_h || v->dst_w != v->work_w || v->dst_h != v->work_h) return;
    c->s = v->work_w;
    c->resized_w = (int)lround(v->work_w / v->src_w);
    c->resized_h = (int)lround(v->work_h / v->src_h);
    c->off_x = (int)lround(v->src_x * c->resized_w);
    c->off_y = (int)lround(v->src_y * c->resized_h);
    c->x = v->src_x * v->img_w;
    c->y = v->src_y * v->img_h;
    c->w = v->src_w * v->img_w;
    c->h = v->src_h * v->img_h;
}

/* Mirror index into [0, n) (d c b a | a b c d | d c b a). */
static int mirror(int i, int n)
{
    if (n == 1) return 0;
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Fills the grid outside the view's destination rectangle by mirroring the
 * content (fit pad): the bars are not inspected, and mirrored texture keeps
 * the backbone from seeing an edge the references never had. */
static void pad_reflect(float *in, int W, int H, const rd_view *v)
{
    for (int y = v->dst_y; y < v->dst_y + v->dst_h; y++)
        for (int x = 0; x < W; x++) {
            if (x >= v->dst_x && x < v->dst_x + v->dst_w) continue;
            int sx = v->dst_x + mirror(x - v->dst_x, v->dst_w);
            memcpy(in + ((size_t)y * W + x) * 3, in + ((size_t)y * W + sx) * 3, 3 * sizeof(float));
        }
    for (int y = 0; y < H; y++) {
        if (y >= v->dst_y && y < v->dst_y + v->dst_h) continue;
        int sy = v->dst_y + mirror(y - v->dst_y, v->dst_h);
        memcpy(in + (size_t)y * W * 3, in + (size_t)sy * W * 3, (size_t)W * 3 * sizeof(float));
    }
}

/* Preprocess (the view's source rectangle resized onto its destination
 * rectangle, the rest mirrored from it) + backbone
 * into level buffers taken from the worker's arena. */
static rd_status run_backbone(const rd_model *m, rd_worker *w, const rd_grid *gd, const rd_view *view,
                              const rd_image *img, rd_tensor *lv, rd_timings *t, rd_err *err)
{
    const rd_model_info *in = &m->info;
    const int P = gd->pad, dw = view->dst_w, dh = view->dst_h, W = gd->w + 2 * P, H = gd->h + 2 * P;
    rd_view pv = *view; /* the view on the padded input */
    rd_rect r;
    rd_image sub = *img;
    float *input, lut[3][256];
    uint8_t *u8;
    double t0 = now_ms(), t1;
    rd_view_src_pixels(view, img->w, img->h, &r);
    size_t need = (size_t)r.w * r.h * 3 + (size_t)dw * dh * 3 +
                  rd_preprocess_scratch(r.w, r.h, dw > dh ? dw : dh) * sizeof(float) + 4 * RD_ARENA_ALIGN;
    if (w->pre.cap < need) {
        rd_arena_release(&w->pre);
        if (rd_arena_init(&w->pre, need, err) != RD_OK) return err ? err->code : RD_ERR_NOMEM;
    }
    rd_arena_reset(&w->pre);
    for (int l = 0; l < in->nlevels; l++) {
        lv[l].h = gd->lh[l];
        lv[l].w = gd->lw[l];
        lv[l].c = in->level_c[l];
        lv[l].data = rd_arena_floats(&w->arena, rd_tensor_numel(&lv[l]));
        if (!lv[l].data) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (levels)");
    }
    size_t mark = rd_arena_mark(&w->arena);
    input = rd_arena_floats(&w->arena, (size_t)W * H * 3);
    if (!input) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (input)");
    pv.dst_x += P;
    pv.dst_y += P;
    pv.work_w = W;
    pv.work_h = H;
    if (r.x || r.y || r.w != img->w || r.h != img->h) {
        sub.w = r.w;
        sub.h = r.h;
        sub.rgb = rd_arena_alloc(&w->pre, (size_t)r.w * r.h * 3);
        if (!sub.rgb) return rd_err_set(err, RD_ERR_INTERNAL, "preprocess scratch too small");
        for (int y = 0; y < r.h; y++)
            memcpy(sub.rgb + (size_t)y * r.w * 3, img->rgb + ((size_t)(r.y + y) * img->w + r.x) * 3, (size_t)r.w * 3);
    }
    u8 = rd_arena_alloc(&w->pre, (size_t)dw * dh * 3);
    if (!u8) return rd_err_set(err, RD_ERR_INTERNAL, "preprocess scratch too small");
    rd_status st = rd_resize_u8(&sub, dw, dh, u8, &w->pre, err);
    if (st != RD_OK) return st;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - m->bb->mean[c]) / m->bb->std[c];
    for (int j = 0; j < dh; j++) {
        const uint8_t *src = u8 + (size_t)j * dw * 3;
        float *dst = input + ((size_t)(pv.dst_y + j) * W + pv.dst_x) * 3;
        for (int i = 0; i < dw * 3; i += 3) {
            dst[i] = lut[0][src[i]];
            dst[i + 1] = lut[1][src[i + 1]];
            dst[i + 2] = lut[2][src[i + 2]];
        }
    }
    if (dw != W || dh != H) pad_reflect(input, W, H, &pv);
    t1 = now_ms();
    if (t) t->preprocess += t1 - t0;
    if (!P) {
        st = rd_graph_forward_team(gd->graph, input, &w->arena, w->team, lv, err);
    } else { /* the graph's levels over the padded input, then the margin cropped off */
        rd_tensor plv[RD_MAX_LEVELS];
        for (int l = 0; l < in->nlevels; l++) {
            plv[l] = (rd_tensor){.h = gd->glh[l], .w = gd->glw[l], .c = in->level_c[l]};
            if (!(plv[l].data = rd_arena_floats(&w->arena, rd_tensor_numel(&plv[l]))))
                return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (padded levels)");
        }
        st = rd_graph_forward_team(gd->graph, input, &w->arena, w->team, plv, err);
        for (int l = 0; st == RD_OK && l < in->nlevels; l++) {
            const size_t row = (size_t)lv[l].w * lv[l].c;
            for (int y = 0; y < lv[l].h; y++)
                memcpy(lv[l].data + (size_t)y * row,
                       plv[l].data + (((size_t)(y + gd->loff[l]) * plv[l].w) + gd->loff[l]) * plv[l].c,
                       row * sizeof(float));
        }
    }
    if (t) t->backbone += now_ms() - t1;
    rd_arena_rewind(&w->arena, mark);
    return st;
}

rd_status rd_extract_geo(const rd_model *m, rd_worker *w, const rd_geometry *g, const rd_image *img,
                         rd_feats **out, rd_timings *t, rd_err *err)
{
    rd_tensor lv[RD_MAX_LEVELS];
    rd_view view;
    rd_feats *f = NULL;
    const rd_grid *gd;
    rd_status st;
    *out = NULL;
    if (!img || !img->rgb || img->w < 1 || img->h < 1) return rd_err_set(err, RD_ERR_ARG, "bad image");
    if (g->stride != m->info.stride)
        return rd_err_set(err, RD_ERR_MISMATCH, "geometry has grid stride %d, the model %d", g->stride, m->info.stride);
    st = rd_view_for_image(g, img->w, img->h, &view, err);
    if (st != RD_OK) return st;
    if (!(gd = model_grid(m, g->work_w, g->work_h, err))) return err ? err->code : RD_ERR_INTERNAL;
    if ((st = worker_fit(w, gd, err)) != RD_OK) return st;
    rd_arena_reset(&w->arena);
    st = run_backbone(m, w, gd, &view, img, lv, t, err);
    if (st != RD_OK) goto out;
    f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->geo = *g;
    f->view = view;
    view_crop(&view, &f->crop);
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

rd_status rd_extract(const rd_model *m, rd_worker *w, const rd_image *img, rd_feats **out, rd_timings *t,
                     rd_err *err)
{
    rd_geometry g;
    *out = NULL;
    if (!img || img->w < 1 || img->h < 1) return rd_err_set(err, RD_ERR_ARG, "bad image");
    rd_status st = rd_model_geometry(m, img->w, img->h, NULL, &g, err);
    if (st != RD_OK) return st;
    return rd_extract_geo(m, w, &g, img, out, t, err);
}

rd_status rd_extract_center(const rd_model *m, rd_worker *w, const rd_image *img, rd_feats **out, rd_timings *t,
                            rd_err *err)
{
    rd_geometry g;
    rd_geo_opts o = {0};
    *out = NULL;
    if (!img || img->w < 1 || img->h < 1) return rd_err_set(err, RD_ERR_ARG, "bad image");
    int side = img->w < img->h ? img->w : img->h;
    o.roi = (rd_rect){(img->w - side) / 2, (img->h - side) / 2, side, side};
    o.search_tile = -1;
    rd_status st = rd_model_geometry(m, img->w, img->h, &o, &g, err);
    if (st != RD_OK) return st;
    return rd_extract_geo(m, w, &g, img, out, t, err);
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

/* Version 2 header after magic/version: geometry text (RD_GEO_TEXT_MAX bytes,
 * NUL padded), image w, h, then nlevels and the shapes as in version 1.  The
 * view is recomputed from geometry + image size on load. */
#define FEATS_V2_HDR (8 + RD_GEO_TEXT_MAX + 8)

/* Version 2 (fp32) or, with f16 and every value in fp16 range, version 3
 * (the same layout with fp16 values, refblob.h). */
static rd_status feats_serialize(const rd_feats *f, int f16, uint8_t **blob, size_t *len, rd_err *err)
{
    size_t n = FEATS_V2_HDR + 4 + 12 * (size_t)f->nlevels, total = n;
    uint8_t *b, *p;
    for (int l = 0; l < f->nlevels && f16; l++) f16 = rd_f16_fits(f->data[l], (size_t)f->h[l] * f->w[l] * f->c[l]);
    for (int l = 0; l < f->nlevels; l++) total += (size_t)f->h[l] * f->w[l] * f->c[l] * (f16 ? 2 : 4);
    b = calloc(1, total);
    if (!b) return rd_err_set(err, RD_ERR_NOMEM, "out of memory serializing features");
    put_u32(b, FEATS_MAGIC);
    put_u32(b + 4, f16 ? FEATS_VERSION_F16 : FEATS_VERSION);
    rd_geometry_format(&f->geo, (char *)b + 8, RD_GEO_TEXT_MAX);
    put_u32(b + 8 + RD_GEO_TEXT_MAX, (uint32_t)f->img_w);
    put_u32(b + 12 + RD_GEO_TEXT_MAX, (uint32_t)f->img_h);
    p = b + FEATS_V2_HDR;
    put_u32(p, (uint32_t)f->nlevels);
    p += 4;
    for (int l = 0; l < f->nlevels; l++, p += 12) {
        put_u32(p, (uint32_t)f->h[l]);
        put_u32(p + 4, (uint32_t)f->w[l]);
        put_u32(p + 8, (uint32_t)f->c[l]);
    }
    for (int l = 0; l < f->nlevels; l++) {
        size_t cnt = (size_t)f->h[l] * f->w[l] * f->c[l];
        if (f16) {
            uint16_t hb[256];
            for (size_t i = 0; i < cnt; i += 256) {
                size_t m = cnt - i < 256 ? cnt - i : 256;
                rd_f16_encode(f->data[l] + i, hb, m);
                for (size_t j = 0; j < m; j++, p += 2) {
                    p[0] = (uint8_t)hb[j];
                    p[1] = (uint8_t)(hb[j] >> 8);
                }
            }
            continue;
        }
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

rd_status rd_feats_serialize(const rd_feats *f, uint8_t **blob, size_t *len, rd_err *err)
{
    return feats_serialize(f, 0, blob, len, err);
}

rd_status rd_feats_serialize_f16(const rd_feats *f, uint8_t **blob, size_t *len, rd_err *err)
{
    return feats_serialize(f, 1, blob, len, err);
}

int rd_feats_round_f16(rd_feats *f)
{
    for (int l = 0; l < f->nlevels; l++)
        if (!rd_f16_fits(f->data[l], (size_t)f->h[l] * f->w[l] * f->c[l])) return 0;
    for (int l = 0; l < f->nlevels; l++) rd_f16_round(f->data[l], (size_t)f->h[l] * f->w[l] * f->c[l]);
    return 1;
}

int rd_feats_blob_f16(const uint8_t *blob, size_t len)
{
    return len >= 8 && get_u32(blob) == FEATS_MAGIC && get_u32(blob + 4) == FEATS_VERSION_F16;
}

rd_status rd_feats_deserialize(const rd_model *m, const uint8_t *blob, size_t len, rd_feats **out,
                               rd_err *err)
{
    const rd_model_info *in = &m->info;
    rd_feats *f = NULL;
    rd_geometry geo;
    rd_view view;
    const rd_grid *gd;
    size_t need, off;
    const uint8_t *p;
    uint32_t ver, iw, ih;
    rd_status st;
    size_t esz;
    *out = NULL;
    if (len < 12 || get_u32(blob) != FEATS_MAGIC || ((ver = get_u32(blob + 4)) != 1u && ver != 2u && ver != FEATS_VERSION_F16))
        return rd_err_set(err, RD_ERR_FORMAT, "stored features: bad header");
    esz = ver == FEATS_VERSION_F16 ? 2 : 4;
    if (ver == 1u) {
        /* square S×S features from before whole-frame inspection */
        off = 8;
        iw = ih = (uint32_t)m->s;
        st = rd_model_geometry(m, m->s, m->s, NULL, &geo, err);
    } else {
        char txt[RD_GEO_TEXT_MAX];
        if (len < FEATS_V2_HDR + 4) return rd_err_set(err, RD_ERR_FORMAT, "stored features: truncated");
        memcpy(txt, blob + 8, sizeof txt);
        txt[sizeof txt - 1] = '\0';
        iw = get_u32(blob + 8 + RD_GEO_TEXT_MAX);
        ih = get_u32(blob + 12 + RD_GEO_TEXT_MAX);
        off = FEATS_V2_HDR;
        st = rd_geometry_parse(txt, &geo, err);
        if (st == RD_OK && geo.stride != in->stride)
            st = rd_err_set(err, RD_ERR_MISMATCH, "stored features: grid stride %d, the model's is %d", geo.stride,
                            in->stride);
    }
    if (st != RD_OK) return st;
    if (iw < 1 || ih < 1 || iw > 1000000 || ih > 1000000)
        return rd_err_set(err, RD_ERR_FORMAT, "stored features: bad image size %ux%u", iw, ih);
    if ((st = rd_view_for_image(&geo, (int)iw, (int)ih, &view, err)) != RD_OK) return st;
    if (!(gd = model_grid(m, geo.work_w, geo.work_h, err))) return err ? err->code : RD_ERR_INTERNAL;
    if (get_u32(blob + off) != (uint32_t)in->nlevels)
        return rd_err_set(err, RD_ERR_MISMATCH, "stored features: %u levels, model has %d", get_u32(blob + off),
                          in->nlevels);
    need = off + 4 + 12 * (size_t)in->nlevels;
    if (len < need) return rd_err_set(err, RD_ERR_FORMAT, "stored features: truncated");
    for (int l = 0; l < in->nlevels; l++) {
        const uint8_t *q = blob + off + 4 + 12 * l;
        if (get_u32(q) != (uint32_t)gd->lh[l] || get_u32(q + 4) != (uint32_t)gd->lw[l] ||
            get_u32(q + 8) != (uint32_t)in->level_c[l])
            return rd_err_set(err, RD_ERR_MISMATCH, "stored features: level %d shape differs from model", l);
        need += gd->ln[l] * (size_t)in->level_c[l] * esz;
    }
    if (len != need) return rd_err_set(err, RD_ERR_FORMAT, "stored features: %zu bytes, expected %zu", len, need);
    f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->nlevels = in->nlevels;
    f->geo = geo;
    f->view = view;
    view_crop(&view, &f->crop);
    f->img_w = (int)iw;
    f->img_h = (int)ih;
    p = blob + off + 4 + 12 * (size_t)in->nlevels;
    for (int l = 0; l < in->nlevels; l++) {
        size_t cnt = gd->ln[l] * (size_t)in->level_c[l];
        f->h[l] = gd->lh[l];
        f->w[l] = gd->lw[l];
        f->c[l] = in->level_c[l];
        f->data[l] = malloc(cnt * sizeof(float));
        if (!f->data[l]) goto nomem;
        if (esz == 2) {
            uint16_t hb[256];
            for (size_t i = 0; i < cnt; i += 256) {
                size_t m = cnt - i < 256 ? cnt - i : 256;
                for (size_t j = 0; j < m; j++, p += 2) hb[j] = (uint16_t)(p[0] | p[1] << 8);
                rd_f16_decode(hb, f->data[l] + i, m);
                for (size_t j = 0; j < m; j++)
                    if (!isfinite(f->data[l][i + j])) {
                        rd_feats_free(f);
                        return rd_err_set(err, RD_ERR_FORMAT, "stored features: non-finite value");
                    }
            }
            continue;
        }
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

/* Raw per-position scores of one level's features x (n×c) against pool;
 * with lvals (the neighbour calibration: a 1-channel pool of pool's layout)
 * each score is adjusted by its nearest row's LOO score (rd_score_nn_adjust). */
static rd_status level_scores_adj(const rd_model *m, rd_worker *w, const rd_grid *gd, int level,
                                  const rd_pool_grid *pool, const float *x, float *out, rd_timings *t,
                                  const rd_pool_grid *lvals, float lmu, rd_err *err)
{
    const int c = m->info.level_c[level], lh = gd->lh[level], lw = gd->lw[level];
    const size_t n = gd->ln[level];
    size_t mark = rd_arena_mark(&w->arena);
    int32_t *idx = (int32_t *)rd_arena_alloc(&w->arena, n * sizeof(int32_t));
    float *d2 = rd_arena_floats(&w->arena, n);
    float *r = rd_arena_floats(&w->arena, n * (size_t)c);
    double t0 = now_ms(), t1;
    rd_status st;
    if (!idx || !d2 || !r) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (scores)");
    st = rd_pool_grid_nearest(pool, x, idx, d2, w->team, &w->arena, err);
    if (st != RD_OK) goto out;
    t1 = now_ms();
    if (t) t->nn += t1 - t0;
    rd_residuals(x, pool->rows, idx, n, c, m->opts.resid, r);
    if (m->learned) {
        const float *e = r;
        if (m->cplan[level]) {
            float *eb = rd_arena_floats(&w->arena, n * (size_t)c);
            if (!eb) {
                st = rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (constraintor)");
                goto out;
            }
            st = rd_cstr_plan_forward_team(m->cplan[level], r, lh, lw, eb, w->team, &w->arena, err);
            if (st != RD_OK) goto out;
            e = eb;
        }
        st = rd_flow_plan_lpc_team(gd->fplan[level], e, out, w->team, &w->arena, err);
        if (st != RD_OK) goto out;
        for (size_t i = 0; i < n; i++) out[i] = -out[i]; /* higher = more anomalous */
        if (t) t->learned += now_ms() - t1;
    } else {
        rd_score_residual_norm(r, n, c, out);
    }
    if (lvals) rd_score_nn_adjust(out, idx, lvals->rows, n, lmu, m->opts.calib_alpha);
    if (t) t->score += now_ms() - t1;
out:
    rd_arena_rewind(&w->arena, mark);
    return st;
}

static rd_status level_scores(const rd_model *m, rd_worker *w, const rd_grid *gd, int level,
                              const rd_pool_grid *pool, const float *x, float *out, rd_timings *t, rd_err *err)
{
    return level_scores_adj(m, w, gd, level, pool, x, out, t, NULL, 0, err);
}

/* Grid pixel (x, y) inspected: inside view's destination (NULL = all) and the ROI mask (NULL = all)? */
static int grid_inspected(const rd_view *view, const uint8_t *roi, int W, int x, int y)
{
    return (!view || rd_view_grid_inspected(view, x, y)) && (!roi || roi[(size_t)y * W + x]);
}

/* Calibrated, combined, blurred map over the grid from per-level raw scores;
 * returns the image score over the inspected pixels (view's destination
 * rectangle, NULL = all, and the set's ROI mask), 0 when none is inspected.
 * Not-inspected grid pixels are set to 0 (the references' typical level)
 * before the blur, so padding and masked-out structure neither score nor bleed. */
static float assemble(const rd_model *m, rd_worker *w, const rd_grid *gd, float *const *lvl_scores,
                      const rd_refset *r, const rd_view *view, float *map)
{
    const rd_model_info *in = &m->info;
    const int W = gd->w, H = gd->h;
    const size_t ss = (size_t)W * H;
    size_t mark = rd_arena_mark(&w->arena);
    float *tmp = rd_arena_floats(&w->arena, ss);
    float score;
    memset(map, 0, ss * sizeof(float));
    float *ztmp = NULL;
    for (int l = 0; l < in->nlevels; l++) {
        if (r->pmu[l] && !ztmp) ztmp = rd_arena_floats(&w->arena, gd->ln[0] + ss); /* level 0 is the finest */
        if (r->pmu[l] && ztmp)
            rd_score_accumulate_pos_hw(lvl_scores[l], r->pmu[l], r->psd[l], gd->lh[l], gd->lw[l],
                                       1.0f / (float)in->nlevels, map, H, W, ztmp);
        else
            rd_score_accumulate_hw(lvl_scores[l], gd->lh[l], gd->lw[l], r->mu[l], r->sigma[l],
                                   1.0f / (float)in->nlevels, map, H, W, tmp);
    }
    const uint8_t *roi = r->roi;
    int full = !roi && (!view || (view->dst_x == 0 && view->dst_y == 0 && view->dst_w == W && view->dst_h == H));
    if (!full)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (!grid_inspected(view, roi, W, x, y)) map[(size_t)y * W + x] = 0.0f;
    if (m->opts.sigma > 0) rd_gauss_blur(map, H, W, m->opts.sigma, tmp);
    if (full) {
        score = rd_score_image(map, ss, m->opts.topk_frac, tmp);
    } else {
        float *vals = rd_arena_floats(&w->arena, ss);
        size_t k = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                if (grid_inspected(view, roi, W, x, y)) vals[k++] = map[(size_t)y * W + x];
                else map[(size_t)y * W + x] = 0.0f;
            }
        score = k ? rd_score_image(vals, k, m->opts.topk_frac, tmp) : 0.0f;
    }
    rd_arena_rewind(&w->arena, mark);
    return score;
}

static void refset_free(rd_refset *r)
{
    if (!r) return;
    for (int l = 0; l < RD_MAX_LEVELS; l++) {
        rd_pool_grid_free(r->pool[l]);
        rd_pool_grid_free(r->lvals[l]);
        free(r->pmu[l]);
        free(r->psd[l]);
    }
    free(r->loo);
    free(r->roi);
    free(r);
}

static rd_status check_feats(const rd_model *m, const rd_grid *gd, const rd_feats *f, rd_err *err)
{
    const rd_model_info *in = &m->info;
    if (!f || f->nlevels != in->nlevels) return rd_err_set(err, RD_ERR_MISMATCH, "features do not match the model");
    for (int l = 0; l < in->nlevels; l++)
        if (f->h[l] != gd->lh[l] || f->w[l] != gd->lw[l] || f->c[l] != in->level_c[l] || !f->data[l])
            return rd_err_set(err, RD_ERR_MISMATCH, "features do not match the model (level %d)", l);
    return RD_OK;
}

/* Local-search tile side in cells at level l of grid gd (0 = global). */
static int tile_cells(const rd_geometry *g, const rd_grid *gd, int l)
{
    if (g->search_tile <= 0) return 0;
    int tc = (int)((long)g->search_tile * gd->lw[l] / gd->w);
    return tc < 1 ? 1 : tc;
}

/* The calibration variants (score.h) from the references' LOO position
 * scores (scores[l]: k maps of gd->ln[l], pass one: global).  position: the
 * per-position moments.  neighbour: the LOO scores become a 1-channel pool
 * per level (the pools' layout depends only on the maps' shape, so a row
 * index of the feature pool finds its reference position's LOO score), then
 * every reference is scored again against the others with the adjustment,
 * and those adjusted maps replace scores[l] for the global moments and the
 * LOO image scores.  Nothing to do under global. */
static rd_status calib_variant(const rd_model *m, rd_worker *w, const rd_grid *gd, rd_refset *r,
                               rd_feats *const *refs, int k, float *const *scores, rd_err *err)
{
    const rd_model_info *in = &m->info;
    const int L = in->nlevels;
    const float *blocks[64], *vblocks[64];
    float *ell[RD_MAX_LEVELS] = {0};
    rd_status st = RD_OK;
    if (m->opts.calib == RD_SCORE_CALIB_POSITION || m->opts.calib == RD_SCORE_CALIB_EDGE) {
        for (int l = 0; l < L && st == RD_OK; l++) {
            const size_t n = gd->ln[l];
            double mu, sd;
            float *tmp = malloc(n * sizeof(float));
            r->pmu[l] = malloc(n * sizeof(float));
            r->psd[l] = malloc(n * sizeof(float));
            if (!tmp || !r->pmu[l] || !r->psd[l]) st = rd_err_set(err, RD_ERR_NOMEM, "out of memory (calibration)");
            else {
                rd_score_moments(scores[l], (size_t)k * n, &mu, &sd);
                const float fsd = sd > 1e-6 ? (float)sd : 1e-6f;
                if (m->opts.calib == RD_SCORE_CALIB_EDGE)
                    rd_score_edgestats(scores[l], k, gd->lh[l], gd->lw[l], (float)mu, fsd, m->opts.calib_alpha,
                                       r->pmu[l], r->psd[l]);
                else
                    rd_score_posstats(scores[l], k, gd->lh[l], gd->lw[l], (float)mu, fsd, m->opts.calib_alpha,
                                      m->opts.calib_smooth, r->pmu[l], r->psd[l], tmp);
            }
            free(tmp);
        }
        return st;
    }
    if (m->opts.calib != RD_SCORE_CALIB_NEIGHBOUR) return RD_OK;
    for (int l = 0; l < L && st == RD_OK; l++) {
        const size_t n = gd->ln[l];
        double mu, sd;
        if (!(ell[l] = malloc((size_t)k * n * sizeof(float)))) {
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory (calibration)");
            break;
        }
        memcpy(ell[l], scores[l], (size_t)k * n * sizeof(float));
        rd_score_moments(ell[l], (size_t)k * n, &mu, &sd);
        r->lmu[l] = (float)mu;
        for (int j = 0; j < k; j++) vblocks[j] = ell[l] + (size_t)j * n;
        if (!(r->lvals[l] = rd_pool_grid_new(vblocks, k, gd->lh[l], gd->lw[l], 1, RD_POOL_L2,
                                             tile_cells(&r->geo, gd, l), err)))
            st = err->code;
    }
    for (int i = 0; i < k && st == RD_OK; i++)
        for (int l = 0; l < L && st == RD_OK; l++) {
            const size_t n = gd->ln[l];
            int nb = 0;
            for (int j = 0; j < k; j++)
                if (j != i) blocks[nb] = refs[j]->data[l], vblocks[nb++] = ell[l] + (size_t)j * n;
            rd_pool_grid *p = rd_pool_grid_new(blocks, nb, gd->lh[l], gd->lw[l], in->level_c[l], m->opts.metric,
                                               tile_cells(&r->geo, gd, l), err);
            rd_pool_grid *pv = p ? rd_pool_grid_new(vblocks, nb, gd->lh[l], gd->lw[l], 1, RD_POOL_L2,
                                                    tile_cells(&r->geo, gd, l), err)
                                 : NULL;
            st = pv ? level_scores_adj(m, w, gd, l, p, refs[i]->data[l], scores[l] + (size_t)i * n, NULL, pv,
                                       r->lmu[l], err)
                    : err->code;
            rd_pool_grid_free(p);
            rd_pool_grid_free(pv);
        }
    for (int l = 0; l < L; l++) free(ell[l]);
    return st;
}

/* With a ROI mask, a level's leave-one-out statistics come only from its cells
 * that cover an inspected grid pixel, so a masked-out fixture or conveyor does
 * not widen the spread that what is inspected is measured in.  Copies those
 * values of the k references' scores (k · ln[l], reference-major) to out and
 * returns how many there are; on (ln[l] bytes) is scratch for the cells' mask. */
static size_t roi_cells(const rd_grid *gd, int l, const uint8_t *roi, const float *scores, int k, uint8_t *on,
                        float *out)
{
    const int lh = gd->lh[l], lw = gd->lw[l], sy = gd->h / lh, sx = gd->w / lw;
    size_t n = 0;
    for (int cy = 0; cy < lh; cy++)
        for (int cx = 0; cx < lw; cx++) {
            uint8_t *o = &on[(size_t)cy * lw + cx];
            *o = 0;
            for (int y = cy * sy; y < (cy + 1) * sy && !*o; y++)
                for (int x = cx * sx; x < (cx + 1) * sx && !*o; x++) *o = roi[(size_t)y * gd->w + x] != 0;
        }
    for (int i = 0; i < k; i++)
        for (size_t c = 0; c < gd->ln[l]; c++)
            if (on[c]) out[n++] = scores[(size_t)i * gd->ln[l] + c];
    return n;
}

/* rd_refset_build (calib NULL: leave-one-out calibration computed with w) or
 * rd_refset_restore (calib given: pools only, w unused). */
static rd_refset *refset_make(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, const rd_calib *calib,
                              const uint8_t *roi, rd_err *err)
{
    const rd_model_info *in = &m->info;
    rd_refset *r = NULL;
    const float *blocks[64];
    float *scores[RD_MAX_LEVELS] = {0};
    float *map = NULL, *cells = NULL;
    uint8_t *cell_on = NULL;
    const rd_grid *gd;
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
    for (int i = 0; i < k; i++) {
        char want[128], got[128];
        if (!refs[i]) {
            rd_err_set(err, RD_ERR_ARG, "reference %d has no features", i);
            return NULL;
        }
        rd_geometry_describe(&refs[0]->geo, want, sizeof want);
        if (refs[i]->view.fitted) {
            rd_err_set(err, RD_ERR_MISMATCH,
                       "reference %d (%dx%d) has another aspect ratio than the class geometry %s: references are "
                       "never padded, stretched or cropped",
                       i, refs[i]->img_w, refs[i]->img_h, want);
            return NULL;
        }
        if (!rd_geometry_compatible(&refs[0]->geo, &refs[i]->geo)) {
            rd_geometry_describe(&refs[i]->geo, got, sizeof got);
            rd_err_set(err, RD_ERR_MISMATCH, "reference %d has geometry %s, the class has %s", i, got, want);
            return NULL;
        }
    }
    if (!(gd = model_grid(m, refs[0]->geo.work_w, refs[0]->geo.work_h, err))) return NULL;
    for (int i = 0; i < k; i++)
        if (check_feats(m, gd, refs[i], err) != RD_OK) return NULL;
    if (calib && (calib->k != k || calib->nlevels != L)) {
        rd_err_set(err, RD_ERR_MISMATCH, "stored calibration is of %d shots, %d levels; the set has %d, %d", calib->k,
                   calib->nlevels, k, L);
        return NULL;
    }
    if (!calib && worker_fit(w, gd, err) != RD_OK) return NULL;
    r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    atomic_init(&r->refs, 1);
    r->k = k;
    r->nlevels = L;
    r->geo = refs[0]->geo;
    r->grid = gd;
    r->loo = calloc((size_t)k, sizeof(float));
    if (!r->loo) goto nomem;
    if (roi) {
        size_t n = (size_t)gd->w * gd->h, on = 0;
        if (!(r->roi = malloc(n))) goto nomem;
        for (size_t i = 0; i < n; i++) on += (r->roi[i] = roi[i] != 0);
        if (!on) {
            rd_err_set(err, RD_ERR_ARG, "the ROI mask inspects no pixel");
            goto fail;
        }
    }
    if (calib) {
        memcpy(r->mu, calib->mu, sizeof r->mu);
        memcpy(r->sigma, calib->sigma, sizeof r->sigma);
        memcpy(r->loo, calib->loo, (size_t)k * sizeof(float));
        r->threshold = calib->threshold;
        goto pools;
    }
    map = malloc((size_t)gd->w * gd->h * sizeof(float));
    if (!map) goto nomem;
    for (int l = 0; l < L; l++) {
        scores[l] = malloc((size_t)k * gd->ln[l] * sizeof(float));
        if (!scores[l]) goto nomem;
    }
    if (r->roi) {
        size_t most = 0;
        for (int l = 0; l < L; l++) most = gd->ln[l] > most ? gd->ln[l] : most;
        if (!(cells = malloc((size_t)k * most * sizeof(float))) || !(cell_on = malloc(most))) goto nomem;
    }
    /* Leave-one-out: score each reference against the pool of the others. */
    rd_arena_reset(&w->arena);
    for (int i = 0; i < k; i++) {
        for (int l = 0; l < L; l++) {
            int nb = 0;
            for (int j = 0; j < k; j++)
                if (j != i) blocks[nb++] = refs[j]->data[l];
            rd_pool_grid *p = rd_pool_grid_new(blocks, nb, gd->lh[l], gd->lw[l], in->level_c[l], m->opts.metric,
                                               tile_cells(&r->geo, gd, l), err);
            if (!p) goto fail;
            rd_status st = level_scores(m, w, gd, l, p, refs[i]->data[l], scores[l] + (size_t)i * gd->ln[l], NULL,
                                        err);
            rd_pool_grid_free(p);
            if (st != RD_OK) goto fail;
        }
    }
    if (calib_variant(m, w, gd, r, refs, k, scores, err) != RD_OK) goto fail;
    for (int l = 0; l < L; l++) {
        double mu, sd;
        size_t n = r->roi ? roi_cells(gd, l, r->roi, scores[l], k, cell_on, cells) : 0;
        if (n)
            rd_score_moments(cells, n, &mu, &sd);
        else
            rd_score_moments(scores[l], (size_t)k * gd->ln[l], &mu, &sd);
        r->mu[l] = (float)mu;
        r->sigma[l] = sd > 1e-6 ? (float)sd : 1e-6f;
    }
    for (int i = 0; i < k; i++) {
        float *lv[RD_MAX_LEVELS];
        for (int l = 0; l < L; l++) lv[l] = scores[l] + (size_t)i * gd->ln[l];
        r->loo[i] = assemble(m, w, gd, lv, r, NULL, map);
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
pools:
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < k; j++) blocks[j] = refs[j]->data[l];
        if (!(r->pool[l] = rd_pool_grid_new(blocks, k, gd->lh[l], gd->lw[l], in->level_c[l], m->opts.metric,
                                            tile_cells(&r->geo, gd, l), err)))
            goto fail;
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
    free(cells);
    free(cell_on);
    if (!calib) rd_arena_reset(&w->arena);
    return r;
}

rd_refset *rd_refset_build(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, rd_err *err)
{
    return refset_make(m, w, refs, k, NULL, NULL, err);
}

rd_refset *rd_refset_build_roi(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, const uint8_t *roi,
                               rd_err *err)
{
    return refset_make(m, w, refs, k, NULL, roi, err);
}

rd_refset *rd_refset_restore(const rd_model *m, rd_feats *const *refs, int k, const rd_calib *calib,
                             const uint8_t *roi, rd_err *err)
{
    if (!calib) {
        rd_err_set(err, RD_ERR_ARG, "no calibration to restore a reference set with");
        return NULL;
    }
    if (m->opts.calib != RD_SCORE_CALIB_GLOBAL) { /* its per-position/neighbour statistics are not stored */
        rd_err_set(err, RD_ERR_UNSUPPORTED, "a stored calibration holds the global statistics only");
        return NULL;
    }
    return refset_make(m, NULL, refs, k, calib, roi, err);
}

void rd_refset_get_calib(const rd_refset *r, rd_calib *out)
{
    memset(out, 0, sizeof *out);
    out->k = r->k;
    out->nlevels = r->nlevels;
    memcpy(out->mu, r->mu, sizeof out->mu);
    memcpy(out->sigma, r->sigma, sizeof out->sigma);
    memcpy(out->loo, r->loo, (size_t)r->k * sizeof(float));
    out->threshold = r->threshold;
}

size_t rd_refset_bytes(const rd_refset *r)
{
    size_t b = sizeof *r + (size_t)r->k * sizeof(float);
    for (int l = 0; l < r->nlevels; l++) {
        const rd_pool_grid *g = r->pool[l];
        if (!g) continue;
        b += sizeof *g + rd_pool_heap_bytes(g->pool);
        if (g->tile_row) b += ((size_t)g->ntx * g->nty + 1) * sizeof(size_t);
    }
    return b;
}

int rd_refset_in_use(const rd_refset *r)
{
    return atomic_load_explicit(&((rd_refset *)r)->refs, memory_order_acquire) > 1;
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
const rd_geometry *rd_refset_geometry(const rd_refset *r) { return &r->geo; }
const uint8_t *rd_refset_roi(const rd_refset *r) { return r->roi; }

int rd_refset_local_search(const rd_refset *r)
{
    for (int l = 0; l < r->nlevels; l++)
        if (rd_pool_grid_is_local(r->pool[l])) return 1;
    return 0;
}

/* Scores level features lv (in the worker's arena or caller memory) into out. */
static rd_status score_levels(const rd_model *m, rd_worker *w, const rd_refset *r, float *const *lv,
                              float threshold_override, rd_result *out, rd_err *err)
{
    const rd_model_info *in = &m->info;
    const rd_grid *gd = r->grid;
    float *scores[RD_MAX_LEVELS];
    rd_status st;
    for (int l = 0; l < in->nlevels; l++) {
        scores[l] = rd_arena_floats(&w->arena, gd->ln[l]);
        if (!scores[l]) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (maps)");
        st = level_scores_adj(m, w, gd, l, r->pool[l], lv[l], scores[l], &out->t, r->lvals[l], r->lmu[l], err);
        if (st != RD_OK) return st;
    }
    double t1 = now_ms();
    out->score = assemble(m, w, gd, scores, r, &out->view, out->map);
    out->t.score += now_ms() - t1;
    out->threshold = isnan(threshold_override) ? r->threshold : threshold_override;
    out->anomalous = out->score >= out->threshold;
    out->scorer = in->scorer;
    out->map_w = gd->w;
    out->map_h = gd->h;
    out->s = gd->w == gd->h ? gd->w : 0;
    out->geo = r->geo;
    out->inspected_frac = (float)(out->view.inspected_frac * rd_view_roi_share(&out->view, r->roi));
    view_crop(&out->view, &out->crop);
    if (out->crop.s == 0) out->s = 0;
    if (r->roi) {
        size_t n = (size_t)gd->w * gd->h;
        if (!(out->roi = malloc(n))) return rd_err_set(err, RD_ERR_NOMEM, "out of memory for the ROI mask");
        memcpy(out->roi, r->roi, n);
    }
    {
        const rd_view *v = &out->view;
        int any = 0;
        out->map_min = out->map_max = 0.0f;
        for (int y = v->dst_y; y < v->dst_y + v->dst_h; y++)
            for (int x = v->dst_x; x < v->dst_x + v->dst_w; x++) {
                if (!grid_inspected(NULL, r->roi, gd->w, x, y)) continue;
                float q = out->map[(size_t)y * gd->w + x];
                if (!any || q > out->map_max) out->map_max = q;
                if (!any || q < out->map_min) out->map_min = q;
                any = 1;
            }
    }
    return RD_OK;
}

static rd_status result_begin(const rd_model *m, const rd_refset *r, rd_result *out, rd_err *err)
{
    memset(out, 0, sizeof *out);
    if (r->nlevels != m->info.nlevels || r->grid < m->grids || r->grid >= m->grids + RD_MAX_GRIDS)
        return rd_err_set(err, RD_ERR_MISMATCH, "reference set built for another model");
    out->map = malloc((size_t)r->grid->w * r->grid->h * sizeof(float));
    if (!out->map) return rd_err_set(err, RD_ERR_NOMEM, "out of memory for the anomaly map");
    return RD_OK;
}

rd_status rd_inspect(const rd_model *m, rd_worker *w, const rd_refset *r, const rd_image *img,
                     float threshold_override, rd_result *out, rd_err *err)
{
    rd_tensor lv[RD_MAX_LEVELS];
    float *lvp[RD_MAX_LEVELS];
    double t0 = now_ms();
    rd_status st;
    if (!img || !img->rgb || img->w < 1 || img->h < 1) return rd_err_set(err, RD_ERR_ARG, "bad image");
    st = result_begin(m, r, out, err);
    if (st != RD_OK) return st;
    st = rd_view_for_image(&r->geo, img->w, img->h, &out->view, err);
    if (st == RD_OK) st = worker_fit(w, r->grid, err);
    rd_arena_reset(&w->arena);
    if (st == RD_OK) st = run_backbone(m, w, r->grid, &out->view, img, lv, &out->t, err);
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
    rd_status st;
    if (!f) return rd_err_set(err, RD_ERR_ARG, "no features");
    if (!rd_geometry_compatible(&r->geo, &f->geo)) {
        char want[128], got[128];
        rd_geometry_describe(&r->geo, want, sizeof want);
        rd_geometry_describe(&f->geo, got, sizeof got);
        return rd_err_set(err, RD_ERR_MISMATCH, "features of geometry %s, the reference set has %s", got, want);
    }
    st = check_feats(m, r->grid, f, err);
    if (st != RD_OK) return st;
    st = result_begin(m, r, out, err);
    if (st == RD_OK) st = worker_fit(w, r->grid, err);
    if (st != RD_OK) {
        rd_result_release(out);
        return st;
    }
    out->view = f->view;
    rd_arena_reset(&w->arena);
    st = score_levels(m, w, r, f->data, threshold_override, out, err);
    rd_arena_reset(&w->arena);
    if (st != RD_OK) {
        rd_result_release(out);
        return st;
    }
    out->img_w = f->img_w;
    out->img_h = f->img_h;
    out->t.total = now_ms() - t0;
    return RD_OK;
}

void rd_result_release(rd_result *res)
{
    if (!res) return;
    free(res->map);
    free(res->roi);
    res->map = NULL;
    res->roi = NULL;
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

rd_status rd_result_render(const rd_result *res, rd_heat_kind kind, const rd_image *img, rd_png_buf *out,
                           rd_err *err)
{
    rd_heat_params p;
    rd_result_heat_params(res, &p);
    if (img) {
        p.out_w = img->w;
        p.out_h = img->h;
    }
    return rd_heatmap_render_view(kind, res->map, &res->view, res->roi, img, &p, out, err);
}
