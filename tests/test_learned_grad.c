/* test_learned_grad.c — gradient checks for the learned ResAD building blocks.
 *
 * Analytic gradients of the C code (float) are compared with central
 * differences of naive double-precision reference forwards written here
 * (flow, constraintor) or of the loss functions themselves (which accumulate
 * in double).  Perturbations are applied to the float parameters and the
 * difference quotient uses the exact float step, so the check measures the
 * gradient, not rounding.  Each group reports
 *   err = max_i |fd_i − an_i| / max(max|an|, max|fd|)
 * over sampled coordinates, and a self-test changes the largest analytic
 * component by 5% to show the same check then fails.  The references also
 * check the forward values, the folded inference plans, and the files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "constraintor.h"
#include "flow.h"
#include "losses.h"
#include "team.h"
#include "testutil.h"

#define GRAD_TOL 1e-4
#define FD_EPS 1e-4

typedef double (*loss_fn)(void *ctx);

/* Central differences over `count` sampled coordinates of param[0..n). */
static void check_group(const char *what, float *param, size_t n, const float *an, loss_fn f, void *ctx,
                        size_t count, unsigned seed)
{
    size_t *idx = calloc(count + 1, sizeof *idx);
    double *fd = calloc(count + 1, sizeof *fd), *a = calloc(count + 1, sizeof *a);
    double man = 0, mfd = 0, worst = 0;
    size_t arg = 0;
    uint64_t s = seed * 2654435761u + 1;
    if (count > n) count = n;
    for (size_t k = 0; k < count; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        idx[k] = count == n ? k : (size_t)(s >> 33) % n;
        size_t j = idx[k];
        float v = param[j];
        float vp = v + (float)(FD_EPS * fmax(1.0, fabs(v))), vm = v - (float)(FD_EPS * fmax(1.0, fabs(v)));
        param[j] = vp;
        double lp = f(ctx);
        param[j] = vm;
        double lm = f(ctx);
        param[j] = v;
        fd[k] = (lp - lm) / ((double)vp - (double)vm);
        a[k] = an[j];
        if (fabs(a[k]) > man) {
            man = fabs(a[k]);
            arg = k;
        }
        if (fabs(fd[k]) > mfd) mfd = fabs(fd[k]);
    }
    double den = fmax(fmax(man, mfd), 1e-9);
    for (size_t k = 0; k < count; k++) worst = fmax(worst, fabs(fd[k] - a[k]) / den);
    /* self-test: a 5% error in the largest component must be caught */
    double bad = 0;
    a[arg] *= 1.05;
    for (size_t k = 0; k < count; k++) bad = fmax(bad, fabs(fd[k] - a[k]) / den);
    printf("  %-34s err %.2e  (max|grad| %.3g, perturbed err %.2e)\n", what, worst, man, bad);
    RD_CHECK(worst < GRAD_TOL, "%s: gradient error %.3g", what, worst);
    RD_CHECK(man == 0 || bad > GRAD_TOL, "%s: checker cannot see a 5%% error (%.3g)", what, bad);
    RD_CHECK(man > 1e-6, "%s: gradient is all zero, nothing was checked", what);
    free(idx);
    free(fd);
    free(a);
}

/* ---- flow reference (double) ------------------------------------------------ */

static double gscale_ref(double g) { return 0.5 * g > 20 ? 0.1 * g : 0.2 * log1p(exp(0.5 * g)); }

static void posenc_ref(int p, int y, int x, double *out)
{
    float tmp[4096];
    rd_flow_posenc(p, y, x, tmp); /* the encoding itself is checked separately */
    for (int i = 0; i < p; i++) out[i] = tmp[i];
}

/* logp/C of each row, in double, straight from the formulas in flow.h. */
static void flow_ref(const rd_flow *f, const float *x, const int32_t *py, const int32_t *px, size_t n, double *lpc)
{
    const int c = f->cfg.c, cp = f->cp, ca = f->ca, hid = f->cfg.hid, in = f->in, p = f->cfg.p;
    double *u = malloc(c * sizeof *u), *v = malloc(c * sizeof *v), *cin = malloc(in * sizeof *cin);
    double *h = malloc(hid * sizeof *h), *a = malloc(2 * ca * sizeof *a);
    for (size_t r = 0; r < n; r++) {
        double ld = 0;
        for (int j = 0; j < c; j++) u[j] = x[r * c + j];
        posenc_ref(p, py[r], px[r], cin + cp);
        for (int k = 0; k < f->cfg.k; k++) {
            rd_flow_block b = rd_flow_block_view(f, f->params, k);
            const float *rot = f->rot + (size_t)k * c * c;
            for (int j = 0; j < cp; j++) cin[j] = u[j];
            for (int o = 0; o < hid; o++) {
                double s = b.b1[o];
                for (int i = 0; i < in; i++) s += (double)b.w1[(size_t)o * in + i] * cin[i];
                h[o] = s > 0 ? s : 0;
            }
            for (int o = 0; o < 2 * ca; o++) {
                double s = b.b2[o];
                for (int i = 0; i < hid; i++) s += (double)b.w2[(size_t)o * hid + i] * h[i];
                a[o] = 0.1 * s;
            }
            for (int j = 0; j < ca; j++) {
                double s = f->cfg.clamp * tanh(a[j]);
                ld += s;
                u[cp + j] = u[cp + j] * exp(s) + a[ca + j];
            }
            for (int j = 0; j < c; j++) {
                double g = gscale_ref(b.gamma[j]);
                ld += log(g);
                u[j] = u[j] * g + b.offset[j];
            }
            for (int i = 0; i < c; i++) {
                double s = 0;
                for (int j = 0; j < c; j++) s += (double)rot[(size_t)i * c + j] * u[j];
                v[i] = s;
            }
            memcpy(u, v, c * sizeof *u);
        }
        double q = 0;
        for (int j = 0; j < c; j++) q += u[j] * u[j];
        lpc[r] = (-0.5 * c * log(2 * M_PI) - 0.5 * q + ld) / c;
    }
    free(u);
    free(v);
    free(cin);
    free(h);
    free(a);
}

typedef struct flow_ctx {
    rd_flow *f;
    float *x;
    int32_t *py, *px;
    size_t n;
    float *wts;
    double *lpc;
} flow_ctx;

static double flow_loss(void *vctx)
{
    flow_ctx *c = vctx;
    double l = 0;
    flow_ref(c->f, c->x, c->py, c->px, c->n, c->lpc);
    for (size_t i = 0; i < c->n; i++) l += c->wts[i] * c->lpc[i];
    return l;
}

static void test_flow_grad(const char *label, int c, int k, int p, int hid, float w2_scale, unsigned seed)
{
    rd_flow_cfg cfg;
    rd_err err;
    const size_t n = 13;
    const int mh = 4, mw = 5;
    rd_flow_cfg_default(&cfg, c, k);
    cfg.p = p;
    cfg.hid = hid;
    rd_flow *f = rd_flow_new(&cfg, seed, &err);
    RD_CHECK(f, "flow_new: %s", err.msg);
    if (!f) return;
    printf("flow %s (C %d, K %d, P %d, hidden %d):\n", label, c, k, p, f->cfg.hid);
    for (int b = 0; b < k; b++) {
        rd_flow_block bl = rd_flow_block_view(f, f->params, b);
        for (size_t i = 0; i < (size_t)2 * f->ca * f->cfg.hid; i++) bl.w2[i] *= w2_scale;
        float tmp[64];
        rd_fill_uniform(tmp, 2 * (size_t)c, seed + 7 * b, -1.5f, 1.5f);
        for (int j = 0; j < c; j++) {
            bl.gamma[j] += tmp[j];
            bl.offset[j] = 0.3f * tmp[c + j];
        }
        if (b == 0) bl.gamma[0] = 45.0f; /* torch Softplus threshold branch */
    }
    flow_ctx ctx = {f, malloc(n * c * sizeof(float)), malloc(n * sizeof(int32_t)), malloc(n * sizeof(int32_t)), n,
                    malloc(n * sizeof(float)), malloc(n * sizeof(double))};
    rd_fill_uniform(ctx.x, n * c, seed + 1, -2, 2);
    rd_fill_uniform(ctx.wts, n, seed + 2, -1, 1);
    for (size_t i = 0; i < n; i++) {
        ctx.py[i] = (int32_t)((i * 7) % mh);
        ctx.px[i] = (int32_t)((i * 3) % mw);
    }
    rd_flow_ws *ws = rd_flow_ws_new(f, n, mh, mw, &err);
    float *lpc = malloc(n * sizeof(float)), *grad = calloc(f->nparams, sizeof(float));
    float *dx = malloc(n * c * sizeof(float));
    RD_CHECK(ws, "ws: %s", err.msg);
    RD_CHECK(rd_flow_train_forward(f, ws, ctx.x, ctx.py, ctx.px, n, lpc, &err) == RD_OK, "%s", err.msg);
    flow_loss(&ctx);
    double fe = 0;
    for (size_t i = 0; i < n; i++) fe = fmax(fe, fabs(lpc[i] - ctx.lpc[i]) / fmax(1.0, fabs(ctx.lpc[i])));
    printf("  forward vs double reference       err %.2e\n", fe);
    RD_CHECK(fe < 1e-5, "flow forward differs from the reference: %.3g", fe);
    RD_CHECK(rd_flow_train_backward(f, ws, ctx.wts, grad, dx, &err) == RD_OK, "%s", err.msg);
    char what[96];
    for (int b = 0; b < k; b++) {
        rd_flow_block pv = rd_flow_block_view(f, f->params, b), gv = rd_flow_block_view(f, grad, b);
        const int hd = f->cfg.hid, in = f->in;
        snprintf(what, sizeof what, "block%d subnet.0.weight", b);
        check_group(what, pv.w1, (size_t)hd * in, gv.w1, flow_loss, &ctx, 40, seed + 11 * b);
        /* the x1 columns alone (few among the P condition columns) */
        {
            double worst = 0, man = 0;
            for (int t = 0; t < 12; t++) {
                size_t o = (size_t)(t * 5 + b) % hd, i = (size_t)t % f->cp, j = o * in + i;
                float v = pv.w1[j], vp = v + (float)FD_EPS, vm = v - (float)FD_EPS;
                pv.w1[j] = vp;
                double lp = flow_loss(&ctx);
                pv.w1[j] = vm;
                double lm = flow_loss(&ctx);
                pv.w1[j] = v;
                double fdv = (lp - lm) / ((double)vp - vm), d = fabs(fdv - gv.w1[j]);
                man = fmax(man, fmax(fabs(fdv), fabs(gv.w1[j])));
                if (d > worst) worst = d;
            }
            printf("  block%d subnet.0.weight[x1 cols]   err %.2e\n", b, worst / fmax(man, 1e-9));
            RD_CHECK(worst / fmax(man, 1e-9) < GRAD_TOL, "x1 columns of W1: %.3g", worst / fmax(man, 1e-9));
        }
        snprintf(what, sizeof what, "block%d subnet.0.bias", b);
        check_group(what, pv.b1, hd, gv.b1, flow_loss, &ctx, 20, seed + 13 * b);
        snprintf(what, sizeof what, "block%d subnet.2.weight (s,t)", b);
        check_group(what, pv.w2, (size_t)2 * f->ca * hd, gv.w2, flow_loss, &ctx, 30, seed + 17 * b);
        snprintf(what, sizeof what, "block%d subnet.2.bias (s,t)", b);
        check_group(what, pv.b2, 2 * (size_t)f->ca, gv.b2, flow_loss, &ctx, 2 * (size_t)f->ca, seed);
        snprintf(what, sizeof what, "block%d global_scale", b);
        check_group(what, pv.gamma, c, gv.gamma, flow_loss, &ctx, c, seed);
        snprintf(what, sizeof what, "block%d global_offset", b);
        check_group(what, pv.offset, c, gv.offset, flow_loss, &ctx, c, seed);
    }
    check_group("input x", ctx.x, n * c, dx, flow_loss, &ctx, 40, seed + 3);
    rd_flow_ws_free(ws);
    free(lpc);
    free(grad);
    free(dx);
    free(ctx.x);
    free(ctx.py);
    free(ctx.px);
    free(ctx.wts);
    free(ctx.lpc);
    rd_flow_free(f);
}

/* ---- constraintor reference (double, train-mode BN) ------------------------- */

typedef struct cstr_ctx {
    rd_cstr *m;
    float *x;
    int n, h, w;
    float *wts;
    double *out;
} cstr_ctx;

static void cstr_ref(const rd_cstr *m, const float *x, int n, int h, int w, int train, double *out)
{
    const int c = m->c, k = m->k, pad = k / 2;
    const size_t rows = (size_t)n * h * w;
    for (int im = 0; im < n; im++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int o = 0; o < c; o++) {
                    double s = m->b[o];
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int sy = y + ky - pad, sx = xx + kx - pad;
                            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                            for (int i = 0; i < c; i++)
                                s += (double)m->w[(((size_t)o * k + ky) * k + kx) * c + i] *
                                     x[(((size_t)im * h + sy) * w + sx) * c + i];
                        }
                    out[(((size_t)im * h + y) * w + xx) * c + o] = s;
                }
    for (int o = 0; o < c; o++) {
        double mu = 0, var = 0;
        if (train) {
            for (size_t r = 0; r < rows; r++) mu += out[r * c + o];
            mu /= (double)rows;
            for (size_t r = 0; r < rows; r++) var += (out[r * c + o] - mu) * (out[r * c + o] - mu);
            var /= (double)rows;
        } else {
            mu = m->run_mean[o];
            var = m->run_var[o];
        }
        for (size_t r = 0; r < rows; r++) {
            double v = (out[r * c + o] - mu) / sqrt(var + m->eps) * m->gamma[o] + m->beta[o];
            out[r * c + o] = v > 0 ? v : 0;
        }
    }
}

static double cstr_loss(void *vctx)
{
    cstr_ctx *c = vctx;
    size_t n = (size_t)c->n * c->h * c->w * c->m->c;
    double l = 0;
    cstr_ref(c->m, c->x, c->n, c->h, c->w, 1, c->out);
    for (size_t i = 0; i < n; i++) l += c->wts[i] * c->out[i];
    return l;
}

static void test_cstr_grad(int c, int k, unsigned seed)
{
    rd_err err;
    const int n = 2, h = 4, w = 5;
    const size_t sz = (size_t)n * h * w * c;
    rd_cstr *m = rd_cstr_new(c, k, seed, &err);
    RD_CHECK(m, "cstr_new: %s", err.msg);
    if (!m) return;
    printf("constraintor (C %d, %dx%d):\n", c, k, k);
    rd_fill_uniform(m->gamma, c, seed + 5, 0.5f, 1.5f);
    rd_fill_uniform(m->beta, c, seed + 6, -0.3f, 0.3f);
    cstr_ctx ctx = {m, malloc(sz * sizeof(float)), n, h, w, malloc(sz * sizeof(float)), malloc(sz * sizeof(double))};
    rd_fill_uniform(ctx.x, sz, seed + 1, -1, 1);
    rd_fill_uniform(ctx.wts, sz, seed + 2, -1, 1);
    rd_cstr_ws *ws = rd_cstr_ws_new(m, n, h, w, &err);
    float *out = malloc(sz * sizeof(float)), *dx = malloc(sz * sizeof(float));
    float *grad = calloc(m->nparams, sizeof(float));
    RD_CHECK(ws, "ws: %s", err.msg);
    RD_CHECK(rd_cstr_train_forward(m, ws, ctx.x, n, out, 0, &err) == RD_OK, "%s", err.msg);
    cstr_loss(&ctx);
    double fe = 0;
    for (size_t i = 0; i < sz; i++) fe = fmax(fe, fabs(out[i] - ctx.out[i]));
    printf("  forward vs double reference       err %.2e\n", fe);
    RD_CHECK(fe < 1e-5, "constraintor forward differs: %.3g", fe);
    RD_CHECK(rd_cstr_train_backward(m, ws, ctx.wts, grad, dx, &err) == RD_OK, "%s", err.msg);
    const size_t kc = (size_t)k * k * c;
    check_group("conv.weight", m->w, c * kc, grad, cstr_loss, &ctx, 40, seed);
    /* conv bias: BN removes it, so the true gradient is ~0; check it is */
    double gb = 0;
    for (int i = 0; i < c; i++) gb = fmax(gb, fabs(grad[c * kc + i]));
    printf("  conv.bias (cancelled by BN)       max|grad| %.2e\n", gb);
    RD_CHECK(gb < 1e-4, "conv bias gradient should vanish under BN: %.3g", gb);
    check_group("bn.weight", m->gamma, c, grad + c * kc + c, cstr_loss, &ctx, c, seed);
    check_group("bn.bias", m->beta, c, grad + c * kc + 2 * c, cstr_loss, &ctx, c, seed);
    check_group("input x", ctx.x, sz, dx, cstr_loss, &ctx, 40, seed + 9);

    /* running statistics (torch semantics) and the folded inference plan */
    {
        double *ref = malloc(sz * sizeof(double));
        float rm0 = m->run_mean[0], rv0 = m->run_var[0];
        RD_CHECK(rd_cstr_train_forward(m, ws, ctx.x, n, out, 1, &err) == RD_OK, "%s", err.msg);
        double mu = 0, var = 0;
        const size_t rows = (size_t)n * h * w;
        double *pre = malloc(rows * sizeof(double));
        for (size_t r = 0; r < rows; r++) {
            int im = (int)(r / ((size_t)h * w)), y = (int)(r / w % h), xx = (int)(r % w);
            double s = m->b[0];
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    int sy = y + ky - k / 2, sx = xx + kx - k / 2;
                    if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                    for (int i = 0; i < c; i++)
                        s += (double)m->w[((size_t)ky * k + kx) * c + i] * ctx.x[(((size_t)im * h + sy) * w + sx) * c + i];
                }
            pre[r] = s;
            mu += s;
        }
        mu /= (double)rows;
        for (size_t r = 0; r < rows; r++) var += (pre[r] - mu) * (pre[r] - mu);
        double want_m = 0.9 * rm0 + 0.1 * mu, want_v = 0.9 * rv0 + 0.1 * var / (double)(rows - 1);
        RD_CHECK(fabs(m->run_mean[0] - want_m) < 1e-6 && fabs(m->run_var[0] - want_v) < 1e-6,
                 "running stats %g %g, want %g %g", m->run_mean[0], m->run_var[0], want_m, want_v);
        free(pre);
        rd_fill_uniform(m->run_mean, c, seed + 20, -0.2f, 0.2f);
        rd_fill_uniform(m->run_var, c, seed + 21, 0.5f, 2.0f);
        rd_cstr_plan *p = rd_cstr_plan_new(m, &err);
        rd_arena ar;
        RD_CHECK(p && rd_arena_init(&ar, rd_cstr_plan_scratch(p, h, w) + 4096, &err) == RD_OK, "%s", err.msg);
        cstr_ref(m, ctx.x, 1, h, w, 0, ref);
        RD_CHECK(rd_cstr_plan_forward(p, ctx.x, h, w, out, &ar, &err) == RD_OK, "%s", err.msg);
        double pe = 0;
        for (size_t i = 0; i < (size_t)h * w * c; i++) pe = fmax(pe, fabs(out[i] - ref[i]));
        printf("  folded inference vs eval-mode ref err %.2e\n", pe);
        RD_CHECK(pe < 1e-5, "folded constraintor differs: %.3g", pe);
        { /* split by rows across a team of 3 (including a block of 1 row): the serial result up to rounding */
            rd_team *tm = rd_team_new(3, &err);
            float *ot = malloc(sizeof(float) * (size_t)h * w * c);
            RD_CHECK(tm && ot && rd_cstr_plan_forward_team(p, ctx.x, h, w, ot, tm, &ar, &err) == RD_OK, "%s", err.msg);
            double te = 0;
            for (size_t i = 0; ot && i < (size_t)h * w * c; i++) te = fmax(te, fabs(ot[i] - out[i]));
            RD_CHECK(te < 1e-6, "team constraintor differs from serial: %.3g", te);
            free(ot);
            rd_team_free(tm);
        }
        /* file round trip */
        char path[512];
        snprintf(path, sizeof path, "%s/cstr.safetensors", rd_test_tmpdir("learned"));
        RD_CHECK(rd_cstr_save(m, path, "level0.cstr", &err) == RD_OK, "%s", err.msg);
        rd_cstr *m2 = rd_cstr_load(path, "level0.cstr", &err);
        RD_CHECK(m2 && m2->k == k && m2->c == c &&
                     memcmp(m2->params, m->params, (m->nparams + 2 * (size_t)c) * sizeof(float)) == 0,
                 "constraintor file round trip: %s", m2 ? "values differ" : err.msg);
        rd_cstr *m3 = rd_cstr_load(path, "level1.cstr", &err);
        RD_CHECK(!m3 && err.code == RD_ERR_FORMAT, "missing prefix must fail cleanly (%d: %s)", err.code, err.msg);
        rd_cstr_free(m2);
        rd_cstr_free(m3);
        rd_arena_release(&ar);
        rd_cstr_plan_free(p);
        free(ref);
    }
    rd_cstr_ws_free(ws);
    free(out);
    free(dx);
    free(grad);
    free(ctx.x);
    free(ctx.wts);
    free(ctx.out);
    rd_cstr_free(m);
}

/* ---- losses ------------------------------------------------------------------- */

typedef struct loss_ctx {
    int kind; /* 0 occ, 1 ml logsigmoid, 2 ml nll, 3 bgad */
    float *e, *r, *lpc;
    uint8_t *mask;
    size_t n;
    int c;
    rd_bgad b;
} loss_ctx;

static double loss_eval(void *vctx)
{
    loss_ctx *l = vctx;
    switch (l->kind) {
    case 0: return rd_loss_occ(l->e, l->r, l->mask, l->n, l->c, 0.7f, NULL, NULL);
    case 1: return rd_loss_ml(l->lpc, l->mask, l->n, RD_ML_LOGSIGMOID, 0.7f, NULL);
    case 2: return rd_loss_ml(l->lpc, l->mask, l->n, RD_ML_NLL, 0.7f, NULL);
    default: return rd_loss_bgad(&l->b, l->lpc, l->mask, l->n, 0.7f, NULL, NULL);
    }
}

static void test_losses(void)
{
    const size_t n = 40;
    const int c = 5;
    loss_ctx l = {0};
    rd_loss_parts parts;
    float *g = calloc(n * c, sizeof(float)), *scratch = malloc(n * sizeof(float));
    l.e = malloc(n * c * sizeof(float));
    l.r = malloc(n * c * sizeof(float));
    l.lpc = malloc(n * sizeof(float));
    l.mask = malloc(n);
    l.n = n;
    l.c = c;
    rd_fill_uniform(l.e, n * c, 31, -2, 2);
    rd_fill_uniform(l.r, n * c, 32, -2, 2);
    rd_fill_uniform(l.lpc, n, 33, -3, 1);
    for (size_t i = 0; i < n; i++) l.mask[i] = (i % 3) == 0;
    printf("losses:\n");
    /* OCC: split normal/anomalous parts by masking */
    l.kind = 0;
    rd_loss_occ(l.e, l.r, l.mask, n, c, 0.7f, g, &parts);
    RD_CHECK(parts.n_normal == 26 && parts.n_anomal == 14, "occ counts %zu %zu", parts.n_normal, parts.n_anomal);
    {
        /* value against the formulas */
        double ln = 0, la = 0;
        for (size_t i = 0; i < n; i++) {
            double q = 0;
            for (int j = 0; j < c; j++)
                q += l.mask[i] ? pow(l.e[i * c + j] - l.r[i * c + j], 2) : pow(l.e[i * c + j], 2);
            if (l.mask[i])
                la += q;
            else
                ln += sqrt(q + 1) - 1;
        }
        ln /= 26;
        la /= 14.0 * c;
        RD_CHECK(fabs(parts.normal - ln) < 1e-9 && fabs(parts.anomal - la) < 1e-9, "occ value");
    }
    {
        /* normal rows and anomalous rows checked separately */
        /* row 0 is anomalous, rows 1-2 normal (mask = i % 3 == 0) */
        check_group("OCC pseudo-Huber (normal rows)", l.e + c, 2 * (size_t)c, g + c, loss_eval, &l, 2 * (size_t)c, 1);
        check_group("OCC mse(e, r) (anomalous rows)", l.e, c, g, loss_eval, &l, c, 2);
        check_group("OCC all rows", l.e, n * c, g, loss_eval, &l, 60, 3);
    }
    memset(g, 0, n * c * sizeof(float));
    l.kind = 1;
    rd_loss_ml(l.lpc, l.mask, n, RD_ML_LOGSIGMOID, 0.7f, g);
    check_group("ML −logsigmoid(logp/C)", l.lpc, n, g, loss_eval, &l, n, 4);
    memset(g, 0, n * c * sizeof(float));
    l.kind = 2;
    rd_loss_ml(l.lpc, l.mask, n, RD_ML_NLL, 0.7f, g);
    check_group("ML −logp/C", l.lpc, n, g, loss_eval, &l, n, 5);
    for (size_t i = 0; i < n; i++)
        if (l.mask[i]) RD_CHECK(g[i] == 0, "ML must not touch anomalous positions");

    /* BGAD: boundary from the 5% quantile, EMA from 0 */
    rd_bgad_init(&l.b);
    double q = rd_bgad_update(&l.b, l.lpc, l.mask, n, scratch);
    {
        float nv[40];
        size_t nn = 0;
        for (size_t i = 0; i < n; i++)
            if (!l.mask[i]) nv[nn++] = l.lpc[i];
        size_t below = 0;
        for (size_t i = 0; i < nn; i++) below += nv[i] < q;
        RD_CHECK(below == (size_t)(nn * 0.05), "quantile: %zu below, want %zu", below, (size_t)(nn * 0.05));
        RD_CHECK(fabs(l.b.b_n - 0.1 * q) < 1e-12, "EMA from 0: %g vs %g", l.b.b_n, 0.1 * q);
    }
    l.b.b_n = -1.0; /* a boundary that splits both populations */
    for (size_t i = 0; i < n; i++) /* keep values away from the boundary kinks */
        if (fabs(l.lpc[i] - l.b.b_n) < 1e-2 || fabs(l.lpc[i] - (l.b.b_n - l.b.tau)) < 1e-2) l.lpc[i] += 0.05f;
    memset(g, 0, n * c * sizeof(float));
    l.kind = 3;
    rd_loss_bgad(&l.b, l.lpc, l.mask, n, 0.7f, g, &parts);
    printf("  BGAD active: %zu normals below b_n, %zu anomalies above b_a\n", parts.n_normal, parts.n_anomal);
    RD_CHECK(parts.n_normal > 0 && parts.n_anomal > 0, "bgad test needs both sides");
    {
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            if (g[i] == 0) continue;
            if (l.mask[i])
                a++;
            else
                b++;
        }
        RD_CHECK(a == parts.n_anomal && b == parts.n_normal, "bgad gradient touches exactly the active positions");
    }
    check_group("BGAD both sides", l.lpc, n, g, loss_eval, &l, n, 6);
    free(g);
    free(scratch);
    free(l.e);
    free(l.r);
    free(l.lpc);
    free(l.mask);
}

/* ---- Adam, schedule, positional encoding, rotation, plan, files --------------- */

static void test_misc(void)
{
    rd_err err;
    rd_adam a;
    float p[2] = {1.0f, -2.0f}, gr[2] = {0.5f, 0.0f};
    RD_CHECK(rd_adam_init(&a, 2, 0.1f, 0.01f, &err) == RD_OK, "%s", err.msg);
    rd_adam_step(&a, p, gr);
    /* first step moves by lr·sign(g + wd·p) */
    RD_CHECK(fabs(p[0] - 0.9) < 1e-6 && fabs(p[1] - (-1.9)) < 1e-6, "adam step 1: %g %g", p[0], p[1]);
    rd_adam_release(&a);
    const int ms[2] = {70, 90};
    RD_CHECK(rd_adam_multistep_lr(1e-3f, 69, ms, 2, 0.1f) == 1e-3f &&
                 fabs(rd_adam_multistep_lr(1e-3f, 70, ms, 2, 0.1f) - 1e-4) < 1e-10 &&
                 fabs(rd_adam_multistep_lr(1e-3f, 95, ms, 2, 0.1f) - 1e-5) < 1e-11,
             "multistep schedule");

    /* positional encoding layout: x in the first half, y in the second */
    float pe[256];
    rd_flow_posenc(256, 3, 5, pe);
    RD_CHECK(fabs(pe[0] - sin(5.0)) < 1e-6 && fabs(pe[1] - cos(5.0)) < 1e-6 && fabs(pe[128] - sin(3.0)) < 1e-6 &&
                 fabs(pe[129] - cos(3.0)) < 1e-6,
             "posenc k=0");
    double div = exp(-2.0 * 10 * log(1e4) / 128);
    RD_CHECK(fabs(pe[20] - sin(5 * div)) < 1e-5 && fabs(pe[149] - cos(3 * div)) < 1e-5, "posenc k=10");

    /* Haar rotation: orthogonal, det +1, deterministic */
    for (int c = 3; c <= 17; c += 7) {
        float *r = malloc((size_t)c * c * sizeof(float)), *r2 = malloc((size_t)c * c * sizeof(float));
        RD_CHECK(rd_flow_haar(c, 42, r) && rd_flow_haar(c, 42, r2), "haar");
        RD_CHECK(memcmp(r, r2, (size_t)c * c * sizeof(float)) == 0, "haar not deterministic");
        double worst = 0;
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++) {
                double s = 0;
                for (int k = 0; k < c; k++) s += (double)r[i * c + k] * r[j * c + k];
                worst = fmax(worst, fabs(s - (i == j)));
            }
        /* determinant by Gaussian elimination */
        double *m = malloc((size_t)c * c * sizeof(double)), det = 1;
        for (int i = 0; i < c * c; i++) m[i] = r[i];
        for (int k = 0; k < c; k++) {
            int piv = k;
            for (int i = k + 1; i < c; i++)
                if (fabs(m[i * c + k]) > fabs(m[piv * c + k])) piv = i;
            if (piv != k) {
                for (int j = 0; j < c; j++) {
                    double t = m[k * c + j];
                    m[k * c + j] = m[piv * c + j];
                    m[piv * c + j] = t;
                }
                det = -det;
            }
            det *= m[k * c + k];
            for (int i = k + 1; i < c; i++) {
                double fct = m[i * c + k] / m[k * c + k];
                for (int j = k; j < c; j++) m[i * c + j] -= fct * m[k * c + j];
            }
        }
        printf("haar C %d: orthogonality err %.2e, det %.6f\n", c, worst, det);
        RD_CHECK(worst < 1e-5 && fabs(det - 1) < 1e-4, "haar C %d: %g %g", c, worst, det);
        free(m);
        free(r);
        free(r2);
    }

    /* inference plan vs training forward vs reference, default P = 256, odd C */
    for (int t = 0; t < 2; t++) {
        rd_flow_cfg cfg;
        const int c = t ? 17 : 24, k = t ? 3 : 2, h = 5, w = 7;
        const size_t n = (size_t)h * w;
        rd_flow_cfg_default(&cfg, c, k);
        rd_flow *f = rd_flow_new(&cfg, 99 + t, &err);
        RD_CHECK(f, "%s", err.msg);
        if (!f) continue;
        for (int b = 0; b < k; b++) {
            rd_flow_block bl = rd_flow_block_view(f, f->params, b);
            rd_fill_uniform(bl.offset, c, 5 + b, -0.2f, 0.2f);
            for (int j = 0; j < c; j++) bl.gamma[j] += 0.3f * bl.offset[j];
        }
        float *x = malloc(n * c * sizeof(float)), *l1 = malloc(n * sizeof(float)), *l2 = malloc(n * sizeof(float));
        double *l3 = malloc(n * sizeof(double));
        int32_t *py = malloc(n * sizeof(int32_t)), *px = malloc(n * sizeof(int32_t));
        rd_fill_uniform(x, n * c, 77, -2, 2);
        for (size_t i = 0; i < n; i++) py[i] = (int32_t)(i / w), px[i] = (int32_t)(i % w);
        rd_flow_plan *p = rd_flow_plan_new(f, h, w, &err);
        rd_flow_ws *ws = rd_flow_ws_new(f, n, h, w, &err);
        rd_arena ar;
        RD_CHECK(p && ws && rd_arena_init(&ar, rd_flow_plan_scratch(p), &err) == RD_OK, "%s", err.msg);
        RD_CHECK(rd_flow_plan_lpc(p, x, l1, &ar, &err) == RD_OK, "%s", err.msg);
        RD_CHECK(rd_flow_train_forward(f, ws, x, py, px, n, l2, &err) == RD_OK, "%s", err.msg);
        flow_ref(f, x, py, px, n, l3);
        double e1 = 0, e2 = 0;
        for (size_t i = 0; i < n; i++) {
            e1 = fmax(e1, fabs(l1[i] - l3[i]) / fmax(1, fabs(l3[i])));
            e2 = fmax(e2, fabs(l2[i] - l3[i]) / fmax(1, fabs(l3[i])));
        }
        /* row ranges give the same values as the whole level */
        float *l4 = malloc(n * sizeof(float));
        RD_CHECK(rd_flow_plan_lpc_range(p, x, 0, 9, l4, &ar, &err) == RD_OK &&
                     rd_flow_plan_lpc_range(p, x, 9, n, l4, &ar, &err) == RD_OK,
                 "%s", err.msg);
        /* (other chunk shapes: GEMM kernels may round differently, so not bitwise) */
        RD_CHECK(rd_rel_err(l4, l1, n) < 1e-6, "row ranges differ from the whole level: %g", rd_rel_err(l4, l1, n));
        RD_CHECK(rd_flow_plan_lpc_range(p, x, 3, n + 1, l4, &ar, &err) == RD_ERR_ARG, "range past the end accepted");
        {
            /* a team of 2 on a level of > 1 chunk: same bits as serial */
            const int bh = 30, bw = 20;
            const size_t bn = (size_t)bh * bw;
            rd_flow_plan *bp = rd_flow_plan_new(f, bh, bw, &err);
            rd_team *team = rd_team_new(2, &err);
            rd_arena ta;
            float *bx = malloc(bn * c * sizeof(float)), *s1 = malloc(bn * 4), *s2 = malloc(bn * 4);
            RD_CHECK(bp && team && rd_arena_init(&ta, rd_flow_plan_scratch_team(bp, 2), &err) == RD_OK, "%s", err.msg);
            rd_fill_uniform(bx, bn * c, 78, -2, 2);
            RD_CHECK(rd_flow_plan_lpc(bp, bx, s1, &ta, &err) == RD_OK, "%s", err.msg);
            RD_CHECK(rd_flow_plan_lpc_team(bp, bx, s2, team, &ta, &err) == RD_OK, "%s", err.msg);
            RD_CHECK(memcmp(s1, s2, bn * 4) == 0, "team split differs from serial");
            rd_arena_release(&ta);
            rd_team_free(team);
            rd_flow_plan_free(bp);
            free(bx);
            free(s1);
            free(s2);
        }
        free(l4);
        printf("flow C %d K %d P 256: plan vs ref %.2e, train fwd vs ref %.2e\n", c, k, e1, e2);
        RD_CHECK(e1 < 1e-5 && e2 < 1e-5, "flow plan/forward: %g %g", e1, e2);
        /* files */
        char path[512];
        snprintf(path, sizeof path, "%s/flow.safetensors", rd_test_tmpdir("learnedf"));
        RD_CHECK(rd_flow_save(f, path, "level2.flow", &err) == RD_OK, "%s", err.msg);
        rd_flow *f2 = rd_flow_load(path, "level2.flow", &err);
        RD_CHECK(f2 && f2->nparams == f->nparams && memcmp(f2->params, f->params, f->nparams * 4) == 0 &&
                     memcmp(f2->rot, f->rot, (size_t)k * c * c * 4) == 0 && f2->cfg.clamp == f->cfg.clamp,
                 "flow file round trip: %s", f2 ? "values differ" : err.msg);
        rd_flow_free(f2);
        /* a rotation that is not orthogonal is refused */
        f->rot[0] += 0.1f;
        RD_CHECK(rd_flow_save(f, path, "level2.flow", &err) == RD_OK, "%s", err.msg);
        f2 = rd_flow_load(path, "level2.flow", &err);
        RD_CHECK(!f2 && err.code == RD_ERR_FORMAT, "non-orthogonal rotation accepted (%s)", err.msg);
        rd_flow_free(f2);
        rd_arena_release(&ar);
        rd_flow_plan_free(p);
        rd_flow_ws_free(ws);
        free(x);
        free(l1);
        free(l2);
        free(l3);
        free(py);
        free(px);
        rd_flow_free(f);
    }
}

int main(void)
{
    test_misc();
    test_losses();
    test_cstr_grad(4, 1, 11);
    test_cstr_grad(3, 3, 12);
    test_flow_grad("one block, saturated tanh", 6, 1, 8, 10, 20.0f, 21);
    test_flow_grad("three blocks, odd C, default hidden", 7, 3, 8, 0, 3.0f, 22);
    return rd_test_done("test_learned_grad");
}
