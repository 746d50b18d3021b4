/* learned_tool.c — driver for the PyTorch parity test (test_learned_parity.py).
 *
 *   learned_tool flow IN OUT   IN holds "flow.*" (rd_flow_export names), "x" [h·w, C],
 *                              "hw" [2], "mask" [h·w], "bn" [1], "adam" [2] = {lr, wd}.
 *     Writes "lpc_plan" (inference plan), "lpc_train" (training forward),
 *     "loss", "grad" (flat, block order w1 b1 w2 b2 γ offset), "dx", and the
 *     flow after one Adam step as "flow.*".  Loss: mean −logsigmoid(lpc) over
 *     normal positions + BGAD with b_n = bn (τ 0.1) over both sides.
 *   learned_tool cstr IN OUT   IN holds "cstr.*", "x" [n, h, w, C], "mask" [n·h·w],
 *                              "adam" [2].  Train-mode forward (running stats
 *     updated), OCC loss (pseudo-Huber on normals, mse(e, x) on anomalies),
 *     backward, one Adam step.  Writes "out_train", "loss", "grad", "dx",
 *     "out_eval" (folded plan of the updated model on every map), "cstr.*". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "constraintor.h"
#include "flow.h"
#include "losses.h"
#include "safetensors.h"

static float *get(const rd_st_file *st, const char *name, size_t *n, rd_err *err)
{
    const rd_st_tensor *t = rd_st_find(st, name);
    float *v;
    if (!t) {
        rd_err_set(err, RD_ERR_FORMAT, "input has no tensor %s", name);
        return NULL;
    }
    v = malloc((t->numel ? t->numel : 1) * sizeof(float));
    if (!v || rd_st_to_f32(t, v, err) != RD_OK) {
        free(v);
        return NULL;
    }
    if (n) *n = t->numel;
    return v;
}

#define OUT_MAX 1024

static int run_flow(const rd_st_file *in, const char *outpath, rd_err *err)
{
    rd_flow *f = rd_flow_import(in, "flow", err);
    size_t nx, nm;
    float *x = get(in, "x", &nx, err), *hw = get(in, "hw", NULL, err), *mask = get(in, "mask", &nm, err);
    float *bn = get(in, "bn", NULL, err), *ad = get(in, "adam", NULL, err);
    int rc = 1;
    if (!f || !x || !hw || !mask || !bn || !ad) return 1;
    const int h = (int)hw[0], w = (int)hw[1], c = f->cfg.c;
    const size_t n = (size_t)h * w;
    if (nx != n * c || nm != n) {
        rd_err_set(err, RD_ERR_ARG, "x/mask sizes do not match hw");
        return 1;
    }
    float *lp = malloc(n * sizeof(float)), *lt = malloc(n * sizeof(float)), *dl = calloc(n, sizeof(float));
    float *grad = calloc(f->nparams, sizeof(float)), *dx = malloc(n * c * sizeof(float)), *scratch = malloc(n * 4);
    int32_t *py = malloc(n * sizeof(int32_t)), *px = malloc(n * sizeof(int32_t));
    uint8_t *m8 = malloc(n);
    rd_flow_plan *p = rd_flow_plan_new(f, h, w, err);
    rd_flow_ws *ws = rd_flow_ws_new(f, n, h, w, err);
    rd_arena ar = {0};
    rd_adam adam = {0};
    if (!p || !ws || rd_arena_init(&ar, rd_flow_plan_scratch(p), err) != RD_OK) goto out;
    if (rd_flow_plan_lpc(p, x, lp, &ar, err) != RD_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        py[i] = (int32_t)(i / w);
        px[i] = (int32_t)(i % w);
        m8[i] = mask[i] != 0;
    }
    if (rd_flow_train_forward(f, ws, x, py, px, n, lt, err) != RD_OK) goto out;
    rd_bgad b;
    rd_bgad_init(&b);
    b.b_n = bn[0];
    float loss = (float)(rd_loss_ml(lt, m8, n, RD_ML_LOGSIGMOID, 1.0f, dl) + rd_loss_bgad(&b, lt, m8, n, 1.0f, dl, NULL));
    if (rd_flow_train_backward(f, ws, dl, grad, dx, err) != RD_OK) goto out;
    if (rd_adam_init(&adam, f->nparams, ad[0], ad[1], err) != RD_OK) goto out;
    rd_adam_step(&adam, f->params, grad);
    {
        size_t nt = rd_flow_tensor_count(f);
        rd_st_out_tensor ts[OUT_MAX];
        static char names[OUT_MAX][RD_LEARN_NAME_MAX];
        if (nt + 5 > OUT_MAX) {
            rd_err_set(err, RD_ERR_LIMIT, "too many tensors");
            goto out;
        }
        if (rd_flow_export(f, "flow", ts, names, err) != RD_OK) goto out;
        ts[nt++] = (rd_st_out_tensor){"lpc_plan", 1, {(int64_t)n}, lp};
        ts[nt++] = (rd_st_out_tensor){"lpc_train", 1, {(int64_t)n}, lt};
        ts[nt++] = (rd_st_out_tensor){"loss", 1, {1}, &loss};
        ts[nt++] = (rd_st_out_tensor){"grad", 1, {(int64_t)f->nparams}, grad};
        ts[nt++] = (rd_st_out_tensor){"dx", 2, {(int64_t)n, c}, dx};
        if (rd_st_write(outpath, ts, nt, NULL, err) != RD_OK) goto out;
    }
    rc = 0;
out:
    rd_adam_release(&adam);
    rd_arena_release(&ar);
    rd_flow_plan_free(p);
    rd_flow_ws_free(ws);
    free(lp);
    free(lt);
    free(dl);
    free(grad);
    free(dx);
    free(scratch);
    free(py);
    free(px);
    free(m8);
    free(x);
    free(hw);
    free(mask);
    free(bn);
    free(ad);
    rd_flow_free(f);
    return rc;
}

static int run_cstr(const rd_st_file *in, const char *outpath, rd_err *err)
{
    rd_cstr *m = rd_cstr_import(in, "cstr", err);
    const rd_st_tensor *tx = rd_st_find(in, "x");
    size_t nx, nm;
    float *x = get(in, "x", &nx, err), *mask = get(in, "mask", &nm, err), *ad = get(in, "adam", NULL, err);
    int rc = 1;
    if (!m || !tx || !x || !mask || !ad || tx->ndim != 4 || tx->shape[3] != m->c) {
        if (!err->msg[0]) rd_err_set(err, RD_ERR_ARG, "bad constraintor input");
        return 1;
    }
    const int n = (int)tx->shape[0], h = (int)tx->shape[1], w = (int)tx->shape[2], c = m->c;
    const size_t rows = (size_t)n * h * w;
    float *out = malloc(rows * c * sizeof(float)), *de = calloc(rows * c, sizeof(float));
    float *ev = malloc(rows * c * sizeof(float)), *grad = calloc(m->nparams, sizeof(float));
    float *dx = malloc(rows * c * sizeof(float)), *wt = malloc((size_t)c * c * m->k * m->k * sizeof(float));
    uint8_t *m8 = malloc(rows);
    rd_cstr_ws *ws = rd_cstr_ws_new(m, n, h, w, err);
    rd_cstr_plan *p = NULL;
    rd_arena ar = {0};
    rd_adam adam = {0};
    if (!ws || nm != rows) goto out;
    for (size_t i = 0; i < rows; i++) m8[i] = mask[i] != 0;
    if (rd_cstr_train_forward(m, ws, x, n, out, 1, err) != RD_OK) goto out;
    float loss = (float)rd_loss_occ(out, x, m8, rows, c, 1.0f, de, NULL);
    if (rd_cstr_train_backward(m, ws, de, grad, dx, err) != RD_OK) goto out;
    if (rd_adam_init(&adam, m->nparams, ad[0], ad[1], err) != RD_OK) goto out;
    rd_adam_step(&adam, m->params, grad);
    p = rd_cstr_plan_new(m, err);
    if (!p || rd_arena_init(&ar, rd_cstr_plan_scratch(p, h, w) + 64, err) != RD_OK) goto out;
    for (int i = 0; i < n; i++)
        if (rd_cstr_plan_forward(p, x + (size_t)i * h * w * c, h, w, ev + (size_t)i * h * w * c, &ar, err) != RD_OK)
            goto out;
    {
        rd_st_out_tensor ts[RD_CSTR_TENSORS + 5];
        char names[RD_CSTR_TENSORS][RD_LEARN_NAME_MAX];
        size_t nt = RD_CSTR_TENSORS;
        if (rd_cstr_export(m, "cstr", wt, ts, names, err) != RD_OK) goto out;
        ts[nt++] = (rd_st_out_tensor){"out_train", 4, {n, h, w, c}, out};
        ts[nt++] = (rd_st_out_tensor){"out_eval", 4, {n, h, w, c}, ev};
        ts[nt++] = (rd_st_out_tensor){"loss", 1, {1}, &loss};
        ts[nt++] = (rd_st_out_tensor){"grad", 1, {(int64_t)m->nparams}, grad};
        ts[nt++] = (rd_st_out_tensor){"dx", 4, {n, h, w, c}, dx};
        if (rd_st_write(outpath, ts, nt, NULL, err) != RD_OK) goto out;
    }
    rc = 0;
out:
    rd_adam_release(&adam);
    rd_arena_release(&ar);
    rd_cstr_plan_free(p);
    rd_cstr_ws_free(ws);
    free(out);
    free(de);
    free(ev);
    free(grad);
    free(dx);
    free(wt);
    free(m8);
    free(x);
    free(mask);
    free(ad);
    rd_cstr_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    rd_err err;
    rd_st_file *in;
    int rc;
    rd_err_clear(&err);
    if (argc != 4 || (strcmp(argv[1], "flow") && strcmp(argv[1], "cstr"))) {
        fprintf(stderr, "usage: learned_tool flow|cstr IN.safetensors OUT.safetensors\n");
        return 2;
    }
    in = rd_st_open(argv[2], &err);
    if (!in) {
        fprintf(stderr, "learned_tool: %s\n", err.msg);
        return 1;
    }
    rc = strcmp(argv[1], "flow") == 0 ? run_flow(in, argv[3], &err) : run_cstr(in, argv[3], &err);
    if (rc) fprintf(stderr, "learned_tool: %s\n", err.msg);
    rd_st_free(in);
    return rc;
}
