/* test_flow_pos.c — the flow's positional condition modes (flow.h: ABS, NONE,
 * SHIFT): parsing and names, the SHIFT range, inference plans against the
 * training forward at the positions each mode defines, translation invariance
 * of NONE on any grid, and the files (format 1 for ABS as before, format 2
 * otherwise; bad format-2 configurations refused). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "flow.h"
#include "safetensors.h"
#include "testutil.h"

enum { C = 8, K = 2, P = 16, H = 5, W = 7 };

static rd_flow *make_flow(int pos, float shift, unsigned seed)
{
    rd_flow_cfg cfg;
    rd_err e;
    rd_flow_cfg_default(&cfg, C, K);
    cfg.p = P;
    cfg.pos = pos;
    cfg.shift = shift;
    rd_flow *f = rd_flow_new(&cfg, seed, &e);
    RD_CHECK(f != NULL, "flow_new: %s", e.msg);
    if (f) /* non-trivial condition weights */
        for (size_t i = 0; i < f->nparams; i++) f->params[i] += 0.05f * (float)sin((double)i * 0.7);
    return f;
}

/* lpc of the h×w map x through a plan at h×w made for a flow trained at th×tw. */
static void plan_lpc(const rd_flow *f, int h, int w, int th, int tw, const float *x, float *lpc)
{
    rd_err e;
    rd_arena a;
    rd_flow_plan *p = rd_flow_plan_new_at(f, h, w, th, tw, &e);
    RD_CHECK(p != NULL, "plan: %s", e.msg);
    if (!p) return;
    RD_CHECK(rd_arena_init(&a, rd_flow_plan_scratch(p) + 4096, &e) == RD_OK, "arena");
    RD_CHECK(rd_flow_plan_lpc(p, x, lpc, &a, &e) == RD_OK, "%s", e.msg);
    rd_arena_release(&a);
    rd_flow_plan_free(p);
}

/* Training forward of the n rows x at (py, px) in a workspace of max_h×max_w. */
static void train_lpc(const rd_flow *f, const float *x, const int32_t *py, const int32_t *px, size_t n, int max_h,
                      int max_w, float *lpc)
{
    rd_err e;
    rd_flow_ws *ws = rd_flow_ws_new(f, n, max_h, max_w, &e);
    RD_CHECK(ws != NULL, "ws: %s", e.msg);
    if (!ws) return;
    RD_CHECK(rd_flow_train_forward(f, ws, x, py, px, n, lpc, &e) == RD_OK, "%s", e.msg);
    rd_flow_ws_free(ws);
}

static void test_parse(void)
{
    rd_flow_cfg cfg;
    char name[32];
    rd_flow_cfg_default(&cfg, C, K);
    RD_CHECK(cfg.pos == RD_FLOW_POS_ABS, "default is ABS");
    static const char *const good[] = {"abs", "none", "shift", "shift:0.5", "shift:4"};
    static const char *const want[] = {"abs", "none", "shift:1", "shift:0.5", "shift:4"};
    for (int i = 0; i < 5; i++) {
        RD_CHECK(rd_flow_pos_parse(good[i], &cfg), "'%s' refused", good[i]);
        rd_flow_pos_name(&cfg, name, sizeof name);
        RD_CHECK(!strcmp(name, want[i]), "'%s' named '%s'", good[i], name);
    }
    static const char *const bad[] = {"", "ABS", "shift:", "shift:0", "shift:-1", "shift:4.5", "shift:1x", "shift:nan",
                                      "centre"};
    for (int i = 0; i < 9; i++) RD_CHECK(!rd_flow_pos_parse(bad[i], &cfg), "'%s' accepted", bad[i]);
    rd_flow_cfg_default(&cfg, C, K);
    RD_CHECK(rd_flow_shift_range(&cfg, 56) == 0, "ABS has no shift");
    cfg.pos = RD_FLOW_POS_SHIFT;
    cfg.shift = 1;
    RD_CHECK(rd_flow_shift_range(&cfg, 56) == 55 && rd_flow_shift_range(&cfg, 1) == 0, "shift 1");
    cfg.shift = 0.5f;
    RD_CHECK(rd_flow_shift_range(&cfg, 14) == 7 && rd_flow_shift_range(&cfg, 28) == 14, "shift 0.5: %d %d",
             rd_flow_shift_range(&cfg, 14), rd_flow_shift_range(&cfg, 28));
    cfg.pos = RD_FLOW_POS_NONE;
    RD_CHECK(rd_flow_shift_range(&cfg, 56) == 0, "NONE has no shift");
    rd_err e;
    cfg.pos = 3;
    RD_CHECK(rd_flow_new(&cfg, 1, &e) == NULL, "position mode 3 accepted");
    cfg.pos = RD_FLOW_POS_SHIFT;
    cfg.shift = 0;
    RD_CHECK(rd_flow_new(&cfg, 1, &e) == NULL, "shift 0 accepted");
}

/* NONE: the plan equals the training forward at any positions, and the same
 * feature row scores the same at every position of every grid (there is no
 * border to learn).  ABS, for contrast, does depend on the position. */
static void test_none(void)
{
    const size_t n = (size_t)H * W;
    float x[H * W * C], lp[H * W], lt[H * W];
    int32_t py[H * W], px[H * W];
    rd_fill_uniform(x, n * C, 11, -1.5f, 1.5f);
    rd_flow *f = make_flow(RD_FLOW_POS_NONE, 0, 5), *fa = make_flow(RD_FLOW_POS_ABS, 0, 5);
    if (!f || !fa) return;
    plan_lpc(f, H, W, H, W, x, lp);
    for (size_t i = 0; i < n; i++) { /* positions unrelated to the row's place in the map */
        py[i] = (int32_t)((i * 5 + 3) % 40);
        px[i] = (int32_t)((i * 11 + 1) % 40);
    }
    train_lpc(f, x, py, px, n, 40, 40, lt);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(lp[i] - lt[i]));
    RD_CHECK(worst < 1e-5, "NONE: plan vs training forward at other positions: %g", worst);
    /* one feature row everywhere, on the trained grid and on a 16:9-like one */
    const int h2 = 9, w2 = 16;
    float *x1 = malloc(sizeof(float) * n * C), *x2 = malloc(sizeof(float) * h2 * w2 * C);
    float *l1 = malloc(sizeof(float) * n), *l2 = malloc(sizeof(float) * h2 * w2), *la = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) memcpy(x1 + i * C, x, C * sizeof(float));
    for (int i = 0; i < h2 * w2; i++) memcpy(x2 + (size_t)i * C, x, C * sizeof(float));
    plan_lpc(f, H, W, H, W, x1, l1);
    plan_lpc(f, h2, w2, H, W, x2, l2);
    plan_lpc(fa, H, W, H, W, x1, la);
    double spread = 0, spread_abs = 0;
    for (size_t i = 0; i < n; i++) {
        spread = fmax(spread, fabs(l1[i] - l1[0]));
        spread_abs = fmax(spread_abs, fabs(la[i] - la[0]));
    }
    for (int i = 0; i < h2 * w2; i++) spread = fmax(spread, fabs(l2[i] - l1[0]));
    printf("NONE: plan vs train %.2e, one row over positions and grids %.2e (ABS %.2e)\n", worst, spread, spread_abs);
    RD_CHECK(spread < 1e-6, "NONE depends on the position: %g", spread);
    RD_CHECK(spread_abs > 1e-4, "ABS does not depend on the position (%g): the check above cannot fail", spread_abs);
    free(x1);
    free(x2);
    free(l1);
    free(l2);
    free(la);
    rd_flow_free(f);
    rd_flow_free(fa);
}

/* SHIFT: training sees (y + oy, x + ox), oy ≤ R_h, ox ≤ R_w; the plan at the
 * trained grid is the training forward at the middle of the range (R even
 * here, so the middle is a whole position), and on a 2× grid the even
 * positions are the trained ones. */
static void test_shift(void)
{
    const size_t n = (size_t)H * W;
    float x[H * W * C], lp[H * W], lt[H * W];
    int32_t py[H * W], px[H * W];
    rd_flow *f = make_flow(RD_FLOW_POS_SHIFT, 1.0f, 6);
    if (!f) return;
    const int rh = rd_flow_shift_range(&f->cfg, H), rw = rd_flow_shift_range(&f->cfg, W);
    RD_CHECK(rh == H - 1 && rw == W - 1, "range %d %d", rh, rw);
    rd_fill_uniform(x, n * C, 12, -1.5f, 1.5f);
    plan_lpc(f, H, W, H, W, x, lp);
    for (size_t i = 0; i < n; i++) {
        py[i] = (int32_t)(i / W) + rh / 2;
        px[i] = (int32_t)(i % W) + rw / 2;
    }
    train_lpc(f, x, py, px, n, H + rh, W + rw, lt);
    double worst = 0, moved = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(lp[i] - lt[i]));
    RD_CHECK(worst < 1e-5, "SHIFT: plan vs training forward at the middle translation: %g", worst);
    for (size_t i = 0; i < n; i++) { /* the unshifted positions are another condition */
        py[i] = (int32_t)(i / W);
        px[i] = (int32_t)(i % W);
    }
    train_lpc(f, x, py, px, n, H + rh, W + rw, lt);
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(lp[i] - lt[i]));
    RD_CHECK(moved > 1e-4, "SHIFT plan ignores its offset (%g)", moved);
    /* 2× grid: position 2i encodes i·(H−1)/(2H−2)·... = the trained i, plus the same offset */
    const int h2 = 2 * H - 1, w2 = 2 * W - 1;
    float *x2 = calloc((size_t)h2 * w2 * C, sizeof(float)), *l2 = malloc(sizeof(float) * h2 * w2);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            memcpy(x2 + ((size_t)(2 * y) * w2 + 2 * xx) * C, x + ((size_t)y * W + xx) * C, C * sizeof(float));
    plan_lpc(f, h2, w2, H, W, x2, l2);
    double w2err = 0;
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) w2err = fmax(w2err, fabs(lp[y * W + xx] - l2[(2 * y) * w2 + 2 * xx]));
    printf("SHIFT: plan vs train %.2e, unshifted differs by %.2e, 2x grid %.2e\n", worst, moved, w2err);
    RD_CHECK(w2err < 1e-5, "SHIFT on a 2x grid: %g", w2err);
    /* a workspace without room for the translation refuses the positions */
    rd_err e;
    rd_flow_ws *ws = rd_flow_ws_new(f, n, H, W, &e);
    int32_t oy[1] = {H}, ox[1] = {0};
    RD_CHECK(ws && rd_flow_train_forward(f, ws, x, oy, ox, 1, lt, &e) != RD_OK, "position outside accepted");
    rd_flow_ws_free(ws);
    free(x2);
    free(l2);
    rd_flow_free(f);
}

static size_t config_len(const char *path)
{
    rd_err e;
    rd_st_file *st = rd_st_open(path, &e);
    const rd_st_tensor *t = st ? rd_st_find(st, "flow.config") : NULL;
    size_t n = t ? t->numel : 0;
    rd_st_free(st);
    return n;
}

/* Writes f's tensors with its config replaced by cv[len]. */
static int write_with_config(const rd_flow *f, const char *path, const float *cv, int len)
{
    rd_err e;
    size_t n = rd_flow_tensor_count(f);
    rd_st_out_tensor *ts = calloc(n, sizeof *ts);
    char(*names)[RD_LEARN_NAME_MAX] = calloc(n, sizeof *names);
    int ok = ts && names && rd_flow_export(f, "flow", ts, names, &e) == RD_OK;
    if (ok) {
        ts[0].shape[0] = len;
        ts[0].data = cv;
        const char *meta[] = {"format", "resadd-flow", NULL};
        ok = rd_st_write(path, ts, n, meta, &e) == RD_OK;
    }
    free(ts);
    free(names);
    return ok;
}

static void test_files(void)
{
    const char *dir = rd_test_tmpdir("flowpos");
    char path[512];
    rd_err e;
    float x[H * W * C], l0[H * W], l1[H * W];
    rd_fill_uniform(x, sizeof x / sizeof *x, 13, -1, 1);
    static const int modes[3] = {RD_FLOW_POS_ABS, RD_FLOW_POS_NONE, RD_FLOW_POS_SHIFT};
    for (int i = 0; i < 3; i++) {
        rd_flow *f = make_flow(modes[i], 0.5f, 20 + (unsigned)i);
        if (!f) continue;
        snprintf(path, sizeof path, "%s/flow%d.safetensors", dir, i);
        RD_CHECK(rd_flow_save(f, path, "flow", &e) == RD_OK, "%s", e.msg);
        RD_CHECK(config_len(path) == (modes[i] == RD_FLOW_POS_ABS ? 6u : 8u), "mode %d: config of %zu values", modes[i],
                 config_len(path));
        rd_flow *g = rd_flow_load(path, "flow", &e);
        RD_CHECK(g != NULL, "load: %s", e.msg);
        if (g) {
            RD_CHECK(g->cfg.pos == f->cfg.pos && g->cfg.shift == f->cfg.shift, "mode %d: read back as %d/%g", modes[i],
                     g->cfg.pos, (double)g->cfg.shift);
            plan_lpc(f, H, W, H, W, x, l0);
            plan_lpc(g, H, W, H, W, x, l1);
            RD_CHECK(!memcmp(l0, l1, sizeof l0), "mode %d: loaded flow scores differently", modes[i]);
        }
        rd_flow_free(g);
        if (modes[i] == RD_FLOW_POS_SHIFT) { /* damaged format-2 configurations */
            float cv[8];
            memcpy(cv, f->cfg_tensor, sizeof cv);
            static const float badpos[3] = {0, 3, -1};
            for (int b = 0; b < 3; b++) {
                cv[6] = badpos[b];
                RD_CHECK(write_with_config(f, path, cv, 8), "write");
                g = rd_flow_load(path, "flow", &e);
                RD_CHECK(g == NULL, "position mode %g accepted", (double)badpos[b]);
                rd_flow_free(g);
            }
            cv[6] = RD_FLOW_POS_SHIFT;
            cv[7] = 0;
            RD_CHECK(write_with_config(f, path, cv, 8), "write");
            g = rd_flow_load(path, "flow", &e);
            RD_CHECK(g == NULL, "shift 0 accepted");
            rd_flow_free(g);
            cv[0] = 1; /* version 1 with 8 values */
            cv[7] = 0.5f;
            RD_CHECK(write_with_config(f, path, cv, 8), "write");
            g = rd_flow_load(path, "flow", &e);
            RD_CHECK(g == NULL, "version 1 with 8 values accepted");
            rd_flow_free(g);
            cv[0] = 2; /* version 2 with 6 values */
            RD_CHECK(write_with_config(f, path, cv, 6), "write");
            g = rd_flow_load(path, "flow", &e);
            RD_CHECK(g == NULL, "version 2 with 6 values accepted");
            rd_flow_free(g);
        }
        rd_flow_free(f);
    }
}

int main(void)
{
    test_parse();
    test_none();
    test_shift();
    test_files();
    return rd_test_done("test_flow_pos");
}
