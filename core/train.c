/* train.c — the ResAD training loop (see train.h). */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "rng.h"
#include "safetensors.h"
#include "team.h"

#define MAX_CLASSES 1024
#define MAX_SHOTS 64

typedef struct timg {
    rd_feats *f;
    int is_ref, label;
    uint8_t *mask[RD_MAX_LEVELS]; /* per level h·w, NULL = all normal */
} timg;

typedef struct tclass {
    char *name;
    timg *img;
    int n, cap;
    int nref;
} tclass;

typedef struct tlevel {
    int h, w, c;
    size_t hw;
    rd_cstr *cstr;
    rd_cstr_ws *cws;
    rd_adam cadam;
    float *cgrad;
    rd_flow *flow;
    rd_flow_ws *fws;
    rd_adam fadam;
    float *fgrad;
    rd_bgad bgad;
    /* batch buffers */
    float *x, *r, *e, *de;
    uint8_t *m;
    /* chunk buffers */
    float *xc, *lpc, *dlpc, *scratch;
    int32_t *py, *px;
    int32_t *oy, *ox; /* SHIFT: per batch slot, the image's translation (0 otherwise) */
    uint8_t *mc;
    size_t *perm;
    /* global synthesis (cfg.gas_share > 0): the chunk buffers above hold
     * gcap more rows for the synthetic ones; their sources, positions, input gradients */
    size_t gcap;
    float *gsrc, *gdx;
    int32_t *gpy, *gpx;
    rd_rng grng; /* drawn from the trainer's stream per batch, in level order */
} tlevel;

struct rd_train {
    rd_train_cfg cfg;
    int s, nlevels;
    int input_pad; /* the model's mirrored input margin: other features, checked on resume */
    char level_names[RD_MAX_LEVELS][64];
    tlevel lv[RD_MAX_LEVELS];
    tclass *cls;
    int ncls;
    rd_team *team;
    rd_arena arena;
    int32_t *idx;
    float *d2;
    rd_rng rng;
    int epoch; /* epochs completed */
    rd_train_losses last, cur;
    int have_last;
    size_t chunk;
    double nn_s, cstr_s, flow_s;
};

void rd_train_cfg_default(rd_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 20;
    c->normal_epochs = 2;
    c->shots = 4;
    c->batch = 8;
    c->flow_blocks = 8;
    c->flow_hidden = 0;
    c->cstr_kernel = 3;
    c->use_cstr = 1;
    c->resid = RD_RESID_X_MINUS_NN;
    c->metric = RD_POOL_L2;
    c->ml = RD_ML_LOGSIGMOID;
    c->flow_pos = RD_FLOW_POS_ABS;
    c->flow_shift = RD_FLOW_DEFAULT_SHIFT;
    c->lr = 2e-4f;
    c->wd = 5e-4f;
    c->chunk = 8192;
    c->gas_share = 0;
    rd_gas_cfg_default(&c->gas);
    c->seed = 0;
    c->threads = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t rand_below(rd_rng *r, size_t n) { return (size_t)(rd_rng_u64(r) % (uint64_t)n); }

rd_train *rd_train_new(const rd_train_cfg *cfg, const rd_model_info *mi, rd_err *err)
{
    rd_train *t = NULL;
    const rd_train_cfg *c = cfg;
    if (c->epochs < 1 || c->epochs > 100000)
        return rd_err_set(err, RD_ERR_ARG, "epochs must be in 1..100000 (got %d)", c->epochs), NULL;
    if (c->normal_epochs < 0)
        return rd_err_set(err, RD_ERR_ARG, "normal epochs must be >= 0 (got %d)", c->normal_epochs), NULL;
    if (c->shots < 1 || c->shots > MAX_SHOTS)
        return rd_err_set(err, RD_ERR_ARG, "shots must be in 1..%d (got %d)", MAX_SHOTS, c->shots), NULL;
    if (c->batch < 1 || c->batch > 1024)
        return rd_err_set(err, RD_ERR_ARG, "batch must be in 1..1024 (got %d)", c->batch), NULL;
    if (c->flow_blocks < 1 || c->flow_blocks > RD_FLOW_MAX_K)
        return rd_err_set(err, RD_ERR_ARG, "flow blocks must be in 1..%d (got %d)", RD_FLOW_MAX_K, c->flow_blocks),
               NULL;
    if (c->flow_hidden < 0 || c->flow_hidden > RD_FLOW_MAX_HID)
        return rd_err_set(err, RD_ERR_ARG, "flow hidden width must be in 0..%d (got %d)", RD_FLOW_MAX_HID,
                          c->flow_hidden),
               NULL;
    if (c->cstr_kernel != 1 && c->cstr_kernel != 3)
        return rd_err_set(err, RD_ERR_ARG, "constraintor kernel must be 1 or 3 (got %d)", c->cstr_kernel), NULL;
    if (!(c->lr > 0 && c->lr < 1))
        return rd_err_set(err, RD_ERR_ARG, "learning rate must be in (0, 1) (got %g)", c->lr), NULL;
    if (!(c->wd >= 0 && c->wd < 1))
        return rd_err_set(err, RD_ERR_ARG, "weight decay must be in [0, 1) (got %g)", c->wd), NULL;
    if (c->chunk < 16 || c->chunk > (1u << 20))
        return rd_err_set(err, RD_ERR_ARG, "flow chunk must be in 16..1048576 rows"), NULL;
    if (!(c->gas_share >= 0 && c->gas_share <= 1) || c->gas.steps < 0 || c->gas.steps > 100 ||
        !(c->gas.r1 > 0 && c->gas.r1 <= c->gas.r2 && c->gas.r2 <= 100) || !(c->gas.eta >= 0 && c->gas.eta <= 100))
        return rd_err_set(err, RD_ERR_ARG, "global synthesis: share in [0, 1], steps 0..100, 0 < r1 <= r2 <= 100, "
                                           "step in [0, 100]"),
               NULL;
    if (c->threads < 1 || c->threads > 256)
        return rd_err_set(err, RD_ERR_ARG, "threads must be in 1..256 (got %d)", c->threads), NULL;
    if (mi->nlevels < 1 || mi->nlevels > RD_MAX_LEVELS)
        return rd_err_set(err, RD_ERR_ARG, "model has %d feature levels", mi->nlevels), NULL;

    t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->cfg = *cfg;
    t->s = mi->size;
    t->input_pad = mi->input_pad;
    t->nlevels = mi->nlevels;
    t->chunk = c->chunk;
    rd_rng_seed(&t->rng, c->seed);
    size_t max_hw = 0, max_c = 0;
    for (int l = 0; l < t->nlevels; l++) {
        tlevel *L = &t->lv[l];
        snprintf(t->level_names[l], sizeof t->level_names[l], "%s", mi->level_names[l] ? mi->level_names[l] : "");
        L->h = mi->level_h[l];
        L->w = mi->level_w[l];
        L->c = mi->level_c[l];
        if (L->h < 1 || L->w < 1 || L->c < 2 || L->h > RD_FLOW_MAX_HW || L->w > RD_FLOW_MAX_HW ||
            L->c > RD_FLOW_MAX_C) {
            rd_err_set(err, RD_ERR_UNSUPPORTED, "level %d is %dx%dx%d: not trainable", l, L->h, L->w, L->c);
            goto fail;
        }
        L->hw = (size_t)L->h * L->w;
        if (L->hw > max_hw) max_hw = L->hw;
        if ((size_t)L->c > max_c) max_c = (size_t)L->c;
        uint64_t lseed = c->seed * 0x9E3779B97F4A7C15ull + 0x1000u * (uint64_t)(l + 1);
        if (c->use_cstr) {
            L->cstr = rd_cstr_new(L->c, c->cstr_kernel, lseed + 1, err);
            if (!L->cstr) goto fail;
            L->cws = rd_cstr_ws_new(L->cstr, c->batch, L->h, L->w, err);
            if (!L->cws) goto fail;
            if (rd_adam_init(&L->cadam, L->cstr->nparams, c->lr, c->wd, err) != RD_OK) goto fail;
            L->cgrad = malloc(L->cstr->nparams * sizeof(float));
            if (!L->cgrad) goto nomem;
        }
        rd_flow_cfg fc;
        rd_flow_cfg_default(&fc, L->c, c->flow_blocks);
        if (c->flow_hidden) fc.hid = c->flow_hidden;
        fc.pos = c->flow_pos;
        fc.shift = c->flow_shift;
        L->flow = rd_flow_new(&fc, lseed + 2, err);
        if (!L->flow) goto fail;
        size_t nb = (size_t)c->batch * L->hw, nbc;
        size_t cap = nb < c->chunk ? nb : c->chunk;
        L->gcap = c->gas_share > 0 ? (size_t)ceil(c->gas_share * (double)cap) : 0;
        cap += L->gcap; /* the chunk buffers and the workspace also hold the synthetic rows */
        L->fws = rd_flow_ws_new(L->flow, cap, L->h + rd_flow_shift_range(&fc, L->h),
                                L->w + rd_flow_shift_range(&fc, L->w), err);
        if (!L->fws) goto fail;
        if (rd_adam_init(&L->fadam, L->flow->nparams, c->lr, c->wd, err) != RD_OK) goto fail;
        L->fgrad = malloc(L->flow->nparams * sizeof(float));
        rd_bgad_init(&L->bgad);
        if (!rd_mul_size(nb, (size_t)L->c, &nbc)) goto nomem;
        L->x = malloc(nbc * sizeof(float));
        L->r = malloc(nbc * sizeof(float));
        L->e = c->use_cstr ? malloc(nbc * sizeof(float)) : NULL;
        L->de = c->use_cstr ? malloc(nbc * sizeof(float)) : NULL;
        L->m = malloc(nb);
        L->perm = malloc(nb * sizeof(size_t));
        L->xc = malloc(cap * L->c * sizeof(float));
        L->lpc = malloc(cap * sizeof(float));
        L->dlpc = malloc(cap * sizeof(float));
        L->scratch = malloc(cap * sizeof(float));
        L->py = malloc(cap * sizeof(int32_t));
        L->px = malloc(cap * sizeof(int32_t));
        L->mc = malloc(cap);
        if (L->gcap) {
            L->gsrc = malloc(L->gcap * L->c * sizeof(float));
            L->gdx = malloc(L->gcap * L->c * sizeof(float));
            L->gpy = malloc(L->gcap * sizeof(int32_t));
            L->gpx = malloc(L->gcap * sizeof(int32_t));
            if (!L->gsrc || !L->gdx || !L->gpy || !L->gpx) goto nomem;
        }
        L->oy = calloc((size_t)c->batch, sizeof(int32_t));
        L->ox = calloc((size_t)c->batch, sizeof(int32_t));
        if (!L->oy || !L->ox) goto nomem;
        if (!L->fgrad || !L->x || !L->r || (c->use_cstr && (!L->e || !L->de)) || !L->m || !L->perm || !L->xc ||
            !L->lpc || !L->dlpc || !L->scratch || !L->py || !L->px || !L->mc)
            goto nomem;
    }
    t->team = rd_team_new(c->threads, err);
    if (!t->team) goto fail;
    if (rd_arena_init(&t->arena, rd_pool_scratch_bytes((int)max_c, max_hw) + 4096, err) != RD_OK) goto fail;
    t->idx = malloc(max_hw * sizeof(int32_t));
    t->d2 = malloc(max_hw * sizeof(float));
    if (!t->idx || !t->d2) goto nomem;
    return t;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "out of memory setting up training");
fail:
    rd_train_free(t);
    return NULL;
}

void rd_train_free(rd_train *t)
{
    if (!t) return;
    for (int l = 0; l < t->nlevels; l++) {
        tlevel *L = &t->lv[l];
        rd_cstr_ws_free(L->cws);
        rd_cstr_free(L->cstr);
        rd_adam_release(&L->cadam);
        free(L->cgrad);
        rd_flow_ws_free(L->fws);
        rd_flow_free(L->flow);
        rd_adam_release(&L->fadam);
        free(L->fgrad);
        free(L->x);
        free(L->r);
        free(L->e);
        free(L->de);
        free(L->m);
        free(L->perm);
        free(L->xc);
        free(L->lpc);
        free(L->dlpc);
        free(L->scratch);
        free(L->py);
        free(L->px);
        free(L->oy);
        free(L->ox);
        free(L->mc);
        free(L->gsrc);
        free(L->gdx);
        free(L->gpy);
        free(L->gpx);
    }
    for (int i = 0; i < t->ncls; i++) {
        for (int j = 0; j < t->cls[i].n; j++) {
            rd_feats_free(t->cls[i].img[j].f);
            for (int l = 0; l < RD_MAX_LEVELS; l++) free(t->cls[i].img[j].mask[l]);
        }
        free(t->cls[i].img);
        free(t->cls[i].name);
    }
    free(t->cls);
    rd_team_free(t->team);
    rd_arena_release(&t->arena);
    free(t->idx);
    free(t->d2);
    free(t);
}

int rd_train_add_class(rd_train *t, const char *name, rd_err *err)
{
    if (t->ncls >= MAX_CLASSES) return rd_err_set(err, RD_ERR_LIMIT, "more than %d classes", MAX_CLASSES);
    tclass *nc = realloc(t->cls, (size_t)(t->ncls + 1) * sizeof *nc);
    if (!nc) return rd_err_set(err, RD_ERR_NOMEM, "out of memory adding a class");
    t->cls = nc;
    memset(&nc[t->ncls], 0, sizeof *nc);
    nc[t->ncls].name = strdup(name);
    if (!nc[t->ncls].name) return rd_err_set(err, RD_ERR_NOMEM, "out of memory adding a class");
    return t->ncls++;
}

rd_status rd_train_add_image(rd_train *t, int cls, rd_feats *f, int is_ref, int label, const uint8_t *mask,
                             rd_err *err)
{
    if (cls < 0 || cls >= t->ncls) {
        rd_feats_free(f);
        return rd_err_set(err, RD_ERR_ARG, "no class %d", cls);
    }
    if (f->nlevels != t->nlevels) goto mismatch;
    for (int l = 0; l < t->nlevels; l++)
        if (f->h[l] != t->lv[l].h || f->w[l] != t->lv[l].w || f->c[l] != t->lv[l].c) goto mismatch;
    tclass *c = &t->cls[cls];
    if (c->n == c->cap) {
        int ncap = c->cap ? 2 * c->cap : 16;
        timg *ni = realloc(c->img, (size_t)ncap * sizeof *ni);
        if (!ni) goto nomem;
        c->img = ni;
        c->cap = ncap;
    }
    timg *im = &c->img[c->n];
    memset(im, 0, sizeof *im);
    im->is_ref = is_ref ? 1 : 0;
    im->label = label ? 1 : 0;
    if (label) {
        for (int l = 0; l < t->nlevels; l++) {
            tlevel *L = &t->lv[l];
            im->mask[l] = malloc(L->hw);
            if (!im->mask[l]) {
                for (int k = 0; k < l; k++) free(im->mask[k]);
                goto nomem;
            }
            for (int y = 0; y < L->h; y++) {
                int sy = (int)((int64_t)y * t->s / L->h);
                for (int x = 0; x < L->w; x++) {
                    int sx = (int)((int64_t)x * t->s / L->w);
                    im->mask[l][(size_t)y * L->w + x] = mask ? (mask[(size_t)sy * t->s + sx] != 0) : 1;
                }
            }
        }
    }
    im->f = f;
    c->n++;
    if (is_ref) c->nref++;
    return RD_OK;
mismatch:
    rd_feats_free(f);
    return rd_err_set(err, RD_ERR_MISMATCH, "image features do not match the model's levels");
nomem:
    rd_feats_free(f);
    return rd_err_set(err, RD_ERR_NOMEM, "out of memory storing features");
}

void rd_train_set_max_seconds(rd_train *t, double seconds) { t->cfg.max_seconds = seconds > 0 ? seconds : 0; }

int rd_train_epochs_done(const rd_train *t) { return t->epoch; }
const rd_train_losses *rd_train_last_losses(const rd_train *t) { return t->have_last ? &t->last : &t->cur; }
const rd_flow *rd_train_flow(const rd_train *t, int level)
{
    return level >= 0 && level < t->nlevels ? t->lv[level].flow : NULL;
}
const rd_cstr *rd_train_cstr(const rd_train *t, int level)
{
    return level >= 0 && level < t->nlevels ? t->lv[level].cstr : NULL;
}

/* ---- one batch ------------------------------------------------------------ */

/* Residuals of image `im` (index self in class c) into row offset `off` of every level. */
static rd_status image_residuals(rd_train *t, const tclass *c, int self, size_t slot, rd_err *err)
{
    int cand[4096], ncand = 0, k = t->cfg.shots;
    const timg *im = &c->img[self];
    for (int j = 0; j < c->n && ncand < 4096; j++)
        if (c->img[j].is_ref && j != self) cand[ncand++] = j;
    if (ncand < 1) return rd_err_set(err, RD_ERR_STATE, "class %s: no reference image for training", c->name);
    if (k > ncand) k = ncand;
    /* partial Fisher–Yates: k distinct candidates */
    for (int i = 0; i < k; i++) {
        int j = i + (int)rand_below(&t->rng, (size_t)(ncand - i));
        int tmp = cand[i];
        cand[i] = cand[j];
        cand[j] = tmp;
    }
    for (int l = 0; l < t->nlevels; l++) {
        tlevel *L = &t->lv[l];
        const float *blocks[MAX_SHOTS];
        size_t rows[MAX_SHOTS];
        for (int i = 0; i < k; i++) {
            blocks[i] = c->img[cand[i]].f->data[l];
            rows[i] = L->hw;
        }
        rd_pool *p = rd_pool_new(blocks, rows, k, L->c, t->cfg.metric, err);
        if (!p) return err ? err->code : RD_ERR_NOMEM;
        float *x = L->x + slot * L->hw * L->c;
        memcpy(x, im->f->data[l], L->hw * L->c * sizeof(float));
        rd_arena_reset(&t->arena);
        rd_status st = rd_pool_nearest(p, x, L->hw, t->idx, t->d2, t->team, &t->arena, err);
        if (st == RD_OK)
            rd_residuals(x, p->rows, t->idx, L->hw, L->c, t->cfg.resid, L->r + slot * L->hw * L->c);
        rd_pool_free(p);
        if (st != RD_OK) return st;
        uint8_t *m = L->m + slot * L->hw;
        if (im->mask[l])
            memcpy(m, im->mask[l], L->hw);
        else
            memset(m, 0, L->hw);
    }
    return RD_OK;
}

/* One level's flow steps over the batch (positions already shuffled into
 * L->perm).  Levels are independent, so they run concurrently on the team. */
typedef struct flow_job {
    rd_train *t;
    size_t n[RD_MAX_LEVELS];
    const float *feed[RD_MAX_LEVELS];
    int normal_stage;
    double ml[RD_MAX_LEVELS], bg[RD_MAX_LEVELS];
    rd_status st[RD_MAX_LEVELS];
    rd_err err[RD_MAX_LEVELS];
} flow_job;

/* Global synthesis (synth.h): synthetic abnormal twins of a share of the
 * chunk's normal rows, appended after its m rows with mask 1.  The chunk is
 * shuffled, so its first normal rows are a random subset. */
static rd_status gas_chunk(const rd_train *t, tlevel *L, size_t m, size_t *added, rd_err *err)
{
    const size_t c = (size_t)L->c;
    size_t nn = 0, k = 0;
    *added = 0;
    for (size_t i = 0; i < m; i++) nn += !L->mc[i];
    size_t want = (size_t)(t->cfg.gas_share * (double)nn + 0.5);
    if (want > L->gcap) want = L->gcap;
    for (size_t i = 0; i < m && k < want; i++) {
        if (L->mc[i]) continue;
        memcpy(L->gsrc + k * c, L->xc + i * c, c * sizeof(float));
        L->gpy[k] = L->py[i];
        L->gpx[k] = L->px[i];
        k++;
    }
    if (!k) return RD_OK;
    rd_status st = rd_gas_synth(&t->cfg.gas, &L->grng, L->flow, L->fws, L->gsrc, L->gpy, L->gpx, k,
                                rd_gas_unit(L->gsrc, k, L->c), L->xc + m * c, L->fgrad, L->lpc, L->dlpc, L->gdx, err);
    if (st != RD_OK) return st;
    for (size_t i = 0; i < k; i++) {
        L->py[m + i] = L->gpy[i];
        L->px[m + i] = L->gpx[i];
        L->mc[m + i] = 1;
    }
    *added = k;
    return RD_OK;
}

static rd_status flow_level(rd_train *t, int l, size_t n, const float *feed, int normal_stage, double *ml_out,
                            double *bg_out, rd_err *err)
{
    tlevel *L = &t->lv[l];
    size_t nch = (n + t->chunk - 1) / t->chunk;
    rd_status st;
    *ml_out = *bg_out = 0;
    for (size_t ch = 0; ch < nch; ch++) {
        size_t a = n * ch / nch, b = n * (ch + 1) / nch, m = b - a;
        for (size_t i = 0; i < m; i++) {
            size_t row = L->perm[a + i], pos = row % L->hw;
            memcpy(L->xc + i * L->c, feed + row * L->c, (size_t)L->c * sizeof(float));
            L->py[i] = (int32_t)(pos / (size_t)L->w) + L->oy[row / L->hw];
            L->px[i] = (int32_t)(pos % (size_t)L->w) + L->ox[row / L->hw];
            L->mc[i] = L->m[row];
        }
        if (L->gcap && !normal_stage) { /* the ML and BGAD terms below then see the synthetic rows too */
            size_t added;
            st = gas_chunk(t, L, m, &added, err);
            if (st != RD_OK) return st;
            m += added;
        }
        st = rd_flow_train_forward(L->flow, L->fws, L->xc, L->py, L->px, m, L->lpc, err);
        if (st != RD_OK) return st;
        memset(L->dlpc, 0, m * sizeof(float));
        double ml = rd_loss_ml(L->lpc, L->mc, m, t->cfg.ml, 1.0f, L->dlpc);
        rd_bgad_update(&L->bgad, L->lpc, L->mc, m, L->scratch);
        double bg = 0;
        if (!normal_stage) bg = rd_loss_bgad(&L->bgad, L->lpc, L->mc, m, 1.0f, L->dlpc, NULL);
        if (!isfinite(ml) || !isfinite(bg))
            return rd_err_set(err, RD_ERR_STATE,
                              "training diverged at level %d (loss %g / %g): lower the learning rate", l, ml, bg);
        memset(L->fgrad, 0, L->flow->nparams * sizeof(float));
        st = rd_flow_train_backward(L->flow, L->fws, L->dlpc, L->fgrad, NULL, err);
        if (st != RD_OK) return st;
        rd_adam_step(&L->fadam, L->flow->params, L->fgrad);
        *ml_out += ml / (double)nch;
        *bg_out += bg / (double)nch;
    }
    return RD_OK;
}

static void flow_task(void *ctx, int l)
{
    flow_job *j = ctx;
    j->st[l] = flow_level(j->t, l, j->n[l], j->feed[l], j->normal_stage, &j->ml[l], &j->bg[l], &j->err[l]);
}

static rd_status run_batch(rd_train *t, const tclass *c, const int *members, int nb, int normal_stage, rd_err *err)
{
    rd_status st;
    flow_job job;
    double t0 = now_s(), t1;
    memset(&job, 0, sizeof job);
    for (int i = 0; i < nb; i++) {
        st = image_residuals(t, c, members[i], (size_t)i, err);
        if (st != RD_OK) return st;
    }
    t1 = now_s();
    t->nn_s += t1 - t0;
    for (int l = 0; l < t->nlevels; l++) {
        tlevel *L = &t->lv[l];
        size_t n = (size_t)nb * L->hw;
        const float *feed = L->r;
        if (L->cstr) {
            st = rd_cstr_train_forward(L->cstr, L->cws, L->r, nb, L->e, 1, err);
            if (st != RD_OK) return st;
            memset(L->de, 0, n * L->c * sizeof(float));
            double occ = rd_loss_occ(L->e, L->r, L->m, n, L->c, 1.0f, L->de, NULL);
            memset(L->cgrad, 0, L->cstr->nparams * sizeof(float));
            st = rd_cstr_train_backward(L->cstr, L->cws, L->de, L->cgrad, NULL, err);
            if (st != RD_OK) return st;
            rd_adam_step(&L->cadam, L->cstr->params, L->cgrad);
            t->cur.occ += occ;
            feed = L->e; /* detached: the flow's gradient stops here (official code) */
        }
        /* shuffled positions (drawn here, in level order, so the RNG stream
         * does not depend on the thread count) */
        for (size_t i = 0; i < n; i++) L->perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rand_below(&t->rng, i + 1), tmp = L->perm[i];
            L->perm[i] = L->perm[j];
            L->perm[j] = tmp;
        }
        if (L->flow->cfg.pos == RD_FLOW_POS_SHIFT) /* drawn only then: other modes keep their stream */
            for (int i = 0; i < nb; i++) {
                L->oy[i] = (int32_t)rand_below(&t->rng, (size_t)rd_flow_shift_range(&L->flow->cfg, L->h) + 1);
                L->ox[i] = (int32_t)rand_below(&t->rng, (size_t)rd_flow_shift_range(&L->flow->cfg, L->w) + 1);
            }
        if (L->gcap && !normal_stage) rd_rng_seed(&L->grng, rd_rng_u64(&t->rng)); /* only then: keeps the stream */
        job.n[l] = n;
        job.feed[l] = feed;
    }
    t0 = now_s();
    t->cstr_s += t0 - t1;
    job.t = t;
    job.normal_stage = normal_stage;
    /* level 0 (the largest) is task 0, so it starts first */
    rd_team_run(t->team, flow_task, &job, t->nlevels);
    for (int l = 0; l < t->nlevels; l++) {
        if (job.st[l] != RD_OK) {
            if (err) *err = job.err[l];
            return job.st[l];
        }
        t->cur.ml += job.ml[l] / t->nlevels;
        t->cur.bgad += job.bg[l] / t->nlevels;
        t->cur.ml_level[l] += job.ml[l];
        t->cur.b_n[l] = t->lv[l].bgad.b_n;
    }
    t->flow_s += now_s() - t0;
    t->cur.steps++;
    return RD_OK;
}

typedef struct tbatch {
    int cls, start, n;
} tbatch;

static void losses_mean(const rd_train_losses *sum, rd_train_losses *out, int nlevels)
{
    *out = *sum;
    double d = sum->steps > 0 ? (double)sum->steps : 1.0;
    out->occ = sum->occ / d / nlevels;
    out->ml = sum->ml / d;
    out->bgad = sum->bgad / d;
    for (int l = 0; l < nlevels; l++) out->ml_level[l] = sum->ml_level[l] / d;
}

rd_status rd_train_run(rd_train *t, rd_train_progress_fn cb, void *ctx, int *stopped, rd_err *err)
{
    rd_status st = RD_OK;
    int *members = NULL;
    tbatch *batches = NULL;
    int **order = NULL;
    int stop = 0, done_here = 0;
    double t0 = now_s();
    size_t total_imgs = 0;
    if (stopped) *stopped = 0;
    if (t->ncls < 1) return rd_err_set(err, RD_ERR_STATE, "no training classes");
    for (int i = 0; i < t->ncls; i++) {
        if (t->cls[i].nref < 2)
            return rd_err_set(err, RD_ERR_STATE, "class %s has %d train/good images; training needs at least 2",
                              t->cls[i].name, t->cls[i].nref);
        total_imgs += (size_t)t->cls[i].n;
    }
    members = malloc((size_t)t->cfg.batch * sizeof(int));
    batches = malloc(total_imgs * sizeof(tbatch));
    order = calloc((size_t)t->ncls, sizeof(int *));
    if (!members || !batches || !order) goto nomem;
    for (int i = 0; i < t->ncls; i++) {
        order[i] = malloc((size_t)t->cls[i].n * sizeof(int));
        if (!order[i]) goto nomem;
    }
    int ms[2] = {(int)(0.7 * t->cfg.epochs + 0.5), (int)(0.9 * t->cfg.epochs + 0.5)};
    double run_epoch_s = 0;
    int run_epochs = 0;
    while (t->epoch < t->cfg.epochs && !stop) {
        int ep = t->epoch, normal = ep < t->cfg.normal_epochs;
        double te = now_s();
        float lr = rd_adam_multistep_lr(t->cfg.lr, ep, ms, 2, 0.1f);
        for (int l = 0; l < t->nlevels; l++) {
            t->lv[l].cadam.lr = lr;
            t->lv[l].fadam.lr = lr;
        }
        /* per class: shuffled eligible images, cut into batches; then shuffle the batch order */
        int nbatch = 0;
        for (int ci = 0; ci < t->ncls; ci++) {
            tclass *c = &t->cls[ci];
            int k = 0;
            for (int j = 0; j < c->n; j++)
                if (!normal || !c->img[j].label) order[ci][k++] = j;
            for (int j = k - 1; j > 0; j--) {
                int r = (int)rand_below(&t->rng, (size_t)j + 1), tmp = order[ci][j];
                order[ci][j] = order[ci][r];
                order[ci][r] = tmp;
            }
            for (int a = 0; a < k; a += t->cfg.batch) {
                batches[nbatch].cls = ci;
                batches[nbatch].start = a;
                batches[nbatch].n = k - a < t->cfg.batch ? k - a : t->cfg.batch;
                nbatch++;
            }
        }
        for (int j = nbatch - 1; j > 0; j--) {
            int r = (int)rand_below(&t->rng, (size_t)j + 1);
            tbatch tmp = batches[j];
            batches[j] = batches[r];
            batches[r] = tmp;
        }
        memset(&t->cur, 0, sizeof t->cur);
        for (int bi = 0; bi < nbatch; bi++) {
            if (t->cfg.max_seconds > 0 && now_s() - t0 >= t->cfg.max_seconds) {
                stop = 1;
                break;
            }
            const tbatch *b = &batches[bi];
            for (int i = 0; i < b->n; i++) members[i] = order[b->cls][b->start + i];
            st = run_batch(t, &t->cls[b->cls], members, b->n, normal, err);
            if (st != RD_OK) goto out;
            if (cb) {
                rd_train_progress p;
                memset(&p, 0, sizeof p);
                p.epoch = ep;
                p.epochs = t->cfg.epochs;
                p.batch = bi + 1;
                p.nbatches = nbatch;
                p.normal_stage = normal;
                losses_mean(&t->cur, &p.cur, t->nlevels);
                p.elapsed_s = now_s() - t0;
                p.nn_s = t->nn_s;
                p.cstr_s = t->cstr_s;
                p.flow_s = t->flow_s;
                double per_epoch = run_epochs ? run_epoch_s / run_epochs : (now_s() - te) * nbatch / (bi + 1);
                p.eta_s = per_epoch * (t->cfg.epochs - ep) - (now_s() - te);
                if (p.eta_s < 0) p.eta_s = 0;
                p.epoch_done = bi + 1 == nbatch;
                if (bi + 1 == nbatch) p.eta_s = per_epoch * (t->cfg.epochs - ep - 1);
                if (cb(ctx, &p)) stop = 1;
            }
            if (stop && bi + 1 < nbatch) break;
        }
        if (stop && t->cur.steps < (long)nbatch) break; /* a partial epoch is not counted */
        losses_mean(&t->cur, &t->last, t->nlevels);
        t->have_last = 1;
        t->epoch++;
        done_here++;
        run_epoch_s += now_s() - te;
        run_epochs++;
        if (t->cfg.checkpoint_path) {
            st = rd_train_save_checkpoint(t, t->cfg.checkpoint_path, err);
            if (st != RD_OK) goto out;
        }
        if (t->cfg.stop_after > 0 && done_here >= t->cfg.stop_after && t->epoch < t->cfg.epochs) stop = 1;
    }
    if (stopped) *stopped = stop;
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory in training");
out:
    if (order)
        for (int i = 0; i < t->ncls; i++) free(order[i]);
    free(order);
    free(batches);
    free(members);
    return st;
}

/* ---- files ----------------------------------------------------------------- */

typedef struct tensors {
    rd_st_out_tensor *ts;
    char (*names)[RD_LEARN_NAME_MAX];
    size_t n, cap;
    float *bufs[RD_MAX_LEVELS];
} tensors;

static void tensors_release(tensors *x)
{
    free(x->ts);
    free(x->names);
    for (int l = 0; l < RD_MAX_LEVELS; l++) free(x->bufs[l]);
}

/* Model tensors (and, with adam, the optimizer moments). */
static rd_status collect(const rd_train *t, int adam, tensors *x, rd_err *err)
{
    size_t cap = 0;
    memset(x, 0, sizeof *x);
    for (int l = 0; l < t->nlevels; l++) cap += RD_CSTR_TENSORS + rd_flow_tensor_count(t->lv[l].flow) + 4;
    x->ts = calloc(cap, sizeof *x->ts);
    x->names = calloc(cap, sizeof *x->names);
    if (!x->ts || !x->names) return rd_err_set(err, RD_ERR_NOMEM, "out of memory writing the model");
    x->cap = cap;
    for (int l = 0; l < t->nlevels; l++) {
        const tlevel *L = &t->lv[l];
        char prefix[64];
        rd_status st;
        if (L->cstr) {
            snprintf(prefix, sizeof prefix, "level%d.cstr", l);
            x->bufs[l] = malloc((size_t)L->c * L->c * L->cstr->k * L->cstr->k * sizeof(float));
            if (!x->bufs[l]) return rd_err_set(err, RD_ERR_NOMEM, "out of memory writing the model");
            st = rd_cstr_export(L->cstr, prefix, x->bufs[l], x->ts + x->n, x->names + x->n, err);
            if (st != RD_OK) return st;
            x->n += RD_CSTR_TENSORS;
        }
        snprintf(prefix, sizeof prefix, "level%d.flow", l);
        st = rd_flow_export(L->flow, prefix, x->ts + x->n, x->names + x->n, err);
        if (st != RD_OK) return st;
        x->n += rd_flow_tensor_count(L->flow);
        if (adam) {
            struct {
                const char *what;
                const float *p;
                size_t n;
            } a[4] = {{"cstr.adam_m", L->cstr ? L->cadam.m : NULL, L->cstr ? L->cstr->nparams : 0},
                      {"cstr.adam_v", L->cstr ? L->cadam.v : NULL, L->cstr ? L->cstr->nparams : 0},
                      {"flow.adam_m", L->fadam.m, L->flow->nparams},
                      {"flow.adam_v", L->fadam.v, L->flow->nparams}};
            for (int i = 0; i < 4; i++) {
                if (!a[i].p) continue;
                snprintf(x->names[x->n], RD_LEARN_NAME_MAX, "ckpt.level%d.%s", l, a[i].what);
                x->ts[x->n].name = x->names[x->n];
                x->ts[x->n].ndim = 1;
                x->ts[x->n].shape[0] = (int64_t)a[i].n;
                x->ts[x->n].data = a[i].p;
                x->n++;
            }
        }
    }
    return RD_OK;
}

static void cfg_string(const rd_train *t, char *buf, size_t len)
{
    const rd_train_cfg *c = &t->cfg;
    int n = snprintf(buf, len,
                     "levels=%d epochs=%d normal_epochs=%d shots=%d batch=%d blocks=%d hidden=%d kernel=%d cstr=%d "
                     "resid=%d metric=%d ml=%d lr=%a wd=%a chunk=%zu seed=%llu data=%s",
                     t->nlevels, c->epochs, c->normal_epochs, c->shots, c->batch, c->flow_blocks, c->flow_hidden,
                     c->cstr_kernel, c->use_cstr, (int)c->resid, (int)c->metric, (int)c->ml, c->lr, c->wd, c->chunk,
                     (unsigned long long)c->seed, c->data_id ? c->data_id : "");
    for (int l = 0; l < t->nlevels && n > 0 && (size_t)n < len; l++)
        n += snprintf(buf + n, len - (size_t)n, " L%d=%dx%dx%d", l, t->lv[l].h, t->lv[l].w, t->lv[l].c);
    if (c->gas_share > 0 && n > 0 && (size_t)n < len) /* absent when off: older checkpoints match */
        n += snprintf(buf + n, len - (size_t)n, " gas=%a,%d,%a,%a,%a", (double)c->gas_share, c->gas.steps,
                      (double)c->gas.r1, (double)c->gas.r2, (double)c->gas.eta);
    if (c->flow_pos != RD_FLOW_POS_ABS && n > 0 && (size_t)n < len) /* absent for ABS: older checkpoints match */
        n += snprintf(buf + n, len - (size_t)n, " pos=%d shift=%a", c->flow_pos,
                      c->flow_pos == RD_FLOW_POS_SHIFT ? (double)c->flow_shift : 0.0);
    if (t->input_pad && n > 0 && (size_t)n < len) /* absent without: older checkpoints match */
        snprintf(buf + n, len - (size_t)n, " pad=%d", t->input_pad);
}

static void losses_json(const rd_train *t, char *buf, size_t len)
{
    const rd_train_losses *x = rd_train_last_losses(t);
    int n = snprintf(buf, len, "{\"occ\":%.6g,\"ml\":%.6g,\"bgad\":%.6g,\"ml_level\":[", x->occ, x->ml, x->bgad);
    for (int l = 0; l < t->nlevels && n > 0 && (size_t)n < len; l++)
        n += snprintf(buf + n, len - (size_t)n, "%s%.6g", l ? "," : "", x->ml_level[l]);
    if (n > 0 && (size_t)n < len) n += snprintf(buf + n, len - (size_t)n, "],\"b_n\":[");
    for (int l = 0; l < t->nlevels && n > 0 && (size_t)n < len; l++)
        n += snprintf(buf + n, len - (size_t)n, "%s%.6g", l ? "," : "", t->lv[l].bgad.b_n);
    if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "],\"epochs_done\":%d}", t->epoch);
}

#define MAX_META 96

rd_status rd_train_write_model(const rd_train *t, const char *path, const char *const *extra_meta, rd_err *err)
{
    tensors x;
    const char *kv[MAX_META];
    char nl[16], kern[16], blocks[16], hid[16], seed[32], epochs[16], losses[1024], pos[32];
    int n = 0;
    rd_status st = collect(t, 0, &x, err);
    if (st != RD_OK) goto out;
    snprintf(nl, sizeof nl, "%d", t->nlevels);
    snprintf(kern, sizeof kern, "%d", t->cfg.cstr_kernel);
    snprintf(blocks, sizeof blocks, "%d", t->cfg.flow_blocks);
    snprintf(hid, sizeof hid, "%d", t->lv[0].flow->cfg.hid);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->cfg.seed);
    snprintf(epochs, sizeof epochs, "%d", t->epoch);
    losses_json(t, losses, sizeof losses);
    kv[n++] = "resadd.nlevels", kv[n++] = nl;
    kv[n++] = "resadd.residual", kv[n++] = t->cfg.resid == RD_RESID_SQUARED ? "sq" : "diff";
    kv[n++] = "resadd.metric", kv[n++] = t->cfg.metric == RD_POOL_COSINE ? "cosine" : "l2";
    kv[n++] = "resadd.constraintor", kv[n++] = t->cfg.use_cstr ? "on" : "off";
    kv[n++] = "resadd.cstr_kernel", kv[n++] = kern;
    kv[n++] = "resadd.flow_blocks", kv[n++] = blocks;
    kv[n++] = "resadd.flow_hidden", kv[n++] = hid;
    rd_flow_pos_name(&t->lv[0].flow->cfg, pos, sizeof pos);
    kv[n++] = "resadd.flow_pos", kv[n++] = pos;
    kv[n++] = "resadd.seed", kv[n++] = seed;
    kv[n++] = "resadd.epochs", kv[n++] = epochs;
    kv[n++] = "resadd.final_losses", kv[n++] = losses;
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1]; i += 2) {
        if (n + 3 >= MAX_META) {
            st = rd_err_set(err, RD_ERR_LIMIT, "too many metadata entries");
            goto out;
        }
        kv[n++] = extra_meta[i];
        kv[n++] = extra_meta[i + 1];
    }
    kv[n] = NULL;
    st = rd_st_write(path, x.ts, x.n, kv, err);
out:
    tensors_release(&x);
    return st;
}

rd_status rd_train_save_checkpoint(const rd_train *t, const char *path, rd_err *err)
{
    tensors x;
    char cfg[2048], ep[32], rng[32], state[RD_MAX_LEVELS][160], losses[1024], lastl[512];
    const char *kv[32];
    int n = 0;
    rd_status st = collect(t, 1, &x, err);
    if (st != RD_OK) goto out;
    cfg_string(t, cfg, sizeof cfg);
    snprintf(ep, sizeof ep, "%d", t->epoch);
    snprintf(rng, sizeof rng, "%llu", (unsigned long long)t->rng.s);
    losses_json(t, losses, sizeof losses);
    kv[n++] = "resadd.kind", kv[n++] = "resad-checkpoint";
    kv[n++] = "ckpt.config", kv[n++] = cfg;
    kv[n++] = "ckpt.epoch", kv[n++] = ep;
    kv[n++] = "ckpt.rng", kv[n++] = rng;
    kv[n++] = "ckpt.losses", kv[n++] = losses;
    const rd_train_losses *lo = rd_train_last_losses(t);
    snprintf(lastl, sizeof lastl, "%d %a %a %a %a %a %a %a %ld", t->have_last, lo->occ, lo->ml, lo->bgad,
             lo->ml_level[0], lo->ml_level[1], lo->ml_level[2], lo->ml_level[3], lo->steps);
    kv[n++] = "ckpt.last_losses", kv[n++] = lastl;
    static const char *const lkeys[RD_MAX_LEVELS] = {"ckpt.level0", "ckpt.level1", "ckpt.level2", "ckpt.level3"};
    for (int l = 0; l < t->nlevels; l++) {
        const tlevel *L = &t->lv[l];
        snprintf(state[l], sizeof state[l], "%ld %ld %a %ld %a", L->cadam.t, L->fadam.t, L->bgad.b_n,
                 L->bgad.updates, L->cstr ? (double)L->cstr->nbt : 0.0);
        kv[n++] = lkeys[l];
        kv[n++] = state[l];
    }
    kv[n] = NULL;
    st = rd_st_write(path, x.ts, x.n, kv, err);
out:
    tensors_release(&x);
    return st;
}

static rd_status load_vec(const rd_st_file *st, const char *name, float *dst, size_t n, rd_err *err)
{
    int64_t want = (int64_t)n;
    const rd_st_tensor *tt = rd_st_expect(st, name, 1, &want, err);
    if (!tt) return err ? err->code : RD_ERR_FORMAT;
    return rd_st_to_f32(tt, dst, err);
}

rd_status rd_train_resume(rd_train *t, const char *path, rd_err *err)
{
    rd_status st = RD_OK;
    rd_st_file *f = rd_st_open(path, err);
    char cfg[2048];
    if (!f) return err ? err->code : RD_ERR_IO;
    const char *kind = rd_st_meta(f, "resadd.kind"), *c = rd_st_meta(f, "ckpt.config");
    const char *ep = rd_st_meta(f, "ckpt.epoch"), *rng = rd_st_meta(f, "ckpt.rng");
    if (!kind || strcmp(kind, "resad-checkpoint") || !c || !ep || !rng) {
        st = rd_err_set(err, RD_ERR_FORMAT, "%s: not a resad training checkpoint", path);
        goto out;
    }
    cfg_string(t, cfg, sizeof cfg);
    if (strcmp(cfg, c)) {
        st = rd_err_set(err, RD_ERR_MISMATCH,
                        "%s: checkpoint was made with other settings or data:\n  checkpoint: %s\n  now:        %s",
                        path, c, cfg);
        goto out;
    }
    char *end;
    long e = strtol(ep, &end, 10);
    unsigned long long rs = strtoull(rng, NULL, 10);
    if (*end || e < 0 || e > t->cfg.epochs) {
        st = rd_err_set(err, RD_ERR_FORMAT, "%s: bad checkpoint epoch '%s'", path, ep);
        goto out;
    }
    for (int l = 0; l < t->nlevels; l++) {
        tlevel *L = &t->lv[l];
        char prefix[64], key[32], name[RD_LEARN_NAME_MAX];
        snprintf(key, sizeof key, "ckpt.level%d", l);
        const char *s = rd_st_meta(f, key);
        long ct, ft, upd;
        double bn, nbt;
        if (!s || sscanf(s, "%ld %ld %la %ld %la", &ct, &ft, &bn, &upd, &nbt) != 5) {
            st = rd_err_set(err, RD_ERR_FORMAT, "%s: missing or bad %s", path, key);
            goto out;
        }
        if (L->cstr) {
            snprintf(prefix, sizeof prefix, "level%d.cstr", l);
            rd_cstr *m = rd_cstr_import(f, prefix, err);
            if (!m) {
                st = err ? err->code : RD_ERR_FORMAT;
                goto out;
            }
            if (m->nparams != L->cstr->nparams) {
                rd_cstr_free(m);
                st = rd_err_set(err, RD_ERR_MISMATCH, "%s: constraintor %d does not match", path, l);
                goto out;
            }
            memcpy(L->cstr->params, m->params, m->nparams * sizeof(float));
            memcpy(L->cstr->run_mean, m->run_mean, (size_t)L->c * sizeof(float));
            memcpy(L->cstr->run_var, m->run_var, (size_t)L->c * sizeof(float));
            L->cstr->nbt = (float)nbt;
            rd_cstr_free(m);
            snprintf(name, sizeof name, "ckpt.level%d.cstr.adam_m", l);
            if ((st = load_vec(f, name, L->cadam.m, L->cstr->nparams, err)) != RD_OK) goto out;
            snprintf(name, sizeof name, "ckpt.level%d.cstr.adam_v", l);
            if ((st = load_vec(f, name, L->cadam.v, L->cstr->nparams, err)) != RD_OK) goto out;
            L->cadam.t = ct;
        }
        snprintf(prefix, sizeof prefix, "level%d.flow", l);
        rd_flow *fl = rd_flow_import(f, prefix, err);
        if (!fl) {
            st = err ? err->code : RD_ERR_FORMAT;
            goto out;
        }
        if (fl->nparams != L->flow->nparams) {
            rd_flow_free(fl);
            st = rd_err_set(err, RD_ERR_MISMATCH, "%s: flow %d does not match", path, l);
            goto out;
        }
        memcpy(L->flow->params, fl->params, fl->nparams * sizeof(float));
        memcpy(L->flow->rot, fl->rot, (size_t)fl->cfg.k * fl->cfg.c * fl->cfg.c * sizeof(float));
        rd_flow_free(fl);
        snprintf(name, sizeof name, "ckpt.level%d.flow.adam_m", l);
        if ((st = load_vec(f, name, L->fadam.m, L->flow->nparams, err)) != RD_OK) goto out;
        snprintf(name, sizeof name, "ckpt.level%d.flow.adam_v", l);
        if ((st = load_vec(f, name, L->fadam.v, L->flow->nparams, err)) != RD_OK) goto out;
        L->fadam.t = ft;
        L->bgad.b_n = bn;
        L->bgad.updates = upd;
    }
    const char *ll = rd_st_meta(f, "ckpt.last_losses");
    rd_train_losses lo;
    int have;
    memset(&lo, 0, sizeof lo);
    if (!ll || sscanf(ll, "%d %la %la %la %la %la %la %la %ld", &have, &lo.occ, &lo.ml, &lo.bgad, &lo.ml_level[0],
                      &lo.ml_level[1], &lo.ml_level[2], &lo.ml_level[3], &lo.steps) != 9) {
        st = rd_err_set(err, RD_ERR_FORMAT, "%s: missing or bad ckpt.last_losses", path);
        goto out;
    }
    for (int l = 0; l < t->nlevels; l++) lo.b_n[l] = t->lv[l].bgad.b_n;
    t->last = lo;
    t->have_last = have ? 1 : 0;
    t->epoch = (int)e;
    t->rng.s = (uint64_t)rs;
out:
    rd_st_free(f);
    return st;
}
