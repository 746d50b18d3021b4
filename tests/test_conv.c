/* test_conv.c — the graph engine's ops against naive direct-loop references.
 *
 * Each case builds input → "pre" conv (3 → cin channels, level 0) → op under
 * test (level 1), runs it, checks level 0 against the reference applied to the
 * input and level 1 against the reference applied to the engine's own level 0,
 * so every op is tested on exactly the data it saw.  Also: BN folding against
 * an unfolded conv + BN, a residual chain that exercises buffer reuse, the
 * arena staying within the planned scratch, and an undersized arena failing
 * cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "blas.h"
#include "graph.h"
#include "team.h"
#include "testutil.h"

typedef struct op_spec {
    rd_op op;
    int kh, kw, sh, sw, pt, pl, pb, pr, cin, cout;
    rd_act act;
    int bias;
} op_spec;

static double act_ref(double x, rd_act act)
{
    if (act == RD_ACT_RELU) return x > 0 ? x : 0;
    if (act == RD_ACT_RELU6) return x > 0 ? (x < 6 ? x : 6) : 0;
    return x;
}

static void out_hw(const op_spec *o, int h, int w, int *oh, int *ow)
{
    *oh = (h + o->pt + o->pb - o->kh) / o->sh + 1;
    *ow = (w + o->pl + o->pr - o->kw) / o->sw + 1;
}

/* Reference for conv/dwconv/pools on HWC data; weights HWIO / [kh][kw][c]. */
static void ref_op(const op_spec *o, const float *in, int h, int w, const float *wt, const float *b, float *out)
{
    int oh, ow;
    int cout = o->op == RD_OP_CONV ? o->cout : o->cin;
    out_hw(o, h, w, &oh, &ow);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int co = 0; co < cout; co++) {
                double acc = (o->op == RD_OP_MAXPOOL) ? -INFINITY : (b ? b[co] : 0.0);
                int count = 0;
                for (int ky = 0; ky < o->kh; ky++)
                    for (int kx = 0; kx < o->kw; kx++) {
                        int iy = y * o->sh - o->pt + ky, ix = x * o->sw - o->pl + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        const float *p = in + ((size_t)iy * w + ix) * o->cin;
                        count++;
                        if (o->op == RD_OP_CONV) {
                            for (int ci = 0; ci < o->cin; ci++)
                                acc += (double)p[ci] * wt[(((size_t)ky * o->kw + kx) * o->cin + ci) * o->cout + co];
                        } else if (o->op == RD_OP_DWCONV) {
                            acc += (double)p[co] * wt[((size_t)ky * o->kw + kx) * o->cin + co];
                        } else if (o->op == RD_OP_MAXPOOL) {
                            if (p[co] > acc) acc = p[co];
                        } else {
                            acc += p[co];
                        }
                    }
                if (o->op == RD_OP_AVGPOOL) acc /= count;
                out[((size_t)y * ow + x) * cout + co] = (float)act_ref(acc, o->act);
            }
}

static float *dup_floats(const float *x, size_t n)
{
    float *y = malloc(n * sizeof *y + 1);
    if (y) memcpy(y, x, n * sizeof *y);
    return y;
}

static float *rand_floats(size_t n, unsigned seed, float lo, float hi)
{
    float *x = malloc(n * sizeof *x + 1);
    rd_fill_uniform(x, n, seed, lo, hi);
    return x;
}

/* Runs the planned graph with an arena of exactly the planned size; checks the
 * peak.  levels[i].data must be allocated by the caller.  Then runs it again
 * split across a team of 3 and checks that gives the same levels. */
static int run_graph(rd_graph *g, int s, const float *input, rd_tensor *levels, const char *what)
{
    size_t scratch = 0;
    rd_arena a;
    rd_err err = {0};
    rd_team *team;
    int ok = 1;
    if (rd_graph_plan(g, s, &scratch, &err) != RD_OK) {
        RD_CHECK(0, "%s: plan failed: %s", what, err.msg);
        return 0;
    }
    if (rd_arena_init(&a, scratch, &err) != RD_OK) return 0;
    /* The caller may take the input from the same arena: do so. */
    float *in = rd_arena_floats(&a, (size_t)s * s * 3);
    RD_CHECK(in != NULL, "%s: no room for the input in the planned arena", what);
    if (in) memcpy(in, input, (size_t)s * s * 3 * sizeof(float));
    if (rd_graph_forward(g, in ? in : input, &a, levels, &err) != RD_OK) {
        RD_CHECK(0, "%s: forward failed: %s", what, err.msg);
        ok = 0;
    }
    RD_CHECK(a.peak <= scratch && a.peak <= g->scratch_bytes, "%s: arena peak %zu over the plan %zu", what, a.peak,
             scratch);
    rd_arena_release(&a);

    team = rd_team_new(3, &err);
    if (ok && team && rd_arena_init(&a, rd_graph_scratch_team(g, 3), &err) == RD_OK) {
        rd_tensor tl[RD_MAX_LEVELS];
        for (int l = 0; l < g->nlevels; l++) {
            int h, w, c;
            rd_graph_level_shape(g, l, &h, &w, &c);
            tl[l].data = calloc((size_t)h * w * c + 1, sizeof(float));
        }
        in = rd_arena_floats(&a, (size_t)s * s * 3);
        memcpy(in, input, (size_t)s * s * 3 * sizeof(float));
        rd_blas_set_threads(1); /* as documented: the team replaces BLAS threads */
        RD_CHECK(rd_graph_forward_team(g, in, &a, team, tl, &err) == RD_OK, "%s: team forward: %s", what, err.msg);
        rd_blas_set_threads(2);
        RD_CHECK(a.peak <= rd_graph_scratch_team(g, 3), "%s: team arena peak %zu over %zu", what, a.peak,
                 rd_graph_scratch_team(g, 3));
        for (int l = 0; l < g->nlevels; l++) {
            double e = rd_rel_err(tl[l].data, levels[l].data, rd_tensor_numel(&levels[l]));
            RD_CHECK(e < 1e-6, "%s: level %d with a team differs by %.3g", what, l, e);
            free(tl[l].data);
        }
        rd_arena_release(&a);
    }
    rd_team_free(team);
    return ok;
}

static void test_op(const op_spec *o, int s, unsigned seed)
{
    char what[160];
    rd_graph *g = rd_graph_new();
    rd_err err = {0};
    int pre_k = 3, h1, w1, h2, w2, cout = o->op == RD_OP_CONV ? o->cout : o->cin;
    size_t pre_wn = (size_t)pre_k * pre_k * 3 * o->cin, wn = 0;
    float *input = rand_floats((size_t)s * s * 3, seed, -1, 1);
    float *pre_w = rand_floats(pre_wn, seed + 1, -0.5f, 0.5f), *pre_b = rand_floats((size_t)o->cin, seed + 2, -0.5f, 0.5f);
    float *w = NULL, *b = NULL, *ref0, *ref1, *lv0, *lv1;
    op_spec pre = {RD_OP_CONV, pre_k, pre_k, 1, 1, 1, 1, 1, 1, 3, o->cin, RD_ACT_NONE, 1};
    rd_tensor levels[2];
    int x, y, nodes[2];

    snprintf(what, sizeof what, "op %d k%dx%d s%dx%d pad %d,%d,%d,%d cin %d cout %d act %d bias %d S %d", (int)o->op,
             o->kh, o->kw, o->sh, o->sw, o->pt, o->pl, o->pb, o->pr, o->cin, o->cout, (int)o->act, o->bias, s);
    if (o->op == RD_OP_CONV) wn = (size_t)o->kh * o->kw * o->cin * o->cout;
    if (o->op == RD_OP_DWCONV) wn = (size_t)o->kh * o->kw * o->cin;
    if (wn) {
        w = rand_floats(wn, seed + 3, -0.5f, 0.5f);
        if (o->bias) b = rand_floats((size_t)cout, seed + 4, -0.5f, 0.5f);
    }
    x = rd_graph_input(g);
    x = rd_graph_conv_take(g, "pre", x, pre_k, pre_k, 1, 1, 1, 1, 1, 1, 3, o->cin, dup_floats(pre_w, pre_wn),
                           dup_floats(pre_b, (size_t)o->cin), RD_ACT_NONE);
    if (o->op == RD_OP_CONV)
        y = rd_graph_conv_take(g, "op", x, o->kh, o->kw, o->sh, o->sw, o->pt, o->pl, o->pb, o->pr, o->cin, o->cout,
                               dup_floats(w, wn), b ? dup_floats(b, (size_t)cout) : NULL, o->act);
    else if (o->op == RD_OP_DWCONV)
        y = rd_graph_dwconv_take(g, "op", x, o->kh, o->kw, o->sh, o->sw, o->pt, o->pl, o->pb, o->pr, o->cin,
                                 dup_floats(w, wn), b ? dup_floats(b, (size_t)cout) : NULL, o->act);
    else
        y = rd_graph_pool(g, "op", o->op, x, o->kh, o->kw, o->sh, o->sw, o->pt, o->pl, o->pb, o->pr);
    if (o->op == RD_OP_MAXPOOL || o->op == RD_OP_AVGPOOL) rd_graph_set_act(g, y, o->act);
    RD_CHECK(x >= 0 && y >= 0, "%s: build failed", what);
    nodes[0] = x;
    nodes[1] = y;
    RD_CHECK(rd_graph_set_levels(g, nodes, 2, &err) == RD_OK, "%s: %s", what, err.msg);

    out_hw(&pre, s, s, &h1, &w1);
    out_hw(o, h1, w1, &h2, &w2);
    lv0 = calloc((size_t)h1 * w1 * o->cin, sizeof *lv0);
    lv1 = calloc((size_t)h2 * w2 * cout, sizeof *lv1);
    ref0 = calloc((size_t)h1 * w1 * o->cin, sizeof *ref0);
    ref1 = calloc((size_t)h2 * w2 * cout, sizeof *ref1);
    levels[0].data = lv0;
    levels[1].data = lv1;
    if (run_graph(g, s, input, levels, what)) {
        int lh, lw, lc;
        rd_graph_level_shape(g, 1, &lh, &lw, &lc);
        RD_CHECK(lh == h2 && lw == w2 && lc == cout, "%s: level shape %dx%dx%d, want %dx%dx%d", what, lh, lw, lc, h2,
                 w2, cout);
        RD_CHECK(levels[1].h == h2 && levels[1].w == w2 && levels[1].c == cout, "%s: level tensor shape", what);
        ref_op(&pre, input, s, s, pre_w, pre_b, ref0);
        ref_op(o, lv0, h1, w1, w, b, ref1);
        double e0 = rd_rel_err(lv0, ref0, (size_t)h1 * w1 * o->cin), e1 = rd_rel_err(lv1, ref1, (size_t)h2 * w2 * cout);
        RD_CHECK(e0 < 1e-5, "%s: pre conv error %.3g", what, e0);
        RD_CHECK(e1 < 1e-5, "%s: error %.3g", what, e1);
    }
    rd_graph_free(g);
    free(input), free(pre_w), free(pre_b), free(w), free(b);
    free(lv0), free(lv1), free(ref0), free(ref1);
}

static void test_ops(void)
{
    static const int ks[] = {1, 3, 5, 7};
    unsigned seed = 100;
    int cases = 0;
    for (size_t ki = 0; ki < 4; ki++)
        for (int s = 1; s <= 2; s++)
            for (int asym = 0; asym < 2; asym++) {
                int k = ks[ki];
                op_spec o = {RD_OP_CONV, k, k, s, s, k / 2, k / 2, k / 2, k / 2, 5, 7, (rd_act)((ki + s) % 3), (ki + asym) % 2};
                if (asym) { /* Keras "same" style: more padding at the bottom/right, or none at the top */
                    o.pt = 0, o.pl = k > 1 ? 1 : 0, o.pb = k - 1, o.pr = k > 2 ? k - 2 : 0;
                    o.cin = 4, o.cout = 13;
                }
                test_op(&o, 17 + (int)ki, seed += 10);
                cases++;
            }
    /* non-square kernel and stride, wide channels */
    {
        op_spec o = {RD_OP_CONV, 3, 1, 2, 1, 1, 0, 1, 0, 33, 65, RD_ACT_RELU, 1};
        test_op(&o, 16, seed += 10);
        op_spec o2 = {RD_OP_CONV, 1, 1, 2, 2, 0, 0, 0, 0, 9, 31, RD_ACT_NONE, 1}; /* strided 1×1 (downsample) */
        test_op(&o2, 15, seed += 10);
        /* K = 5·5·200 = 5000: the im2col matrix is built in several row blocks, the last one partial */
        op_spec o3 = {RD_OP_CONV, 5, 5, 1, 1, 2, 1, 2, 3, 200, 9, RD_ACT_RELU, 1};
        test_op(&o3, 23, seed += 10);
        /* fewer output pixels than channels: a team splits these by output channel */
        op_spec o4 = {RD_OP_CONV, 3, 3, 1, 1, 1, 1, 1, 1, 16, 100, RD_ACT_RELU, 1};
        test_op(&o4, 9, seed += 10);
        op_spec o5 = {RD_OP_CONV, 1, 1, 1, 1, 0, 0, 0, 0, 24, 130, RD_ACT_RELU6, 1};
        test_op(&o5, 8, seed += 10);
        op_spec o6 = {RD_OP_CONV, 3, 3, 2, 2, 1, 1, 1, 1, 40, 200, RD_ACT_NONE, 0};
        test_op(&o6, 12, seed += 10);
        cases += 6;
    }
    /* depthwise 3×3: stride 1 "same", stride 2 Keras "same" (pad bottom/right only) on even and odd sizes */
    for (int s = 1; s <= 2; s++)
        for (int sz = 16; sz <= 17; sz++) {
            op_spec o = {RD_OP_DWCONV, 3, 3, s, s, 1, 1, 1, 1, 19, 19, s == 1 ? RD_ACT_RELU6 : RD_ACT_RELU, sz & 1};
            if (s == 2) o.pt = o.pl = 0, o.pb = o.pr = (sz % 2 == 0) ? 1 : 2;
            if (s == 2 && sz % 2) o.pb = o.pr = 1, o.pt = o.pl = 1;
            test_op(&o, sz, seed += 10);
            cases++;
        }
    /* pools */
    {
        op_spec mp = {RD_OP_MAXPOOL, 3, 3, 2, 2, 1, 1, 1, 1, 6, 6, RD_ACT_NONE, 0};
        op_spec ap = {RD_OP_AVGPOOL, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, RD_ACT_NONE, 0};
        op_spec ap2 = {RD_OP_AVGPOOL, 2, 2, 2, 2, 0, 0, 1, 1, 5, 5, RD_ACT_RELU, 0};
        op_spec mp2 = {RD_OP_MAXPOOL, 2, 3, 1, 2, 0, 1, 1, 2, 4, 4, RD_ACT_RELU6, 0};
        test_op(&mp, 17, seed += 10);
        test_op(&ap, 12, seed += 10);
        test_op(&ap2, 13, seed += 10);
        test_op(&mp2, 11, seed += 10);
        cases += 4;
    }
    fprintf(stderr, "  %d op cases checked\n", cases);
}

/* input → a = conv(relu) [level0], b = conv [level1], a + b relu [level2], then
 * a chain (c1 → c2 → c3 + skip) so buffers are reused [level3]; and a dead
 * branch that must not run. */
static void test_add_chain(void)
{
    const int s = 20, c = 8;
    rd_graph *g = rd_graph_new();
    rd_err err = {0};
    float *input = rand_floats((size_t)s * s * 3, 7, -1, 1);
    float *wa = rand_floats(27 * c, 8, -0.5f, 0.5f), *wb = rand_floats(3 * c, 9, -0.5f, 0.5f);
    float *w1 = rand_floats(c * c, 10, -0.5f, 0.5f), *w2 = rand_floats(9 * c * c, 11, -0.3f, 0.3f);
    float *w3 = rand_floats(c * c, 12, -0.5f, 0.5f), *bb = rand_floats(c, 13, -1, 1);
    size_t n = (size_t)s * s * c;
    float *lv[4], *r[4], *t1 = calloc(n, 4), *t2 = calloc(n, 4), *t3 = calloc(n, 4);
    rd_tensor levels[4];
    int in, a, b, ab, c1, c2, c3, out, dead, nodes[4];
    op_spec sa = {RD_OP_CONV, 3, 3, 1, 1, 1, 1, 1, 1, 3, c, RD_ACT_RELU, 1};
    op_spec sb = {RD_OP_CONV, 1, 1, 1, 1, 0, 0, 0, 0, 3, c, RD_ACT_NONE, 0};
    op_spec s1 = {RD_OP_CONV, 1, 1, 1, 1, 0, 0, 0, 0, c, c, RD_ACT_RELU, 0};
    op_spec s2 = {RD_OP_CONV, 3, 3, 1, 1, 1, 1, 1, 1, c, c, RD_ACT_RELU6, 0};
    op_spec s3 = {RD_OP_CONV, 1, 1, 1, 1, 0, 0, 0, 0, c, c, RD_ACT_NONE, 0};

    in = rd_graph_input(g);
    a = rd_graph_conv_take(g, "a", in, 3, 3, 1, 1, 1, 1, 1, 1, 3, c, dup_floats(wa, 27 * c), dup_floats(bb, c), RD_ACT_RELU);
    b = rd_graph_conv_take(g, "b", in, 1, 1, 1, 1, 0, 0, 0, 0, 3, c, dup_floats(wb, 3 * c), NULL, RD_ACT_NONE);
    ab = rd_graph_add(g, "ab", a, b, RD_ACT_RELU);
    dead = rd_graph_conv_take(g, "dead", ab, 3, 3, 1, 1, 1, 1, 1, 1, c, c, dup_floats(w2, 9 * c * c), NULL, RD_ACT_NONE);
    c1 = rd_graph_conv_take(g, "c1", ab, 1, 1, 1, 1, 0, 0, 0, 0, c, c, dup_floats(w1, c * c), NULL, RD_ACT_RELU);
    c2 = rd_graph_conv_take(g, "c2", c1, 3, 3, 1, 1, 1, 1, 1, 1, c, c, dup_floats(w2, 9 * c * c), NULL, RD_ACT_RELU6);
    c3 = rd_graph_conv_take(g, "c3", c2, 1, 1, 1, 1, 0, 0, 0, 0, c, c, dup_floats(w3, c * c), NULL, RD_ACT_NONE);
    out = rd_graph_add(g, "out", c3, ab, RD_ACT_NONE);
    rd_graph_add(g, "after", out, out, RD_ACT_NONE); /* after the last level: never run */
    nodes[0] = a, nodes[1] = b, nodes[2] = ab, nodes[3] = out;
    RD_CHECK(dead >= 0 && rd_graph_find(g, "c2") == c2 && rd_graph_find(g, "nope") == -1, "find");
    RD_CHECK(rd_graph_set_levels(g, nodes, 4, &err) == RD_OK, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        lv[i] = calloc(n, 4), r[i] = calloc(n, 4);
        levels[i].data = lv[i];
    }
    if (run_graph(g, s, input, levels, "chain")) {
        RD_CHECK(!g->nodes[dead].needed && g->nodes[c2].needed, "dead branch marked needed");
        double macs = (double)s * s * c * (27 + 3 + c + 9 * c + c);
        RD_CHECK(fabs(rd_graph_macs(g) - macs) < 0.5, "macs %.0f, want %.0f", rd_graph_macs(g), macs);
        RD_CHECK(g->nbufs <= 3, "%d buffers for a chain that needs at most 3", g->nbufs);
        ref_op(&sa, input, s, s, wa, bb, r[0]);
        ref_op(&sb, input, s, s, wb, NULL, r[1]);
        for (size_t i = 0; i < n; i++) r[2][i] = (float)act_ref((double)lv[0][i] + lv[1][i], RD_ACT_RELU);
        ref_op(&s1, lv[2], s, s, w1, NULL, t1);
        ref_op(&s2, t1, s, s, w2, NULL, t2);
        ref_op(&s3, t2, s, s, w3, NULL, t3);
        for (size_t i = 0; i < n; i++) r[3][i] = t3[i] + lv[2][i];
        for (int i = 0; i < 4; i++) {
            double e = rd_rel_err(lv[i], r[i], n);
            RD_CHECK(e < 1e-5, "chain level %d error %.3g", i, e);
        }
        /* an arena one allocation short fails with an error, not a crash */
        {
            rd_arena small;
            if (rd_arena_init(&small, g->scratch_bytes - RD_ARENA_ALIGN, &err) == RD_OK) {
                float *inp = rd_arena_floats(&small, (size_t)s * s * 3);
                rd_status st = rd_graph_forward(g, inp ? inp : input, &small, levels, &err);
                RD_CHECK(st == RD_ERR_INTERNAL && err.msg[0], "short arena: status %d", (int)st);
                rd_arena_release(&small);
            }
        }
    }
    /* a plan for a too-small input is an error */
    {
        size_t sc;
        rd_status st = rd_graph_plan(g, 0, &sc, &err);
        RD_CHECK(st == RD_ERR_ARG, "S=0 accepted");
    }
    rd_graph_free(g);
    for (int i = 0; i < 4; i++) free(lv[i]), free(r[i]);
    free(input), free(wa), free(wb), free(w1), free(w2), free(w3), free(bb), free(t1), free(t2), free(t3);
}

/* conv + folded BN == conv followed by the BN formula. */
static void test_fold_bn(void)
{
    const int s = 13, cin = 5, cout = 11, k = 3;
    size_t wn = (size_t)k * k * cin * cout, n = (size_t)s * s * cout;
    float *input = rand_floats((size_t)s * s * 3, 21, -1, 1), *pw = rand_floats(27 * cin, 22, -0.5f, 0.5f);
    float *w = rand_floats(wn, 23, -0.5f, 0.5f), *b = rand_floats(cout, 24, -0.5f, 0.5f);
    float *gamma = rand_floats(cout, 25, 0.5f, 2.0f), *beta = rand_floats(cout, 26, -1, 1);
    float *mean = rand_floats(cout, 27, -1, 1), *var = rand_floats(cout, 28, 0.1f, 3.0f);
    float *lv0 = calloc((size_t)s * s * cin, 4), *lv1 = calloc(n, 4), *ref = calloc(n, 4);
    float *dw = rand_floats(9 * cout, 29, -0.5f, 0.5f), *lv2 = calloc(n, 4), *ref2 = calloc(n, 4), *tmp = calloc(n, 4);
    rd_graph *g = rd_graph_new();
    rd_err err = {0};
    rd_tensor levels[3];
    int x, y, z, nodes[3];
    op_spec o = {RD_OP_CONV, k, k, 1, 1, 1, 1, 1, 1, cin, cout, RD_ACT_NONE, 1};
    op_spec od = {RD_OP_DWCONV, 3, 3, 1, 1, 1, 1, 1, 1, cout, cout, RD_ACT_NONE, 0};

    x = rd_graph_input(g);
    x = rd_graph_conv_take(g, "pre", x, 3, 3, 1, 1, 1, 1, 1, 1, 3, cin, dup_floats(pw, 27 * cin), NULL, RD_ACT_NONE);
    y = rd_graph_conv_take(g, "conv", x, k, k, 1, 1, 1, 1, 1, 1, cin, cout, dup_floats(w, wn), dup_floats(b, cout),
                           RD_ACT_NONE);
    z = rd_graph_dwconv_take(g, "dw", y, 3, 3, 1, 1, 1, 1, 1, 1, cout, dup_floats(dw, 9 * cout), NULL, RD_ACT_NONE);
    RD_CHECK(rd_graph_fold_bn(g, y, gamma, beta, mean, var, 1e-5f, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_graph_fold_bn(g, z, gamma, beta, mean, var, 1e-3f, &err) == RD_OK, "%s", err.msg);
    rd_graph_set_act(g, y, RD_ACT_RELU);
    nodes[0] = x, nodes[1] = y, nodes[2] = z;
    RD_CHECK(rd_graph_set_levels(g, nodes, 3, &err) == RD_OK, "%s", err.msg);
    levels[0].data = lv0, levels[1].data = lv1, levels[2].data = lv2;
    if (run_graph(g, s, input, levels, "fold_bn")) {
        ref_op(&o, lv0, s, s, w, b, ref);
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % cout);
            double v = (ref[i] - mean[c]) / sqrt((double)var[c] + 1e-5) * gamma[c] + beta[c];
            ref[i] = (float)(v > 0 ? v : 0);
        }
        ref_op(&od, lv1, s, s, dw, NULL, tmp);
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % cout);
            ref2[i] = (float)((tmp[i] - mean[c]) / sqrt((double)var[c] + 1e-3) * gamma[c] + beta[c]);
        }
        double e = rd_rel_err(lv1, ref, n), e2 = rd_rel_err(lv2, ref2, n);
        RD_CHECK(e < 1e-5, "folded BN conv error %.3g", e);
        RD_CHECK(e2 < 1e-5, "folded BN dwconv error %.3g", e2);
        fprintf(stderr, "  fold_bn: conv err %.2e, dwconv err %.2e\n", e, e2);
    }
    /* invalid statistics are rejected */
    var[3] = -1.0f;
    RD_CHECK(rd_graph_fold_bn(g, y, gamma, beta, mean, var, 1e-5f, &err) == RD_ERR_FORMAT, "negative variance accepted");
    RD_CHECK(rd_graph_fold_bn(g, 0, gamma, beta, mean, var, 1e-5f, &err) != RD_OK, "BN folded into the input node");
    rd_graph_free(g);
    free(input), free(pw), free(w), free(b), free(gamma), free(beta), free(mean), free(var);
    free(lv0), free(lv1), free(ref), free(dw), free(lv2), free(ref2), free(tmp);
}

static void test_build_errors(void)
{
    rd_graph *g = rd_graph_new();
    rd_err err = {0};
    int x = rd_graph_input(g), bad;
    size_t sc;
    /* invalid parameters: -1, weights freed (ASan checks the leak) */
    bad = rd_graph_conv_take(g, "bad", x, 3, 3, 0, 1, 0, 0, 0, 0, 3, 4, malloc(16), NULL, RD_ACT_NONE);
    RD_CHECK(bad == -1, "stride 0 accepted");
    bad = rd_graph_conv_take(g, "bad", 5, 3, 3, 1, 1, 0, 0, 0, 0, 3, 4, malloc(16), malloc(16), RD_ACT_NONE);
    RD_CHECK(bad == -1, "unknown input accepted");
    bad = rd_graph_conv_take(g, "bad", x, 3, 3, 1, 1, 3, 0, 0, 0, 3, 4, malloc(16), NULL, RD_ACT_NONE);
    RD_CHECK(bad == -1, "padding ≥ kernel accepted");
    /* channel mismatch is found by the planner */
    x = rd_graph_conv_take(g, "c", x, 1, 1, 1, 1, 0, 0, 0, 0, 4, 2, calloc(8, 4), NULL, RD_ACT_NONE);
    RD_CHECK(x > 0 && rd_graph_set_levels(g, &x, 1, &err) == RD_OK, "build");
    RD_CHECK(rd_graph_plan(g, 8, &sc, &err) == RD_ERR_MISMATCH && err.msg[0], "cin mismatch not found");
    RD_CHECK(rd_graph_set_levels(g, &x, 0, &err) == RD_ERR_ARG, "0 levels accepted");
    rd_graph_free(g);
    /* kernel bigger than the input */
    g = rd_graph_new();
    x = rd_graph_input(g);
    x = rd_graph_conv_take(g, "big", x, 7, 7, 1, 1, 0, 0, 0, 0, 3, 2, calloc(7 * 7 * 3 * 2, 4), NULL, RD_ACT_NONE);
    RD_CHECK(rd_graph_set_levels(g, &x, 1, &err) == RD_OK, "levels");
    RD_CHECK(rd_graph_plan(g, 5, &sc, &err) == RD_ERR_ARG, "7x7 kernel on 5x5 input accepted");
    RD_CHECK(rd_graph_plan(g, 7, &sc, &err) == RD_OK, "7x7 kernel on 7x7 input: %s", err.msg);
    rd_graph_free(g);
}

int main(void)
{
    test_ops();
    test_add_chain();
    test_fold_bn();
    test_build_errors();
    return rd_test_done("test_conv");
}
