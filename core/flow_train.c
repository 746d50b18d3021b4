/* flow_train.c — the flow's training forward and backward (see flow.h).
 *
 * The forward caches, per block, its input rows, the post-ReLU hidden rows,
 * tanh of the clamp pre-activations and the coupled rows; the backward is then
 * GEMMs plus a few row passes.  The condition's share of W1 is learned through
 * per-coordinate sums of the hidden gradient (dA[x], dB[y]) times the
 * encoding tables — never through n×P condition rows. */
#include "flow.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow_kern.h"

#define LOG_2PI 1.8378770664093453

/* ---- training ---------------------------------------------------------------- */

struct rd_flow_ws {
    size_t cap, n;
    int max_h, max_w;
    const int32_t *py, *px; /* of the last forward (caller memory) */
    float *pew, *peh;       /* max_w × d, max_h × d */
    float *atab, *btab;     /* k × max_w × hid, k × max_h × hid */
    float *u;               /* (k+1) × cap × c: block inputs, then z */
    float *hrelu;           /* k × cap × hid */
    float *th;              /* k × cap × ca: tanh(0.1·a_s) */
    float *v;               /* k × cap × c: coupled rows before scale/offset */
    float *tmp;             /* cap × c */
    float *d1, *d2;         /* cap × c */
    float *da;              /* cap × 2ca */
    float *dh;              /* cap × hid */
    float *dtab;            /* max(max_h, max_w) × hid */
    float *mem;
};

void rd_flow_ws_free(rd_flow_ws *ws)
{
    if (!ws) return;
    free(ws->mem);
    free(ws);
}

rd_flow_ws *rd_flow_ws_new(const rd_flow *f, size_t cap, int max_h, int max_w, rd_err *err)
{
    const size_t c = (size_t)f->cfg.c, hid = (size_t)f->cfg.hid, k = (size_t)f->cfg.k, ca = (size_t)f->ca;
    const size_t d = (size_t)f->cfg.p / 2;
    size_t per_row = (k + 1) * c + k * hid + k * ca + k * c + 3 * c + 2 * ca + hid;
    size_t total, fixed, mx = (size_t)(max_h > max_w ? max_h : max_w);
    rd_flow_ws *ws;
    if (cap < 1 || max_h < 1 || max_w < 1 || max_h > RD_FLOW_MAX_HW || max_w > RD_FLOW_MAX_HW) {
        rd_err_set(err, RD_ERR_ARG, "flow workspace: invalid size");
        return NULL;
    }
    fixed = ((size_t)max_w + max_h) * d + k * ((size_t)max_w + max_h) * hid + mx * hid;
    if (!rd_mul_size(per_row, cap, &total) || !rd_add_size(total, fixed, &total) ||
        total > ((size_t)1 << 34)) {
        rd_err_set(err, RD_ERR_LIMIT, "flow workspace: %zu rows is too many", cap);
        return NULL;
    }
    ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->mem = malloc(total * sizeof(float)))) {
        free(ws);
        rd_err_set(err, RD_ERR_NOMEM, "flow workspace: out of memory");
        return NULL;
    }
    ws->cap = cap;
    ws->max_h = max_h;
    ws->max_w = max_w;
    float *m = ws->mem;
    ws->pew = m, m += (size_t)max_w * d;
    ws->peh = m, m += (size_t)max_h * d;
    ws->atab = m, m += k * max_w * hid;
    ws->btab = m, m += k * max_h * hid;
    ws->dtab = m, m += mx * hid;
    ws->u = m, m += (k + 1) * cap * c;
    ws->hrelu = m, m += k * cap * hid;
    ws->th = m, m += k * cap * ca;
    ws->v = m, m += k * cap * c;
    ws->tmp = m, m += cap * c;
    ws->d1 = m, m += cap * c;
    ws->d2 = m, m += cap * c;
    ws->da = m, m += cap * 2 * ca;
    ws->dh = m;
    /* NONE: every position encodes 0, so the condition is one constant row */
    const float sc = f->cfg.pos == RD_FLOW_POS_NONE ? 0.0f : 1.0f;
    rd_flow_k_posenc_axis_scaled(f->cfg.p, max_w, sc, ws->pew);
    rd_flow_k_posenc_axis_scaled(f->cfg.p, max_h, sc, ws->peh);
    return ws;
}

rd_status rd_flow_train_forward(const rd_flow *f, rd_flow_ws *ws, const float *x, const int32_t *py,
                                const int32_t *px, size_t n, float *lpc, rd_err *err)
{
    const int c = f->cfg.c, cp = f->cp, ca = f->ca, hid = f->cfg.hid, d = f->cfg.p / 2, in = f->in;
    const size_t cap = ws->cap;
    if (n < 1 || n > cap) return rd_err_set(err, RD_ERR_ARG, "flow forward: %zu rows for a workspace of %zu", n, cap);
    for (size_t i = 0; i < n; i++)
        if (py[i] < 0 || py[i] >= ws->max_h || px[i] < 0 || px[i] >= ws->max_w)
            return rd_err_set(err, RD_ERR_ARG, "flow forward: position (%d, %d) outside the workspace's %dx%d",
                              (int)py[i], (int)px[i], ws->max_h, ws->max_w);
    ws->n = n;
    ws->py = py;
    ws->px = px;
    memcpy(ws->u, x, n * c * sizeof(float));
    double ldc = 0;
    float *ld = ws->d1; /* per-row Σ s, reuses a backward buffer */
    for (size_t i = 0; i < n; i++) ld[i] = 0;
    for (int k = 0; k < f->cfg.k; k++) {
        rd_flow_block b = rd_flow_block_view(f, f->params, k);
        const float *rot = f->rot + (size_t)k * c * c;
        float *u = ws->u + (size_t)k * cap * c, *un = u + cap * c;
        float *hb = ws->hrelu + (size_t)k * cap * hid, *th = ws->th + (size_t)k * cap * ca;
        float *v = ws->v + (size_t)k * cap * c, *a = ws->da;
        float *at = ws->atab + (size_t)k * ws->max_w * hid, *bt = ws->btab + (size_t)k * ws->max_h * hid;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ws->max_w, hid, d, 1.0f, ws->pew, d, b.w1 + cp, in,
                    0.0f, at, hid);
        for (int y = 0; y < ws->max_h; y++) memcpy(bt + (size_t)y * hid, b.b1, hid * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ws->max_h, hid, d, 1.0f, ws->peh, d, b.w1 + cp + d,
                    in, 1.0f, bt, hid);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, hid, cp, 1.0f, u, c, b.w1, in, 0.0f, hb, hid);
        for (size_t i = 0; i < n; i++)
            rd_flow_k_add2_relu(hb + i * hid, at + (size_t)px[i] * hid, bt + (size_t)py[i] * hid, hid);
        for (size_t i = 0; i < n; i++) memcpy(a + i * 2 * ca, b.b2, 2 * ca * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, 2 * ca, hid, 1.0f, hb, hid, b.w2, hid, 1.0f, a,
                    2 * ca);
        float g[RD_FLOW_MAX_C];
        for (int j = 0; j < c; j++) {
            g[j] = rd_flow_k_gscale(b.gamma[j]);
            ldc += log((double)g[j]);
        }
        for (size_t i = 0; i < n; i++) {
            const float *ur = u + i * c, *ar = a + i * 2 * ca;
            float *vr = v + i * c, *tr = th + i * ca, *wr = ws->tmp + i * c;
            float sum = 0;
            memcpy(vr, ur, cp * sizeof(float));
            for (int j = 0; j < ca; j++) {
                float t = tanhf(0.1f * ar[j]), s = f->cfg.clamp * t;
                tr[j] = t;
                sum += s;
                vr[cp + j] = ur[cp + j] * expf(s) + 0.1f * ar[ca + j];
            }
            ld[i] += sum;
            for (int j = 0; j < c; j++) wr[j] = vr[j] * g[j] + b.offset[j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, c, c, 1.0f, ws->tmp, c, rot, c, 0.0f, un, c);
    }
    const float *z = ws->u + (size_t)f->cfg.k * cap * c;
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (int j = 0; j < c; j++) q += (double)z[i * c + j] * z[i * c + j];
        lpc[i] = (float)((-0.5 * c * LOG_2PI - 0.5 * q + ld[i] + ldc) / c);
    }
    return RD_OK;
}

rd_status rd_flow_train_backward(const rd_flow *f, rd_flow_ws *ws, const float *dlpc, float *grad, float *dx,
                                 rd_err *err)
{
    const int c = f->cfg.c, cp = f->cp, ca = f->ca, hid = f->cfg.hid, d = f->cfg.p / 2, in = f->in;
    const size_t cap = ws->cap, n = ws->n;
    const float clamp = f->cfg.clamp;
    float *dy = ws->d1, *dv = ws->d2;
    double dld_sum = 0;
    if (n == 0) return rd_err_set(err, RD_ERR_STATE, "flow backward without a forward");
    const float *z = ws->u + (size_t)f->cfg.k * cap * c;
    for (size_t i = 0; i < n; i++) {
        float s = dlpc[i] / (float)c;
        dld_sum += s;
        for (int j = 0; j < c; j++) dy[i * c + j] = -s * z[i * c + j];
    }
    for (int k = f->cfg.k - 1; k >= 0; k--) {
        rd_flow_block b = rd_flow_block_view(f, f->params, k), gb = rd_flow_block_view(f, grad, k);
        const float *rot = f->rot + (size_t)k * c * c;
        const float *u = ws->u + (size_t)k * cap * c, *hb = ws->hrelu + (size_t)k * cap * hid;
        const float *th = ws->th + (size_t)k * cap * ca, *v = ws->v + (size_t)k * cap * c;
        float *da = ws->da, *dh = ws->dh;
        /* y = (v⊙g + o)·Rᵀ  →  dv' = dy·R */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, c, c, 1.0f, dy, c, rot, c, 0.0f, dv, c);
        {
            double sg[RD_FLOW_MAX_C], so[RD_FLOW_MAX_C];
            float g[RD_FLOW_MAX_C];
            for (int j = 0; j < c; j++) {
                sg[j] = so[j] = 0;
                g[j] = rd_flow_k_gscale(b.gamma[j]);
            }
            for (size_t i = 0; i < n; i++) {
                float *dr = dv + i * c;
                const float *vr = v + i * c;
                for (int j = 0; j < c; j++) {
                    sg[j] += (double)dr[j] * vr[j];
                    so[j] += dr[j];
                    dr[j] *= g[j];
                }
            }
            for (int j = 0; j < c; j++) {
                /* + Σ_rows ∂/∂g of log g */
                gb.gamma[j] += (float)((sg[j] + dld_sum / g[j]) * rd_flow_k_gscale_deriv(b.gamma[j]));
                gb.offset[j] += (float)so[j];
            }
        }
        /* coupling: dy (reused) becomes d(block input); dv holds d[x1, x2'] */
        for (size_t i = 0; i < n; i++) {
            const float *ur = u + i * c, *tr = th + i * ca, *dvr = dv + i * c;
            float *dyr = dy + i * c, *dar = da + i * 2 * ca;
            const float dld = dlpc[i] / (float)c;
            memcpy(dyr, dvr, cp * sizeof(float));
            for (int j = 0; j < ca; j++) {
                float t = tr[j], es = expf(clamp * t), g2 = dvr[cp + j];
                float ds = g2 * ur[cp + j] * es + dld;
                dyr[cp + j] = g2 * es;
                dar[j] = ds * clamp * (1.0f - t * t) * 0.1f;
                dar[ca + j] = 0.1f * g2;
            }
        }
        /* a = h·W2ᵀ + b2 */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2 * ca, hid, (int)n, 1.0f, da, 2 * ca, hb, hid, 1.0f,
                    gb.w2, hid);
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < 2 * ca; j++) gb.b2[j] += da[i * 2 * ca + j];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, hid, 2 * ca, 1.0f, da, 2 * ca, b.w2, hid, 0.0f,
                    dh, hid);
        rd_flow_k_relu_mask(dh, hb, n * (size_t)hid);
        /* pre = x1·W1xᵀ + A[x] + B[y] (b1 in B) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hid, cp, (int)n, 1.0f, dh, hid, u, c, 1.0f, gb.w1, in);
        /* b1 and the x-encoding columns of W1 through per-column sums of dh */
        memset(ws->dtab, 0, (size_t)ws->max_w * hid * sizeof(float));
        for (size_t i = 0; i < n; i++) rd_flow_k_vadd(ws->dtab + (size_t)ws->px[i] * hid, dh + i * hid, (size_t)hid);
        for (int x = 0; x < ws->max_w; x++) rd_flow_k_vadd(gb.b1, ws->dtab + (size_t)x * hid, (size_t)hid);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hid, d, ws->max_w, 1.0f, ws->dtab, hid, ws->pew, d,
                    1.0f, gb.w1 + cp, in);
        memset(ws->dtab, 0, (size_t)ws->max_h * hid * sizeof(float));
        for (size_t i = 0; i < n; i++) rd_flow_k_vadd(ws->dtab + (size_t)ws->py[i] * hid, dh + i * hid, (size_t)hid);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hid, d, ws->max_h, 1.0f, ws->dtab, hid, ws->peh, d,
                    1.0f, gb.w1 + cp + d, in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, cp, hid, 1.0f, dh, hid, b.w1, in, 1.0f, dy, c);
    }
    if (dx) memcpy(dx, dy, n * c * sizeof(float));
    return RD_OK;
}
