/* flow.c — conditional normalizing flow (AllInOneBlock × K): initialisation,
 * inference plan, files.  Training is in flow_train.c, the elementwise
 * kernels in flow_kern.c.  See flow.h for the maths.
 *
 * Everything is row-major with one row per feature position.  GEMMs go to
 * OpenBLAS.  Inference runs a level in chunks of PLAN_CHUNK rows through all K
 * blocks, so a chunk's hidden activations stay in L2. */
#include "flow.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow_kern.h"
#include "rng.h"
#include "team.h"

#define LOG_2PI 1.8378770664093453
#define PLAN_CHUNK 256 /* rows per inference chunk: hidden block stays in L2 */

void rd_flow_posenc(int p, int y, int x, float *out)
{
    const int d = p / 2;
    for (int k = 0; k < d / 2; k++) {
        /* torch: div_term = exp(arange(0, d, 2) · −ln(1e4)/d), float32 */
        float div = expf((float)(2 * k) * -(logf(10000.0f) / (float)d));
        float ax = (float)x * div, ay = (float)y * div;
        out[2 * k] = sinf(ax);
        out[2 * k + 1] = cosf(ax);
        out[d + 2 * k] = sinf(ay);
        out[d + 2 * k + 1] = cosf(ay);
    }
}

/* Encodings of coordinates 0..n-1 for one axis: n × (p/2), the x half layout. */
int rd_flow_haar(int c, uint64_t seed, float *out)
{
    /* Householder QR of a Gaussian in double; Q·diag(sign(diag R)) is Haar on
     * O(c); flipping the first column when det < 0 makes it Haar on SO(c). */
    double *a = malloc((size_t)c * c * sizeof *a), *q = malloc((size_t)c * c * sizeof *q);
    double *v = malloc((size_t)c * sizeof *v), *d = malloc((size_t)c * sizeof *d);
    rd_rng r;
    int ok = a && q && v && d, neg = 0;
    if (!ok) goto out;
    rd_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)c * c; i++) a[i] = rd_rng_normal(&r);
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) q[(size_t)i * c + j] = i == j;
    for (int k = 0; k < c; k++) {
        /* reflect column k below the diagonal: v = x + sign(x0)·‖x‖·e0 */
        double nrm = 0;
        for (int i = k; i < c; i++) nrm += a[(size_t)i * c + k] * a[(size_t)i * c + k];
        nrm = sqrt(nrm);
        double x0 = a[(size_t)k * c + k], alpha = x0 >= 0 ? -nrm : nrm, vn = 0;
        for (int i = k; i < c; i++) v[i] = a[(size_t)i * c + k];
        v[k] -= alpha;
        for (int i = k; i < c; i++) vn += v[i] * v[i];
        if (vn > 0) {
            neg ^= 1; /* each reflection has det −1 */
            for (int j = k; j < c; j++) { /* A ← (I − 2vvᵀ/vᵀv) A */
                double s = 0;
                for (int i = k; i < c; i++) s += v[i] * a[(size_t)i * c + j];
                s *= 2 / vn;
                for (int i = k; i < c; i++) a[(size_t)i * c + j] -= s * v[i];
            }
            for (int i = 0; i < c; i++) { /* Q ← Q (I − 2vvᵀ/vᵀv) */
                double s = 0;
                for (int j = k; j < c; j++) s += q[(size_t)i * c + j] * v[j];
                s *= 2 / vn;
                for (int j = k; j < c; j++) q[(size_t)i * c + j] -= s * v[j];
            }
        }
        d[k] = a[(size_t)k * c + k] < 0 ? -1.0 : 1.0;
    }
    /* det(Q) = (−1)^reflections; the sign fix multiplies by Π d */
    for (int k = 0; k < c; k++)
        if (d[k] < 0) neg ^= 1;
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            double s = d[j] * ((j == 0 && neg) ? -1.0 : 1.0);
            out[(size_t)i * c + j] = (float)(q[(size_t)i * c + j] * s);
        }
out:
    free(a);
    free(q);
    free(v);
    free(d);
    return ok;
}

/* ---- construction ---------------------------------------------------------- */

void rd_flow_cfg_default(rd_flow_cfg *cfg, int c, int k)
{
    cfg->c = c;
    cfg->k = k;
    cfg->p = RD_FLOW_DEFAULT_P;
    cfg->hid = 0;
    cfg->clamp = RD_FLOW_DEFAULT_CLAMP;
    cfg->pos = RD_FLOW_POS_ABS;
    cfg->shift = RD_FLOW_DEFAULT_SHIFT;
}

int rd_flow_shift_range(const rd_flow_cfg *cfg, int n)
{
    if (cfg->pos != RD_FLOW_POS_SHIFT || n <= 1) return 0;
    return (int)floorf(cfg->shift * (float)(n - 1) + 0.5f);
}

int rd_flow_pos_parse(const char *s, rd_flow_cfg *cfg)
{
    if (!strcmp(s, "abs")) cfg->pos = RD_FLOW_POS_ABS;
    else if (!strcmp(s, "none")) cfg->pos = RD_FLOW_POS_NONE;
    else if (!strcmp(s, "shift")) {
        cfg->pos = RD_FLOW_POS_SHIFT;
        cfg->shift = RD_FLOW_DEFAULT_SHIFT;
    } else if (!strncmp(s, "shift:", 6)) {
        char *end;
        float f = strtof(s + 6, &end);
        if (end == s + 6 || *end || !(f > 0 && f <= 4)) return 0;
        cfg->pos = RD_FLOW_POS_SHIFT;
        cfg->shift = f;
    } else
        return 0;
    return 1;
}

void rd_flow_pos_name(const rd_flow_cfg *cfg, char *buf, size_t len)
{
    if (cfg->pos == RD_FLOW_POS_SHIFT) snprintf(buf, len, "shift:%g", (double)cfg->shift);
    else snprintf(buf, len, "%s", cfg->pos == RD_FLOW_POS_NONE ? "none" : "abs");
}

static rd_flow *flow_alloc(const rd_flow_cfg *cfg_in, rd_err *err)
{
    rd_flow_cfg cfg = *cfg_in;
    rd_flow *f;
    size_t stride, total, rot;
    if (cfg.c < 2 || cfg.c > RD_FLOW_MAX_C || cfg.k < 1 || cfg.k > RD_FLOW_MAX_K || cfg.p < 4 ||
        cfg.p % 4 != 0 || cfg.p > 4096 || cfg.hid < 0 || cfg.hid > RD_FLOW_MAX_HID ||
        !(cfg.clamp > 0 && cfg.clamp < 100) || cfg.pos < RD_FLOW_POS_ABS || cfg.pos > RD_FLOW_POS_SHIFT ||
        (cfg.pos == RD_FLOW_POS_SHIFT && !(cfg.shift > 0 && cfg.shift <= 4))) {
        rd_err_set(err, RD_ERR_ARG,
                   "flow: invalid configuration (C %d, K %d, P %d, hidden %d, clamp %g, position %d, shift %g)",
                   cfg.c, cfg.k, cfg.p, cfg.hid, (double)cfg.clamp, cfg.pos, (double)cfg.shift);
        return NULL;
    }
    f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->cp = cfg.c - cfg.c / 2;
    f->ca = cfg.c / 2;
    f->in = f->cp + cfg.p;
    if (cfg.hid == 0) cfg.hid = 2 * f->in;
    if (cfg.pos != RD_FLOW_POS_SHIFT) cfg.shift = cfg.pos == RD_FLOW_POS_ABS ? RD_FLOW_DEFAULT_SHIFT : 0;
    f->cfg = cfg;
    f->cfg_tensor[0] = cfg.pos == RD_FLOW_POS_ABS ? 1 : 2;
    f->cfg_tensor[1] = (float)cfg.c;
    f->cfg_tensor[2] = (float)cfg.k;
    f->cfg_tensor[3] = (float)cfg.p;
    f->cfg_tensor[4] = (float)cfg.hid;
    f->cfg_tensor[5] = cfg.clamp;
    f->cfg_tensor[6] = (float)cfg.pos;
    f->cfg_tensor[7] = cfg.shift;
    f->cfg_len = cfg.pos == RD_FLOW_POS_ABS ? 6 : 8;
    stride = (size_t)cfg.hid * f->in + cfg.hid + (size_t)2 * f->ca * cfg.hid + 2 * f->ca + 2 * (size_t)cfg.c;
    f->block_stride = stride;
    total = stride * (size_t)cfg.k;
    f->nparams = total;
    rot = (size_t)cfg.k * cfg.c * cfg.c;
    f->params = calloc(total, sizeof(float));
    f->rot = calloc(rot, sizeof(float));
    if (!f->params || !f->rot) goto nomem;
    return f;
nomem:
    rd_flow_free(f);
    rd_err_set(err, RD_ERR_NOMEM, "flow: out of memory");
    return NULL;
}

void rd_flow_free(rd_flow *f)
{
    if (!f) return;
    free(f->params);
    free(f->rot);
    free(f);
}

rd_flow_block rd_flow_block_view(const rd_flow *f, float *flat, int block)
{
    rd_flow_block b;
    float *p = flat + f->block_stride * (size_t)block;
    const size_t hid = (size_t)f->cfg.hid;
    b.w1 = p;
    p += hid * f->in;
    b.b1 = p;
    p += hid;
    b.w2 = p;
    p += (size_t)2 * f->ca * hid;
    b.b2 = p;
    p += 2 * (size_t)f->ca;
    b.gamma = p;
    p += f->cfg.c;
    b.offset = p;
    return b;
}

rd_flow *rd_flow_new(const rd_flow_cfg *cfg, uint64_t seed, rd_err *err)
{
    rd_flow *f = flow_alloc(cfg, err);
    rd_rng r;
    if (!f) return NULL;
    rd_rng_seed(&r, seed);
    const float g0 = (float)(2.0 * log(exp(5.0) - 1.0)); /* softplus init so g = 1 */
    for (int k = 0; k < f->cfg.k; k++) {
        rd_flow_block b = rd_flow_block_view(f, f->params, k);
        const int hid = f->cfg.hid;
        double b1 = 1.0 / sqrt((double)f->in), b2 = 1.0 / sqrt((double)hid);
        for (size_t i = 0; i < (size_t)hid * f->in; i++) b.w1[i] = (float)((2 * rd_rng_uniform(&r) - 1) * b1);
        for (int i = 0; i < hid; i++) b.b1[i] = (float)((2 * rd_rng_uniform(&r) - 1) * b1);
        for (size_t i = 0; i < (size_t)2 * f->ca * hid; i++) b.w2[i] = (float)((2 * rd_rng_uniform(&r) - 1) * b2);
        for (int i = 0; i < 2 * f->ca; i++) b.b2[i] = (float)((2 * rd_rng_uniform(&r) - 1) * b2);
        for (int i = 0; i < f->cfg.c; i++) {
            b.gamma[i] = g0;
            b.offset[i] = 0;
        }
        if (!rd_flow_haar(f->cfg.c, rd_rng_u64(&r), f->rot + (size_t)k * f->cfg.c * f->cfg.c)) {
            rd_flow_free(f);
            rd_err_set(err, RD_ERR_NOMEM, "flow: out of memory");
            return NULL;
        }
    }
    return f;
}

/* ---- inference plan -------------------------------------------------------- */

typedef struct plan_block {
    float *w1x;  /* hid × cp */
    float *w1t;  /* cp × hid: w1x transposed (the fused subnet, flow_kern.h) */
    float *w2t;  /* hid × 2ca: w2 transposed */
    float *atab; /* w × hid: W1 columns of the x encoding */
    float *btab; /* h × hid: W1 columns of the y encoding, + b1 */
    float *w2;   /* 2ca × hid, ×0.1 */
    float *b2;   /* 2ca, ×0.1 */
    float *rg;   /* c × c: R·diag(g) */
    float *ob;   /* c: offset·Rᵀ (or g/offset for the last block) */
    float *g;    /* c (last block) */
    float *off;  /* c (last block) */
} plan_block;

struct rd_flow_plan {
    int c, k, cp, ca, hid, h, w;
    float clamp;
    double logdet_const;
    plan_block *b;
    float *mem;
};

void rd_flow_plan_free(rd_flow_plan *p)
{
    if (!p) return;
    free(p->b);
    free(p->mem);
    free(p);
}

rd_flow_plan *rd_flow_plan_new(const rd_flow *f, int h, int w, rd_err *err)
{
    return rd_flow_plan_new_at(f, h, w, h, w, err);
}

float rd_flow_pos_scale(int n, int n_trained)
{
    if (n <= 1 || n_trained <= 1 || n == n_trained) return 1.0f;
    return (float)(n_trained - 1) / (float)(n - 1);
}

rd_flow_plan *rd_flow_plan_new_at(const rd_flow *f, int h, int w, int trained_h, int trained_w, rd_err *err)
{
    const int none = f->cfg.pos == RD_FLOW_POS_NONE;
    const float scy = none ? 0.0f : rd_flow_pos_scale(h, trained_h), scx = none ? 0.0f : rd_flow_pos_scale(w, trained_w);
    /* SHIFT: the middle of the translations seen in training */
    const float oy = 0.5f * (float)rd_flow_shift_range(&f->cfg, trained_h);
    const float ox = 0.5f * (float)rd_flow_shift_range(&f->cfg, trained_w);
    rd_flow_plan *p = NULL;
    float *pew = NULL, *peh = NULL;
    const int c = f->cfg.c, hid = f->cfg.hid, cp = f->cp, ca = f->ca, d = f->cfg.p / 2;
    size_t per, total;
    if (h < 1 || w < 1 || h > RD_FLOW_MAX_HW || w > RD_FLOW_MAX_HW) {
        rd_err_set(err, RD_ERR_ARG, "flow plan: level size %dx%d out of range", h, w);
        return NULL;
    }
    per = 2 * (size_t)hid * cp + (size_t)(w + h) * hid + 2 * (size_t)2 * ca * hid + 2 * (size_t)ca +
          (size_t)c * c + 3 * (size_t)c;
    total = per * (size_t)f->cfg.k;
    p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->b = calloc((size_t)f->cfg.k, sizeof *p->b);
    p->mem = malloc(total * sizeof(float));
    pew = malloc((size_t)w * d * sizeof(float));
    peh = malloc((size_t)h * d * sizeof(float));
    if (!p->b || !p->mem || !pew || !peh) goto nomem;
    p->c = c;
    p->k = f->cfg.k;
    p->cp = cp;
    p->ca = ca;
    p->hid = hid;
    p->h = h;
    p->w = w;
    p->clamp = f->cfg.clamp;
    rd_flow_k_posenc_axis_affine(f->cfg.p, w, scx, ox, pew);
    rd_flow_k_posenc_axis_affine(f->cfg.p, h, scy, oy, peh);
    float *m = p->mem;
    double ld = 0;
    for (int k = 0; k < f->cfg.k; k++) {
        rd_flow_block src = rd_flow_block_view(f, f->params, k);
        const float *rot = f->rot + (size_t)k * c * c;
        plan_block *b = &p->b[k];
        b->w1x = m, m += (size_t)hid * cp;
        b->w1t = m, m += (size_t)hid * cp;
        b->w2t = m, m += (size_t)2 * ca * hid;
        b->atab = m, m += (size_t)w * hid;
        b->btab = m, m += (size_t)h * hid;
        b->w2 = m, m += (size_t)2 * ca * hid;
        b->b2 = m, m += 2 * (size_t)ca;
        b->rg = m, m += (size_t)c * c;
        b->ob = m, m += c;
        b->g = m, m += c;
        b->off = m, m += c;
        for (int i = 0; i < hid; i++) memcpy(b->w1x + (size_t)i * cp, src.w1 + (size_t)i * f->in, cp * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, w, hid, d, 1.0f, pew, d, src.w1 + cp, f->in, 0.0f,
                    b->atab, hid);
        for (int y = 0; y < h; y++) memcpy(b->btab + (size_t)y * hid, src.b1, hid * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h, hid, d, 1.0f, peh, d, src.w1 + cp + d, f->in,
                    1.0f, b->btab, hid);
        for (size_t i = 0; i < (size_t)2 * ca * hid; i++) b->w2[i] = 0.1f * src.w2[i];
        for (int i = 0; i < hid; i++)
            for (int j = 0; j < cp; j++) b->w1t[(size_t)j * hid + i] = b->w1x[(size_t)i * cp + j];
        for (int i = 0; i < 2 * ca; i++)
            for (int t = 0; t < hid; t++) b->w2t[(size_t)t * 2 * ca + i] = b->w2[(size_t)i * hid + t];
        for (int i = 0; i < 2 * ca; i++) b->b2[i] = 0.1f * src.b2[i];
        for (int j = 0; j < c; j++) {
            b->g[j] = rd_flow_k_gscale(src.gamma[j]);
            b->off[j] = src.offset[j];
            ld += log((double)b->g[j]);
        }
        for (int i = 0; i < c; i++) {
            double s = 0;
            for (int j = 0; j < c; j++) {
                b->rg[(size_t)i * c + j] = rot[(size_t)i * c + j] * b->g[j];
                s += (double)src.offset[j] * rot[(size_t)i * c + j];
            }
            b->ob[i] = (float)s;
        }
    }
    p->logdet_const = ld;
    free(pew);
    free(peh);
    return p;
nomem:
    free(pew);
    free(peh);
    rd_flow_plan_free(p);
    rd_err_set(err, RD_ERR_NOMEM, "flow plan: out of memory");
    return NULL;
}

static size_t plan_chunk_floats(const rd_flow_plan *p)
{
    return (size_t)PLAN_CHUNK * (2 * (size_t)p->c + p->hid + 2 * (size_t)p->ca + 1);
}

size_t rd_flow_plan_scratch(const rd_flow_plan *p)
{
    return rd_arena_need(plan_chunk_floats(p) * sizeof(float)) + RD_ARENA_ALIGN;
}

double rd_flow_plan_macs(const rd_flow_plan *p)
{
    double n = (double)p->h * p->w, per = (double)p->hid * p->cp + (double)p->hid * 2 * p->ca;
    return n * (per * p->k + (double)p->c * p->c * (p->k - 1));
}

/* One chunk of rows [r0, r0 + n) through all blocks. */
static void plan_chunk(const rd_flow_plan *p, const float *x, size_t r0, int n, float *lpc, float *u, float *v,
                       float *hbuf, float *abuf, float *ld)
{
    const int c = p->c, cp = p->cp, ca = p->ca, hid = p->hid;
    memcpy(u, x + r0 * c, (size_t)n * c * sizeof(float));
    for (int i = 0; i < n; i++) ld[i] = 0;
    for (int k = 0; k < p->k; k++) {
        const plan_block *b = &p->b[k];
        if (!rd_flow_k_subnet(u, c, cp, n, r0, p->w, b->atab, b->btab, b->w1t, hid, b->w2t, b->b2, 2 * ca, hbuf,
                              abuf)) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, hid, cp, 1.0f, u, c, b->w1x, cp, 0.0f, hbuf, hid);
            for (int i = 0; i < n; i++) {
                size_t r = r0 + (size_t)i;
                rd_flow_k_add2_relu(hbuf + (size_t)i * hid, b->atab + (r % (size_t)p->w) * hid,
                                    b->btab + (r / (size_t)p->w) * hid, hid);
            }
            for (int i = 0; i < n; i++) memcpy(abuf + (size_t)i * 2 * ca, b->b2, 2 * ca * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, 2 * ca, hid, 1.0f, hbuf, hid, b->w2, hid, 1.0f,
                        abuf, 2 * ca);
        }
        for (int i = 0; i < n; i++) {
            float *ur = u + (size_t)i * c, *ar = abuf + (size_t)i * 2 * ca;
            ld[i] += rd_flow_k_couple(ur + cp, ar, ar + ca, ca, p->clamp);
        }
        if (k + 1 < p->k) {
            for (int i = 0; i < n; i++) memcpy(v + (size_t)i * c, b->ob, c * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c, c, 1.0f, u, c, b->rg, c, 1.0f, v, c);
            float *t = u;
            u = v;
            v = t;
        } else {
            /* ‖z‖ = ‖(v⊙g + o)·Rᵀ‖ = ‖v⊙g + o‖: the last rotation is not needed */
            for (int i = 0; i < n; i++) {
                const float *ur = u + (size_t)i * c;
                float q = 0;
                for (int j = 0; j < c; j++) {
                    float z = ur[j] * b->g[j] + b->off[j];
                    q += z * z;
                }
                double lp = -0.5 * c * LOG_2PI - 0.5 * q + ld[i] + p->logdet_const;
                lpc[r0 + (size_t)i] = (float)(lp / c);
            }
        }
    }
}

rd_status rd_flow_plan_lpc_range(const rd_flow_plan *p, const float *x, size_t r0, size_t r1, float *lpc,
                                 rd_arena *a, rd_err *err)
{
    size_t mark = rd_arena_mark(a);
    const size_t n = (size_t)p->h * p->w;
    if (r0 > r1 || r1 > n) return rd_err_set(err, RD_ERR_ARG, "flow: rows [%zu, %zu) outside the level's %zu", r0, r1, n);
    float *buf = rd_arena_floats(a, plan_chunk_floats(p));
    if (!buf) return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (flow)");
    float *u = buf, *v = u + (size_t)PLAN_CHUNK * p->c, *hb = v + (size_t)PLAN_CHUNK * p->c;
    float *ab = hb + (size_t)PLAN_CHUNK * p->hid, *ld = ab + (size_t)PLAN_CHUNK * 2 * p->ca;
    for (size_t r = r0; r < r1; r += PLAN_CHUNK) {
        int m = (int)(r1 - r < PLAN_CHUNK ? r1 - r : PLAN_CHUNK);
        plan_chunk(p, x, r, m, lpc, u, v, hb, ab, ld);
    }
    rd_arena_rewind(a, mark);
    return RD_OK;
}

rd_status rd_flow_plan_lpc(const rd_flow_plan *p, const float *x, float *lpc, rd_arena *a, rd_err *err)
{
    return rd_flow_plan_lpc_range(p, x, 0, (size_t)p->h * p->w, lpc, a, err);
}

typedef struct team_job {
    const rd_flow_plan *p;
    const float *x;
    float *lpc;
    rd_arena *sub;
    size_t n;
    int parts;
    rd_status st[RD_FLOW_MAX_TEAM];
} team_job;

static void team_task(void *ctx, int i)
{
    team_job *j = ctx;
    rd_err err;
    /* whole chunks per thread: the same chunking as the serial path, so the
     * same GEMM shapes and the same bits */
    const size_t chunks = (j->n + PLAN_CHUNK - 1) / PLAN_CHUNK;
    size_t r0 = chunks * (size_t)i / (size_t)j->parts * PLAN_CHUNK;
    size_t r1 = chunks * (size_t)(i + 1) / (size_t)j->parts * PLAN_CHUNK;
    if (r1 > j->n) r1 = j->n;
    j->st[i] = rd_flow_plan_lpc_range(j->p, j->x, r0, r1, j->lpc, &j->sub[i], &err);
}

size_t rd_flow_plan_scratch_team(const rd_flow_plan *p, int nthreads)
{
    if (nthreads < 1) nthreads = 1;
    if (nthreads > RD_FLOW_MAX_TEAM) nthreads = RD_FLOW_MAX_TEAM;
    return (size_t)nthreads * rd_arena_need(rd_flow_plan_scratch(p));
}

rd_status rd_flow_plan_lpc_team(const rd_flow_plan *p, const float *x, float *lpc, rd_team *team, rd_arena *a,
                                rd_err *err)
{
    const size_t n = (size_t)p->h * p->w, per = rd_arena_need(rd_flow_plan_scratch(p));
    int parts = rd_team_size(team);
    size_t mark = rd_arena_mark(a);
    rd_arena sub[RD_FLOW_MAX_TEAM];
    team_job job;
    rd_status st = RD_OK;
    if (parts > RD_FLOW_MAX_TEAM) parts = RD_FLOW_MAX_TEAM;
    if ((size_t)parts > (n + PLAN_CHUNK - 1) / PLAN_CHUNK) parts = (int)((n + PLAN_CHUNK - 1) / PLAN_CHUNK);
    if (parts <= 1) return rd_flow_plan_lpc(p, x, lpc, a, err);
    for (int i = 0; i < parts; i++) {
        sub[i].base = rd_arena_alloc(a, per);
        sub[i].cap = per;
        sub[i].used = sub[i].peak = 0;
        if (!sub[i].base) {
            rd_arena_rewind(a, mark);
            return rd_err_set(err, RD_ERR_INTERNAL, "worker arena too small (flow team)");
        }
    }
    job.p = p;
    job.x = x;
    job.lpc = lpc;
    job.sub = sub;
    job.n = n;
    job.parts = parts;
    rd_team_run(team, team_task, &job, parts);
    for (int i = 0; i < parts; i++)
        if (job.st[i] != RD_OK) st = rd_err_set(err, job.st[i], "flow: a team task failed");
    rd_arena_rewind(a, mark);
    return st;
}

/* ---- files ------------------------------------------------------------------- */

size_t rd_flow_tensor_count(const rd_flow *f) { return 1 + 7 * (size_t)f->cfg.k; }

static int name_ok(char *dst, const char *prefix, const char *suffix)
{
    int n = snprintf(dst, RD_LEARN_NAME_MAX, "%s%s", prefix, suffix);
    return n > 0 && n < RD_LEARN_NAME_MAX;
}

rd_status rd_flow_export(const rd_flow *f, const char *prefix, rd_st_out_tensor *out,
                         char (*names)[RD_LEARN_NAME_MAX], rd_err *err)
{
    size_t t = 0;
    const int c = f->cfg.c, hid = f->cfg.hid;
    char suf[64];
    if (!name_ok(names[t], prefix, ".config")) goto toolong;
    out[t] = (rd_st_out_tensor){names[t], 1, {f->cfg_len}, f->cfg_tensor};
    t++;
    for (int k = 0; k < f->cfg.k; k++) {
        rd_flow_block b = rd_flow_block_view(f, f->params, k);
        static const char *const sfx[7] = {"subnet.0.weight", "subnet.0.bias", "subnet.2.weight", "subnet.2.bias",
                                           "global_scale", "global_offset", "rot"};
        const float *data[7] = {b.w1, b.b1, b.w2, b.b2, b.gamma, b.offset, f->rot + (size_t)k * c * c};
        const int64_t shp[7][2] = {{hid, f->in}, {hid, 0}, {2 * f->ca, hid}, {2 * f->ca, 0}, {c, 0}, {c, 0}, {c, c}};
        for (int i = 0; i < 7; i++) {
            snprintf(suf, sizeof suf, ".block%d.%s", k, sfx[i]);
            if (!name_ok(names[t], prefix, suf)) goto toolong;
            out[t].name = names[t];
            out[t].ndim = shp[i][1] ? 2 : 1;
            out[t].shape[0] = shp[i][0];
            out[t].shape[1] = shp[i][1];
            out[t].data = data[i];
            t++;
        }
    }
    return RD_OK;
toolong:
    return rd_err_set(err, RD_ERR_ARG, "flow: tensor prefix \"%.60s\" too long", prefix);
}

rd_flow *rd_flow_import(const rd_st_file *st, const char *prefix, rd_err *err)
{
    char name[RD_LEARN_NAME_MAX], suf[64];
    float cv[8];
    const int64_t any = -1;
    rd_flow_cfg cfg;
    rd_flow *f = NULL;
    const rd_st_tensor *t;
    if (!name_ok(name, prefix, ".config")) goto toolong;
    /* format 1: {1, c, k, p, hid, clamp} (absolute positions);
     * format 2: {2, c, k, p, hid, clamp, pos, shift} */
    t = rd_st_expect(st, name, 1, &any, err);
    if (!t) return NULL;
    if (t->numel != 6 && t->numel != 8) {
        rd_err_set(err, RD_ERR_FORMAT, "%s: flow configuration has %zu values (6 or 8 expected)", name, t->numel);
        return NULL;
    }
    if (rd_st_to_f32(t, cv, err) != RD_OK) return NULL;
    for (int i = 1; i < 5; i++)
        if (!(cv[i] >= 0 && cv[i] <= 1e6f && cv[i] == floorf(cv[i]))) {
            rd_err_set(err, RD_ERR_FORMAT, "%s: invalid flow configuration", name);
            return NULL;
        }
    if (!((cv[0] == 1 && t->numel == 6) || (cv[0] == 2 && t->numel == 8))) {
        rd_err_set(err, RD_ERR_UNSUPPORTED, "%s: flow format version %g with %zu values is not supported", name,
                   (double)cv[0], t->numel);
        return NULL;
    }
    rd_flow_cfg_default(&cfg, (int)cv[1], (int)cv[2]);
    cfg.p = (int)cv[3];
    cfg.hid = (int)cv[4];
    cfg.clamp = cv[5];
    if (cv[0] == 2) {
        if (!(cv[6] == RD_FLOW_POS_NONE || cv[6] == RD_FLOW_POS_SHIFT) || !isfinite(cv[7])) {
            rd_err_set(err, RD_ERR_FORMAT, "%s: invalid positional condition %g", name, (double)cv[6]);
            return NULL;
        }
        cfg.pos = (int)cv[6];
        cfg.shift = cv[7]; /* checked by flow_alloc */
    }
    if (cfg.hid == 0) {
        rd_err_set(err, RD_ERR_FORMAT, "%s: hidden width 0", name);
        return NULL;
    }
    { /* the file must hold every value of the K blocks before they are allocated */
        const uint64_t c = (uint64_t)cfg.c, ca = c / 2, in = c - ca + (uint64_t)cfg.p, hid = (uint64_t)cfg.hid;
        const uint64_t need = (uint64_t)cfg.k * (hid * in + hid + 2 * ca * hid + 2 * ca + 2 * c + c * c);
        if (need > rd_st_values(st)) {
            rd_err_set(err, RD_ERR_FORMAT, "%s: the configuration needs %llu values, the file holds %llu", name,
                       (unsigned long long)need, (unsigned long long)rd_st_values(st));
            return NULL;
        }
    }
    f = flow_alloc(&cfg, err);
    if (!f) {
        rd_err_prefix(err, "%s", name);
        return NULL;
    }
    const int c = cfg.c, hid = cfg.hid;
    for (int k = 0; k < cfg.k; k++) {
        rd_flow_block b = rd_flow_block_view(f, f->params, k);
        static const char *const sfx[7] = {"subnet.0.weight", "subnet.0.bias", "subnet.2.weight", "subnet.2.bias",
                                           "global_scale", "global_offset", "rot"};
        float *data[7] = {b.w1, b.b1, b.w2, b.b2, b.gamma, b.offset, f->rot + (size_t)k * c * c};
        const int64_t shp[7][2] = {{hid, f->in}, {hid, 0}, {2 * f->ca, hid}, {2 * f->ca, 0}, {c, 0}, {c, 0}, {c, c}};
        for (int i = 0; i < 7; i++) {
            snprintf(suf, sizeof suf, ".block%d.%s", k, sfx[i]);
            if (!name_ok(name, prefix, suf)) goto toolong;
            t = rd_st_expect(st, name, shp[i][1] ? 2 : 1, shp[i], err);
            if (!t || rd_st_to_f32(t, data[i], err) != RD_OK) goto fail;
            for (size_t j = 0; j < t->numel; j++)
                if (!isfinite(data[i][j])) {
                    rd_err_set(err, RD_ERR_FORMAT, "%s: non-finite value", name);
                    goto fail;
                }
        }
        /* the rotation must be orthogonal, or logdet would be wrong */
        const float *r = data[6];
        double worst = 0;
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++) {
                double s = 0;
                for (int q = 0; q < c; q++) s += (double)r[(size_t)i * c + q] * r[(size_t)j * c + q];
                s = fabs(s - (i == j));
                if (s > worst) worst = s;
            }
        if (worst > 1e-3) {
            rd_err_set(err, RD_ERR_FORMAT, "%s: rotation is not orthogonal (error %.3g)", name, worst);
            goto fail;
        }
    }
    return f;
toolong:
    rd_err_set(err, RD_ERR_ARG, "flow: tensor prefix \"%.60s\" too long", prefix);
fail:
    rd_flow_free(f);
    return NULL;
}

rd_status rd_flow_save(const rd_flow *f, const char *path, const char *prefix, rd_err *err)
{
    size_t n = rd_flow_tensor_count(f);
    rd_st_out_tensor *ts = calloc(n, sizeof *ts);
    char(*names)[RD_LEARN_NAME_MAX] = calloc(n, sizeof *names);
    rd_status st;
    if (!ts || !names) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = rd_flow_export(f, prefix, ts, names, err);
    if (st == RD_OK) {
        const char *meta[] = {"format", "resadd-flow", NULL};
        st = rd_st_write(path, ts, n, meta, err);
    }
out:
    free(ts);
    free(names);
    return st;
}

rd_flow *rd_flow_load(const char *path, const char *prefix, rd_err *err)
{
    rd_st_file *st = rd_st_open(path, err);
    rd_flow *f;
    if (!st) return NULL;
    f = rd_flow_import(st, prefix, err);
    rd_st_free(st);
    return f;
}
