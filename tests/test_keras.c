/* test_keras.c — the Keras topology translator (core/backbone_keras.c) on a
 * small hand-made model, against a naive double-precision evaluation of the
 * same layers written here, and its errors on malformed or unsupported models.
 *
 * Model (input 9×9×3, so the explicit padding is asymmetric and odd):
 *   zp ZeroPadding2D [[1,2],[0,1]] → c1 Conv2D 3×3/2 valid, bias → bn1 → r1
 *   ReLU(6) → d1 DepthwiseConv2D 3×3 same → bn2 (center false) → r2 ReLU →
 *   p1 Conv2D 1×1 same, activation relu6 → a1 Add[r1, p1] → mp MaxPooling2D
 *   3×3/1 same → ap AveragePooling2D 2×2 valid → act Activation relu →
 *   ds Dense (unsupported, after the levels).
 * A second model (input 8×8×3) checks TF "same" padding at stride 2 and
 * Concatenate: c2 Conv2D 3×3/2 same → 4×4×4, m2 MaxPooling2D 3×3/2 same →
 * 4×4×3, cat Concatenate[c2, m2, c2] → 4×4×11; refused at an input of 9. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backbone.h"
#include "safetensors.h"
#include "testutil.h"

#define S 9
#define C 4

static float c1_k[3 * 3 * 3 * C], c1_b[C], bn1[4][C], d1_k[3 * 3 * C], bn2[3][C], p1_k[C * C];

static const char *const LAYERS[] = {
    "{'name':'in','class_name':'InputLayer','config':{'batch_input_shape':[null,null,null,3]},'inbound':[]}",
    "{'name':'zp','class_name':'ZeroPadding2D','config':{'padding':[[1,2],[0,1]]},'inbound':['in']}",
    "{'name':'c1','class_name':'Conv2D','config':{'filters':%FILTERS%,'kernel_size':[3,3],'strides':[2,2],"
    "'padding':'%PAD%','activation':'linear','use_bias':true},'inbound':['%C1IN%']}",
    "{'name':'bn1','class_name':'BatchNormalization','config':{'axis':-1,'epsilon':0.001},'inbound':['c1']}",
    "{'name':'r1','class_name':'ReLU','config':{'max_value':%MAX%},'inbound':['bn1']}",
    "{'name':'d1','class_name':'DepthwiseConv2D','config':{'kernel_size':3,'strides':1,'padding':'same',"
    "'use_bias':false,'depth_multiplier':1},'inbound':['r1']}",
    "{'name':'bn2','class_name':'BatchNormalization','config':{'epsilon':0.01,'center':false},'inbound':['d1']}",
    "{'name':'r2','class_name':'ReLU','config':{'max_value':null},'inbound':['bn2']}",
    "{'name':'p1','class_name':'Conv2D','config':{'filters':4,'kernel_size':[1,1],'padding':'same',"
    "'activation':'relu6','use_bias':false},'inbound':['r2']}",
    "{'name':'a1','class_name':'Add','config':{},'inbound':['r1','p1']}",
    "{'name':'mp','class_name':'MaxPooling2D','config':{'pool_size':[3,3],'strides':[1,1],'padding':'same'},"
    "'inbound':['a1']}",
    "{'name':'ap','class_name':'AveragePooling2D','config':{'pool_size':[2,2],'strides':null,'padding':'valid'},"
    "'inbound':['mp']}",
    "{'name':'act','class_name':'Activation','config':{'activation':'relu'},'inbound':['ap']}",
    "{'name':'ds','class_name':'Dense','config':{'units':3},'inbound':['act']}",
};

static void replace(char *s, size_t cap, const char *key, const char *val)
{
    char *p;
    while ((p = strstr(s, key))) {
        size_t kl = strlen(key), vl = strlen(val), rest = strlen(p + kl);
        if ((size_t)(p - s) + vl + rest + 1 > cap) return;
        memmove(p + vl, p + kl, rest + 1);
        memcpy(p, val, vl);
    }
}

/* The topology with some fields changed; ' → ". */
static char *topology(const char *filters, const char *pad, const char *max, const char *c1in)
{
    size_t cap = 8192;
    char *s = calloc(cap, 1);
    strcat(s, "[");
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++) {
        if (i) strcat(s, ",");
        strcat(s, LAYERS[i]);
    }
    strcat(s, "]");
    replace(s, cap, "%FILTERS%", filters);
    replace(s, cap, "%PAD%", pad);
    replace(s, cap, "%MAX%", max);
    replace(s, cap, "%C1IN%", c1in);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

static const char *const LAYERS2 =
    "[{'name':'in','class_name':'InputLayer','config':{},'inbound':[]},"
    "{'name':'c2','class_name':'Conv2D','config':{'filters':4,'kernel_size':3,'strides':2,'padding':'same',"
    "'use_bias':false},'inbound':['in']},"
    "{'name':'m2','class_name':'MaxPooling2D','config':{'pool_size':3,'strides':2,'padding':'same'},'inbound':['in']},"
    "{'name':'cat','class_name':'Concatenate','config':{'axis':-1},'inbound':['c2','m2','c2']}]";

/* Writes the model; drop = a tensor name to leave out, topo NULL = no topology. */
static void write_model(const char *path, const char *topo, const char *levels, const char *drop)
{
    rd_st_out_tensor t[] = {
        {"c1/kernel", 4, {3, 3, 3, C}, c1_k},      {"c1/bias", 1, {C}, c1_b},
        {"bn1/gamma", 1, {C}, bn1[0]},             {"bn1/beta", 1, {C}, bn1[1]},
        {"bn1/moving_mean", 1, {C}, bn1[2]},       {"bn1/moving_variance", 1, {C}, bn1[3]},
        {"d1/depthwise_kernel", 4, {3, 3, C, 1}, d1_k}, {"bn2/gamma", 1, {C}, bn2[0]},
        {"bn2/moving_mean", 1, {C}, bn2[1]},       {"bn2/moving_variance", 1, {C}, bn2[2]},
        {"p1/kernel", 4, {1, 1, C, C}, p1_k},
    };
    rd_st_out_tensor keep[sizeof t / sizeof t[0]];
    size_t n = 0;
    const char *meta[] = {"resadd.arch", "keras", "resadd.name", "tiny", "resadd.levels", levels,
                          "resadd.topology", topo, NULL};
    rd_err err = {0};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!drop || strcmp(drop, t[i].name) != 0) keep[n++] = t[i];
    if (!topo) meta[6] = NULL;
    if (rd_st_write(path, keep, n, meta, &err) != RD_OK) {
        fprintf(stderr, "write %s: %s\n", path, err.msg);
        exit(1);
    }
}

/* ---- naive reference (HWC, double) ---- */

typedef struct map {
    int h, w, c;
    double *x;
} map;

static map mk(int h, int w, int c)
{
    map m = {h, w, c, calloc((size_t)h * w * c, sizeof(double))};
    return m;
}
#define AT(m, y, x_, ch) (m).x[((size_t)(y) * (m).w + (x_)) * (m).c + (ch)]

/* conv (dw = depthwise) with explicit padding t, b, l, r and stride s. */
static map conv(map in, const float *k, const float *bias, int kh, int kw, int s, int co, int dw, int t, int b, int l,
                int r)
{
    map o = mk((in.h + t + b - kh) / s + 1, (in.w + l + r - kw) / s + 1, dw ? in.c : co);
    for (int y = 0; y < o.h; y++)
        for (int x = 0; x < o.w; x++)
            for (int oc = 0; oc < o.c; oc++) {
                double acc = bias ? bias[oc] : 0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++) {
                        int iy = y * s + i - t, ix = x * s + j - l;
                        if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
                        if (dw)
                            acc += AT(in, iy, ix, oc) * k[(i * kw + j) * in.c + oc];
                        else
                            for (int ic = 0; ic < in.c; ic++)
                                acc += AT(in, iy, ix, ic) * k[((i * kw + j) * in.c + ic) * co + oc];
                    }
                AT(o, y, x, oc) = acc;
            }
    return o;
}

static void bn(map m, const float *g, const float *be, const float *mu, const float *var, double eps)
{
    for (size_t i = 0; i < (size_t)m.h * m.w * m.c; i++) {
        int ch = (int)(i % (size_t)m.c);
        m.x[i] = (m.x[i] - mu[ch]) / sqrt(var[ch] + eps) * (g ? g[ch] : 1) + (be ? be[ch] : 0);
    }
}

static void relu(map m, double mx)
{
    for (size_t i = 0; i < (size_t)m.h * m.w * m.c; i++) m.x[i] = fmin(fmax(m.x[i], 0), mx);
}

/* Pool with padding p before and q after (each dimension). */
static map pool2(map in, int k, int s, int p, int q, int is_max)
{
    map o = mk((in.h + p + q - k) / s + 1, (in.w + p + q - k) / s + 1, in.c);
    for (int y = 0; y < o.h; y++)
        for (int x = 0; x < o.w; x++)
            for (int ch = 0; ch < in.c; ch++) {
                double acc = is_max ? -INFINITY : 0;
                int n = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int iy = y * s + i - p, ix = x * s + j - p;
                        if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
                        acc = is_max ? fmax(acc, AT(in, iy, ix, ch)) : acc + AT(in, iy, ix, ch);
                        n++;
                    }
                AT(o, y, x, ch) = is_max ? acc : acc / n;
            }
    return o;
}

static map pool(map in, int k, int s, int p, int is_max) { return pool2(in, k, s, p, p, is_max); }

/* Runs the backbone on input and checks level outputs against refs. */
static void run_check_at(const char *path, const char *levels, int s, const float *input, const map *refs, int nref)
{
    rd_err err = {0};
    rd_backbone *bb = rd_backbone_load(path, levels, &err);
    rd_arena a = {0};
    rd_tensor lv[RD_MAX_LEVELS] = {{0}};
    size_t scratch;
    RD_CHECK(bb != NULL, "load %s: %s", levels ? levels : "(default)", err.msg);
    if (!bb) return;
    RD_CHECK(strcmp(bb->arch, "tiny") == 0, "arch %s", bb->arch);
    RD_CHECK(bb->graph->nlevels == nref, "%d levels", bb->graph->nlevels);
    if (rd_graph_plan(bb->graph, s, &scratch, &err) != RD_OK || rd_arena_init(&a, scratch, &err) != RD_OK) {
        RD_CHECK(0, "plan: %s", err.msg);
        goto out;
    }
    for (int l = 0; l < nref; l++) {
        rd_graph_level_shape(bb->graph, l, &lv[l].h, &lv[l].w, &lv[l].c);
        RD_CHECK(lv[l].h == refs[l].h && lv[l].w == refs[l].w && lv[l].c == refs[l].c, "level %d: %dx%dx%d vs %dx%dx%d",
                 l, lv[l].h, lv[l].w, lv[l].c, refs[l].h, refs[l].w, refs[l].c);
        if (lv[l].h != refs[l].h || lv[l].w != refs[l].w || lv[l].c != refs[l].c) goto out;
        lv[l].data = malloc(rd_tensor_numel(&lv[l]) * sizeof(float));
    }
    RD_CHECK(rd_graph_forward(bb->graph, input, &a, lv, &err) == RD_OK, "forward: %s", err.msg);
    for (int l = 0; l < nref; l++) {
        size_t n = rd_tensor_numel(&lv[l]);
        float *rf = malloc(n * sizeof *rf);
        for (size_t i = 0; i < n; i++) rf[i] = (float)refs[l].x[i];
        double e = rd_rel_err(lv[l].data, rf, n);
        printf("levels %-12s level %d (%s) %dx%dx%d rel err %.2e\n", levels ? levels : "(default)", l,
               bb->level_names[l], lv[l].h, lv[l].w, lv[l].c, e);
        RD_CHECK(e < 1e-5, "level %d rel err %g", l, e);
        free(rf);
    }
out:
    for (int l = 0; l < RD_MAX_LEVELS; l++) free(lv[l].data);
    rd_arena_release(&a);
    rd_backbone_free(bb);
}

static void run_check(const char *path, const char *levels, const float *input, const map *refs, int nref)
{
    run_check_at(path, levels, S, input, refs, nref);
}

/* "same" at stride 2 and a three-way Concatenate against the naive layers. */
static void check_same_concat(const char *path)
{
    float input[8 * 8 * 3];
    char *topo = strdup(LAYERS2);
    rd_err err = {0};
    map x = mk(8, 8, 3), c2, m2, cat;
    rd_backbone *bb;
    rd_st_out_tensor t[] = {{"c2/kernel", 4, {3, 3, 3, C}, c1_k}};
    const char *meta[] = {"resadd.arch", "keras", "resadd.name", "tiny", "resadd.levels", "cat", "resadd.topology", topo,
                          NULL};
    size_t scratch;

    for (char *p = topo; *p; p++)
        if (*p == '\'') *p = '"';
    RD_CHECK(rd_st_write(path, t, 1, meta, &err) == RD_OK, "write: %s", err.msg);
    rd_fill_uniform(input, sizeof input / 4, 13, -1.0f, 1.0f);
    for (int i = 0; i < 8 * 8 * 3; i++) x.x[i] = input[i];
    c2 = conv(x, c1_k, NULL, 3, 3, 2, C, 0, 0, 1, 0, 1); /* TF: max(k - s, 0) = 1, all of it after */
    m2 = pool2(x, 3, 2, 0, 1, 1);
    cat = mk(4, 4, 2 * C + 3);
    for (int p = 0; p < 16; p++) {
        memcpy(&cat.x[p * cat.c], &c2.x[p * C], C * sizeof(double));
        memcpy(&cat.x[p * cat.c + C], &m2.x[p * 3], 3 * sizeof(double));
        memcpy(&cat.x[p * cat.c + C + 3], &c2.x[p * C], C * sizeof(double));
    }
    run_check_at(path, NULL, 8, input, &cat, 1);
    bb = rd_backbone_load(path, NULL, &err);
    RD_CHECK(bb != NULL, "load: %s", err.msg);
    if (bb) {
        rd_status st = rd_graph_plan(bb->graph, 9, &scratch, &err);
        RD_CHECK(st == RD_ERR_ARG && strstr(err.msg, "multiple of 2"), "plan at 9: %s (%s)", rd_status_str(st), err.msg);
        printf("error as expected: %s\n", err.msg);
    }
    rd_backbone_free(bb);
    free(x.x);
    free(c2.x);
    free(m2.x);
    free(cat.x);
    free(topo);
}

static void expect_error(const char *path, const char *levels, rd_status want, const char *needle)
{
    rd_err err = {0};
    rd_backbone *bb = rd_backbone_load(path, levels, &err);
    RD_CHECK(!bb, "%s loaded", needle);
    rd_backbone_free(bb);
    RD_CHECK(err.code == want, "want %s, got %s: %s", rd_status_str(want), rd_status_str(err.code), err.msg);
    RD_CHECK(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle);
    printf("error as expected: %s\n", err.msg);
}

int main(void)
{
    const char *dir = rd_test_tmpdir("keras");
    char path[512];
    float input[S * S * 3];
    char *topo;
    map x, r1, bn1m, a1, mp, ap;

    if (!dir) {
        perror("test_keras: temp dir");
        return 1;
    }
    rd_fill_uniform(c1_k, sizeof c1_k / 4, 1, -0.5f, 0.5f);
    rd_fill_uniform(c1_b, C, 2, -0.5f, 0.5f);
    rd_fill_uniform(bn1[0], C, 3, 0.5f, 2.0f);
    rd_fill_uniform(bn1[1], C, 4, -1.0f, 1.0f);
    rd_fill_uniform(bn1[2], C, 5, -0.5f, 0.5f);
    rd_fill_uniform(bn1[3], C, 6, 0.05f, 2.0f);
    rd_fill_uniform(d1_k, sizeof d1_k / 4, 7, -1.0f, 1.0f);
    rd_fill_uniform(bn2[0], C, 8, 0.5f, 2.0f);
    rd_fill_uniform(bn2[1], C, 9, -0.5f, 0.5f);
    rd_fill_uniform(bn2[2], C, 10, 0.05f, 2.0f);
    rd_fill_uniform(p1_k, sizeof p1_k / 4, 11, -1.0f, 1.0f);
    rd_fill_uniform(input, sizeof input / 4, 12, -1.0f, 1.0f);

    /* reference */
    x = mk(S, S, 3);
    for (int i = 0; i < S * S * 3; i++) x.x[i] = input[i];
    bn1m = conv(x, c1_k, c1_b, 3, 3, 2, C, 0, 1, 2, 0, 1);
    bn(bn1m, bn1[0], bn1[1], bn1[2], bn1[3], 1e-3);
    r1 = mk(bn1m.h, bn1m.w, C);
    memcpy(r1.x, bn1m.x, (size_t)r1.h * r1.w * C * sizeof(double));
    relu(r1, 6);
    {
        map d1 = conv(r1, d1_k, NULL, 3, 3, 1, C, 1, 1, 1, 1, 1), p1;
        bn(d1, bn2[0], NULL, bn2[1], bn2[2], 0.01);
        relu(d1, INFINITY);
        p1 = conv(d1, p1_k, NULL, 1, 1, 1, C, 0, 0, 0, 0, 0);
        relu(p1, 6);
        a1 = mk(r1.h, r1.w, C);
        for (int i = 0; i < r1.h * r1.w * C; i++) a1.x[i] = r1.x[i] + p1.x[i];
        free(d1.x);
        free(p1.x);
    }
    mp = pool(a1, 3, 1, 1, 1);
    ap = pool(mp, 2, 2, 0, 0);
    relu(ap, INFINITY); /* Activation relu */

    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    topo = topology("4", "valid", "6", "zp");
    write_model(path, topo, "a1", NULL);
    {
        map refs1[] = {a1};
        map refs2[] = {bn1m, a1, mp, ap};
        run_check(path, NULL, input, refs1, 1);
        /* bn1 as a level: its ReLU cannot be fused and runs as its own node */
        run_check(path, "bn1, a1,mp,act", input, refs2, 4);
    }
    expect_error(path, "ds", RD_ERR_UNSUPPORTED, "Dense");
    expect_error(path, "nope", RD_ERR_ARG, "nope");
    expect_error(path, "zp", RD_ERR_ARG, "ZeroPadding2D");
    expect_error(path, "a1,a1", RD_ERR_ARG, "twice");
    free(topo);

    topo = topology("4", "same", "6", "zp"); /* stride-2 "same" after a ZeroPadding2D */
    write_model(path, topo, "a1", NULL);
    expect_error(path, NULL, RD_ERR_UNSUPPORTED, "same");
    free(topo);
    check_same_concat(path);
    topo = topology("5", "valid", "6", "zp"); /* kernel has 4 filters */
    write_model(path, topo, "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "c1/kernel");
    free(topo);
    topo = topology("4", "valid", "4", "zp");
    write_model(path, topo, "a1", NULL);
    expect_error(path, NULL, RD_ERR_UNSUPPORTED, "max_value");
    free(topo);
    topo = topology("4", "valid", "6", "a1"); /* input from a later layer */
    write_model(path, topo, "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "earlier layer");
    free(topo);
    topo = topology("4", "valid", "6", "zp");
    write_model(path, topo, "a1", "bn1/gamma");
    expect_error(path, NULL, RD_ERR_FORMAT, "bn1/gamma");
    write_model(path, NULL, "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "resadd.topology");
    topo[strlen(topo) / 2] = '\0'; /* truncated JSON */
    write_model(path, topo, "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "JSON");
    write_model(path, "[{\"name\":1}]", "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "topology");
    write_model(path, "{}", "a1", NULL);
    expect_error(path, NULL, RD_ERR_FORMAT, "array");
    free(topo);

    remove(path);
    remove(dir);
    free(x.x);
    free(bn1m.x);
    free(r1.x);
    free(a1.x);
    free(mp.x);
    free(ap.x);
    return rd_test_done("test_keras");
}
