/* constraintor.c — Conv + BatchNorm + ReLU per level: folded inference,
 * train-mode forward/backward, files (see constraintor.h). */
#include "constraintor.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static rd_cstr *cstr_alloc(int c, int k, rd_err *err)
{
    rd_cstr *m;
    size_t kk = (size_t)k * k * c;
    if (c < 1 || c > RD_CSTR_MAX_C || (k != 1 && k != 3)) {
        rd_err_set(err, RD_ERR_ARG, "constraintor: invalid configuration (C %d, kernel %d; kernel must be 1 or 3)", c, k);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->c = c;
    m->k = k;
    m->eps = 1e-5f;
    m->momentum = 0.1f;
    m->nparams = (size_t)c * kk + 3 * (size_t)c;
    m->params = calloc(m->nparams + 2 * (size_t)c, sizeof(float));
    if (!m->params) goto nomem;
    m->w = m->params;
    m->b = m->w + (size_t)c * kk;
    m->gamma = m->b + c;
    m->beta = m->gamma + c;
    m->run_mean = m->beta + c;
    m->run_var = m->run_mean + c;
    m->cfg_tensor[0] = 1;
    m->cfg_tensor[1] = (float)c;
    m->cfg_tensor[2] = (float)k;
    m->cfg_tensor[3] = m->eps;
    return m;
nomem:
    rd_cstr_free(m);
    rd_err_set(err, RD_ERR_NOMEM, "constraintor: out of memory");
    return NULL;
}

void rd_cstr_free(rd_cstr *m)
{
    if (!m) return;
    free(m->params);
    free(m);
}

rd_cstr *rd_cstr_new(int c, int k, uint64_t seed, rd_err *err)
{
    rd_cstr *m = cstr_alloc(c, k, err);
    rd_rng r;
    if (!m) return NULL;
    rd_rng_seed(&r, seed);
    size_t fan = (size_t)k * k * c;
    double bound = 1.0 / sqrt((double)fan);
    for (size_t i = 0; i < (size_t)c * fan; i++) m->w[i] = (float)((2 * rd_rng_uniform(&r) - 1) * bound);
    for (int i = 0; i < c; i++) {
        m->b[i] = (float)((2 * rd_rng_uniform(&r) - 1) * bound);
        m->gamma[i] = 1;
        m->beta[i] = 0;
        m->run_mean[i] = 0;
        m->run_var[i] = 1;
    }
    return m;
}

/* Map rows [y0, y1) of one h×w×c map unrolled to ((y1−y0)·w) × (k·k·c) rows
 * of col, zero padding k/2. */
static void im2col_rows(const float *x, int h, int w, int c, int k, int y0, int y1, float *col)
{
    const int pad = k / 2;
    const size_t kc = (size_t)k * k * c;
    float *row = col;
    for (int y = y0; y < y1; y++)
        for (int xx = 0; xx < w; xx++, row += kc)
            for (int ky = 0; ky < k; ky++) {
                int sy = y + ky - pad;
                for (int kx = 0; kx < k; kx++) {
                    int sx = xx + kx - pad;
                    float *dst = row + ((size_t)ky * k + kx) * c;
                    if (sy < 0 || sy >= h || sx < 0 || sx >= w)
                        memset(dst, 0, c * sizeof(float));
                    else
                        memcpy(dst, x + ((size_t)sy * w + sx) * c, c * sizeof(float));
                }
            }
}

/* Rows of n maps h×w×c unrolled to (n·h·w) × (k·k·c), zero padding k/2. */
static void im2col(const float *x, int n, int h, int w, int c, int k, float *col)
{
    const size_t per = (size_t)h * w;
    for (int im = 0; im < n; im++)
        im2col_rows(x + (size_t)im * per * c, h, w, c, k, 0, h, col + (size_t)im * per * k * k * c);
}

/* Adjoint of im2col: dx += scatter(dcol). */
static void col2im_add(const float *col, int n, int h, int w, int c, int k, float *dx)
{
    const int pad = k / 2;
    const size_t kc = (size_t)k * k * c;
    for (int im = 0; im < n; im++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                const float *row = col + (((size_t)im * h + y) * w + xx) * kc;
                for (int ky = 0; ky < k; ky++) {
                    int sy = y + ky - pad;
                    if (sy < 0 || sy >= h) continue;
                    for (int kx = 0; kx < k; kx++) {
                        int sx = xx + kx - pad;
                        if (sx < 0 || sx >= w) continue;
                        const float *src = row + ((size_t)ky * k + kx) * c;
                        float *dst = dx + (((size_t)im * h + sy) * w + sx) * c;
                        for (int j = 0; j < c; j++) dst[j] += src[j];
                    }
                }
            }
}

/* ---- inference ------------------------------------------------------------- */

struct rd_cstr_plan {
    int c, k;
    float *wf; /* c × k·k·c */
    float *bf; /* c */
};

rd_cstr_plan *rd_cstr_plan_new(const rd_cstr *m, rd_err *err)
{
    const size_t kc = (size_t)m->k * m->k * m->c;
    rd_cstr_plan *p = calloc(1, sizeof *p);
    if (!p || !(p->wf = malloc(((size_t)m->c * kc + m->c) * sizeof(float)))) {
        free(p);
        rd_err_set(err, RD_ERR_NOMEM, "constraintor plan: out of memory");
        return NULL;
    }
    p->c = m->c;
    p->k = m->k;
    p->bf = p->wf + (size_t)m->c * kc;
    for (int o = 0; o < m->c; o++) {
        double sc = m->gamma[o] / sqrt((double)m->run_var[o] + m->eps);
        for (size_t i = 0; i < kc; i++) p->wf[(size_t)o * kc + i] = (float)(m->w[(size_t)o * kc + i] * sc);
        p->bf[o] = (float)((m->b[o] - m->run_mean[o]) * sc + m->beta[o]);
    }
    return p;
}

void rd_cstr_plan_free(rd_cstr_plan *p)
{
    if (!p) return;
    free(p->wf);
    free(p);
}

size_t rd_cstr_plan_scratch(const rd_cstr_plan *p, int h, int w)
{
    if (p->k == 1) return 0;
    return rd_arena_need((size_t)h * w * p->k * p->k * p->c * sizeof(float));
}

double rd_cstr_plan_macs(const rd_cstr_plan *p, int h, int w)
{
    return (double)h * w * p->c * (double)p->k * p->k * p->c;
}

/* Rows [y0, y1) of the map: their im2col rows (k > 1) into col, then
 * out = relu(col·W'ᵀ + b') for them. */
static void cstr_rows(const rd_cstr_plan *p, const float *x, int h, int w, int y0, int y1, float *cb, float *out)
{
    const size_t kc = (size_t)p->k * p->k * p->c, r0 = (size_t)y0 * w, nr = (size_t)(y1 - y0) * w;
    const float *col = x + r0 * p->c;
    if (nr == 0) return;
    if (p->k > 1) {
        im2col_rows(x, h, w, p->c, p->k, y0, y1, cb + r0 * kc);
        col = cb + r0 * kc;
    }
    float *o = out + r0 * p->c;
    for (size_t i = 0; i < nr; i++) memcpy(o + i * p->c, p->bf, p->c * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, p->c, (int)kc, 1.0f, col, (int)kc, p->wf, (int)kc,
                1.0f, o, p->c);
    for (size_t i = 0; i < nr * p->c; i++)
        if (!(o[i] > 0)) o[i] = 0;
}

typedef struct cstr_job {
    const rd_cstr_plan *p;
    const float *x;
    float *cb, *out;
    int h, w, ntasks;
} cstr_job;

static void cstr_task(void *ctx, int t)
{
    const cstr_job *j = ctx;
    cstr_rows(j->p, j->x, j->h, j->w, j->h * t / j->ntasks, j->h * (t + 1) / j->ntasks, j->cb, j->out);
}

rd_status rd_cstr_plan_forward_team(const rd_cstr_plan *p, const float *x, int h, int w, float *out, rd_team *team,
                                    rd_arena *a, rd_err *err)
{
    const size_t n = (size_t)h * w, kc = (size_t)p->k * p->k * p->c;
    size_t mark = rd_arena_mark(a);
    cstr_job j = {p, x, NULL, out, h, w, 1};
    if (h < 1 || w < 1 || h > RD_CSTR_MAX_HW || w > RD_CSTR_MAX_HW)
        return rd_err_set(err, RD_ERR_ARG, "constraintor: map %dx%d out of range", h, w);
    if (p->k > 1 && !(j.cb = rd_arena_floats(a, n * kc)))
        return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (constraintor)");
    /* a few tasks per thread so uneven rows balance; never more than rows */
    j.ntasks = rd_team_size(team) > 1 ? 4 * rd_team_size(team) : 1;
    if (j.ntasks > h) j.ntasks = h;
    rd_team_run(team, cstr_task, &j, j.ntasks);
    rd_arena_rewind(a, mark);
    return RD_OK;
}

rd_status rd_cstr_plan_forward(const rd_cstr_plan *p, const float *x, int h, int w, float *out, rd_arena *a,
                               rd_err *err)
{
    return rd_cstr_plan_forward_team(p, x, h, w, out, NULL, a, err);
}

/* ---- training ---------------------------------------------------------------- */

struct rd_cstr_ws {
    int max_n, h, w, n;
    const float *col; /* im2col rows of the last forward (or x for 1×1) */
    float *colbuf;    /* max_n·h·w × k·k·c (k > 1) */
    float *xhat;      /* max_n·h·w × c */
    float *out;       /* the last output (ReLU mask) */
    float *dy;        /* max_n·h·w × c */
    float *dcol;      /* max_n·h·w × k·k·c */
    float *invstd;    /* c */
    double *acc;      /* 2c */
};

void rd_cstr_ws_free(rd_cstr_ws *ws)
{
    if (!ws) return;
    free(ws->colbuf);
    free(ws->xhat);
    free(ws->dcol);
    free(ws->acc);
    free(ws);
}

rd_cstr_ws *rd_cstr_ws_new(const rd_cstr *m, int max_n, int h, int w, rd_err *err)
{
    size_t rows, kc = (size_t)m->k * m->k * m->c, colf, xf;
    rd_cstr_ws *ws;
    if (max_n < 1 || h < 1 || w < 1 || h > RD_CSTR_MAX_HW || w > RD_CSTR_MAX_HW ||
        !rd_mul_size((size_t)max_n, (size_t)h * w, &rows) || !rd_mul_size(rows, kc, &colf) ||
        !rd_mul_size(rows, (size_t)m->c, &xf) || colf > ((size_t)1 << 32)) {
        rd_err_set(err, RD_ERR_LIMIT, "constraintor workspace: batch %d of %dx%d is out of range", max_n, h, w);
        return NULL;
    }
    ws = calloc(1, sizeof *ws);
    if (!ws) goto nomem;
    ws->max_n = max_n;
    ws->h = h;
    ws->w = w;
    if (m->k > 1 && (!(ws->colbuf = malloc(colf * sizeof(float))) || !(ws->dcol = malloc(colf * sizeof(float)))))
        goto nomem;
    ws->xhat = malloc((3 * xf + m->c) * sizeof(float));
    ws->acc = malloc(2 * (size_t)m->c * sizeof(double));
    if (!ws->xhat || !ws->acc) goto nomem;
    ws->out = ws->xhat + xf;
    ws->dy = ws->out + xf;
    ws->invstd = ws->dy + xf;
    return ws;
nomem:
    rd_cstr_ws_free(ws);
    rd_err_set(err, RD_ERR_NOMEM, "constraintor workspace: out of memory");
    return NULL;
}

rd_status rd_cstr_train_forward(rd_cstr *m, rd_cstr_ws *ws, const float *x, int n, float *out, int update_stats,
                                rd_err *err)
{
    const int c = m->c;
    const size_t kc = (size_t)m->k * m->k * c, rows = (size_t)n * ws->h * ws->w;
    double *mean = ws->acc, *var = ws->acc + c;
    if (n < 1 || n > ws->max_n) return rd_err_set(err, RD_ERR_ARG, "constraintor forward: batch %d over %d", n, ws->max_n);
    if (rows < 2) return rd_err_set(err, RD_ERR_ARG, "constraintor forward: BatchNorm needs more than one position");
    ws->n = n;
    if (m->k > 1) {
        im2col(x, n, ws->h, ws->w, c, m->k, ws->colbuf);
        ws->col = ws->colbuf;
    } else {
        ws->col = x;
    }
    float *y = ws->xhat;
    for (size_t i = 0; i < rows; i++) memcpy(y + i * c, m->b, c * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, c, (int)kc, 1.0f, ws->col, (int)kc, m->w, (int)kc,
                1.0f, y, c);
    for (int j = 0; j < c; j++) mean[j] = var[j] = 0;
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) mean[j] += y[i * c + j];
    for (int j = 0; j < c; j++) mean[j] /= (double)rows;
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) {
            double d = y[i * c + j] - mean[j];
            var[j] += d * d;
        }
    for (int j = 0; j < c; j++) {
        double vb = var[j] / (double)rows;
        ws->invstd[j] = (float)(1.0 / sqrt(vb + m->eps));
        if (update_stats) {
            m->run_mean[j] = (float)((1 - m->momentum) * m->run_mean[j] + m->momentum * mean[j]);
            m->run_var[j] = (float)((1 - m->momentum) * m->run_var[j] + m->momentum * var[j] / (double)(rows - 1));
        }
    }
    if (update_stats) m->nbt += 1;
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) {
            float xh = (float)((y[i * c + j] - mean[j]) * ws->invstd[j]);
            float o = m->gamma[j] * xh + m->beta[j];
            y[i * c + j] = xh;
            o = o > 0 ? o : 0;
            out[i * c + j] = o;
            ws->out[i * c + j] = o;
        }
    return RD_OK;
}

rd_status rd_cstr_train_backward(const rd_cstr *m, rd_cstr_ws *ws, const float *dout, float *grad, float *dx,
                                 rd_err *err)
{
    const int c = m->c;
    const size_t kc = (size_t)m->k * m->k * c, rows = (size_t)ws->n * ws->h * ws->w;
    double *s1 = ws->acc, *s2 = ws->acc + c;
    float *gw = grad, *gb = grad + (size_t)c * kc, *gg = gb + c, *gbeta = gg + c;
    if (ws->n == 0) return rd_err_set(err, RD_ERR_STATE, "constraintor backward without a forward");
    for (int j = 0; j < c; j++) s1[j] = s2[j] = 0;
    /* dz = dout·[out > 0]; dβ = Σ dz; dγ = Σ dz·x̂; dx̂ = dz·γ */
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) {
            float dz = ws->out[i * c + j] > 0 ? dout[i * c + j] : 0;
            s1[j] += dz;
            s2[j] += (double)dz * ws->xhat[i * c + j];
            ws->dy[i * c + j] = dz;
        }
    for (int j = 0; j < c; j++) {
        gbeta[j] += (float)s1[j];
        gg[j] += (float)s2[j];
        /* means of dx̂ and dx̂·x̂ */
        s1[j] = s1[j] * m->gamma[j] / (double)rows;
        s2[j] = s2[j] * m->gamma[j] / (double)rows;
    }
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) {
            float dxh = ws->dy[i * c + j] * m->gamma[j];
            ws->dy[i * c + j] = ws->invstd[j] * (float)(dxh - s1[j] - ws->xhat[i * c + j] * s2[j]);
        }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, (int)kc, (int)rows, 1.0f, ws->dy, c, ws->col, (int)kc,
                1.0f, gw, (int)kc);
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < c; j++) gb[j] += ws->dy[i * c + j];
    if (dx) {
        if (m->k == 1) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, c, c, 1.0f, ws->dy, c, m->w, c, 0.0f, dx,
                        c);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)kc, c, 1.0f, ws->dy, c, m->w,
                        (int)kc, 0.0f, ws->dcol, (int)kc);
            memset(dx, 0, rows * c * sizeof(float));
            col2im_add(ws->dcol, ws->n, ws->h, ws->w, c, m->k, dx);
        }
    }
    return RD_OK;
}

/* ---- files ------------------------------------------------------------------- */

static int name_ok(char *dst, const char *prefix, const char *suffix)
{
    int n = snprintf(dst, RD_LEARN_NAME_MAX, "%s%s", prefix, suffix);
    return n > 0 && n < RD_LEARN_NAME_MAX;
}

static const char *const cstr_sfx[RD_CSTR_TENSORS] = {".config", ".conv.weight", ".conv.bias", ".bn.weight",
                                                      ".bn.bias", ".bn.running_mean", ".bn.running_var"};

rd_status rd_cstr_export(const rd_cstr *m, const char *prefix, float *wt, rd_st_out_tensor *out,
                         char (*names)[RD_LEARN_NAME_MAX], rd_err *err)
{
    const int c = m->c, k = m->k;
    const float *data[RD_CSTR_TENSORS] = {m->cfg_tensor, wt, m->b, m->gamma, m->beta, m->run_mean, m->run_var};
    /* [co][ky][kx][ci] → torch [co][ci][ky][kx] */
    for (int o = 0; o < c; o++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int i = 0; i < c; i++)
                    wt[(((size_t)o * c + i) * k + ky) * k + kx] = m->w[(((size_t)o * k + ky) * k + kx) * c + i];
    for (int t = 0; t < RD_CSTR_TENSORS; t++) {
        if (!name_ok(names[t], prefix, cstr_sfx[t]))
            return rd_err_set(err, RD_ERR_ARG, "constraintor: tensor prefix \"%.60s\" too long", prefix);
        memset(&out[t], 0, sizeof out[t]);
        out[t].name = names[t];
        out[t].data = data[t];
        if (t == 0) {
            out[t].ndim = 1;
            out[t].shape[0] = 4;
        } else if (t == 1) {
            out[t].ndim = 4;
            out[t].shape[0] = c;
            out[t].shape[1] = c;
            out[t].shape[2] = k;
            out[t].shape[3] = k;
        } else {
            out[t].ndim = 1;
            out[t].shape[0] = c;
        }
    }
    return RD_OK;
}

rd_cstr *rd_cstr_import(const rd_st_file *st, const char *prefix, rd_err *err)
{
    char name[RD_LEARN_NAME_MAX];
    float cv[4], *wt = NULL;
    const int64_t four = 4;
    const rd_st_tensor *t;
    rd_cstr *m = NULL;
    if (!name_ok(name, prefix, ".config")) goto toolong;
    t = rd_st_expect(st, name, 1, &four, err);
    if (!t || rd_st_to_f32(t, cv, err) != RD_OK) return NULL;
    if (cv[0] != 1) {
        rd_err_set(err, RD_ERR_UNSUPPORTED, "%s: constraintor format version %g is not supported", name, (double)cv[0]);
        return NULL;
    }
    if (!(cv[1] >= 1 && cv[1] <= RD_CSTR_MAX_C && cv[1] == floorf(cv[1])) || !(cv[2] == 1 || cv[2] == 3) ||
        !(cv[3] > 0 && cv[3] < 1)) {
        rd_err_set(err, RD_ERR_FORMAT, "%s: invalid constraintor configuration", name);
        return NULL;
    }
    if ((uint64_t)cv[1] * (uint64_t)cv[1] * (uint64_t)cv[2] * (uint64_t)cv[2] > rd_st_values(st)) {
        /* the weight must be in the file before c·c·k·k floats are allocated for it */
        rd_err_set(err, RD_ERR_FORMAT, "%s: the file is too small for a constraintor of C %g, kernel %g", name,
                   (double)cv[1], (double)cv[2]);
        return NULL;
    }
    m = cstr_alloc((int)cv[1], (int)cv[2], err);
    if (!m) return NULL;
    m->eps = m->cfg_tensor[3] = cv[3];
    const int c = m->c, k = m->k;
    const size_t nw = (size_t)c * c * k * k;
    if (!(wt = malloc(nw * sizeof(float)))) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    float *data[RD_CSTR_TENSORS] = {NULL, wt, m->b, m->gamma, m->beta, m->run_mean, m->run_var};
    for (int i = 1; i < RD_CSTR_TENSORS; i++) {
        int64_t shp[4] = {c, c, k, k};
        if (!name_ok(name, prefix, cstr_sfx[i])) goto toolong;
        t = rd_st_expect(st, name, i == 1 ? 4 : 1, shp, err);
        if (!t || rd_st_to_f32(t, data[i], err) != RD_OK) goto fail;
        for (size_t j = 0; j < t->numel; j++)
            if (!isfinite(data[i][j]) || (i == RD_CSTR_TENSORS - 1 && !(data[i][j] >= 0))) {
                rd_err_set(err, RD_ERR_FORMAT, "%s: invalid value", name);
                goto fail;
            }
    }
    for (int o = 0; o < c; o++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int i = 0; i < c; i++)
                    m->w[(((size_t)o * k + ky) * k + kx) * c + i] = wt[(((size_t)o * c + i) * k + ky) * k + kx];
    free(wt);
    return m;
toolong:
    rd_err_set(err, RD_ERR_ARG, "constraintor: tensor prefix \"%.60s\" too long", prefix);
fail:
    free(wt);
    rd_cstr_free(m);
    return NULL;
}

rd_status rd_cstr_save(const rd_cstr *m, const char *path, const char *prefix, rd_err *err)
{
    rd_st_out_tensor ts[RD_CSTR_TENSORS];
    char names[RD_CSTR_TENSORS][RD_LEARN_NAME_MAX];
    float *wt = malloc((size_t)m->c * m->c * m->k * m->k * sizeof(float));
    rd_status st;
    if (!wt) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    st = rd_cstr_export(m, prefix, wt, ts, names, err);
    if (st == RD_OK) {
        const char *meta[] = {"format", "resadd-constraintor", NULL};
        st = rd_st_write(path, ts, RD_CSTR_TENSORS, meta, err);
    }
    free(wt);
    return st;
}

rd_cstr *rd_cstr_load(const char *path, const char *prefix, rd_err *err)
{
    rd_st_file *st = rd_st_open(path, err);
    rd_cstr *m;
    if (!st) return NULL;
    m = rd_cstr_import(st, prefix, err);
    rd_st_free(st);
    return m;
}
