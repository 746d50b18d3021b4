/* backbone_keras.c — builds the graph of a Keras functional model (the
 * embedded MobileNetV2) from the layer list in metadata "resadd.topology",
 * as written by tools/nsfwjs-convert.mjs.
 *
 * The topology is a JSON array of {name, class_name, config, inbound: [layer
 * names]} in topological order; weights are the tensors "<layer>/<weight>"
 * (Keras names and shapes: Conv2D kernel [kh,kw,cin,cout] = our HWIO,
 * DepthwiseConv2D depthwise_kernel [kh,kw,C,1], BatchNormalization gamma, beta,
 * moving_mean, moving_variance [C]).  Layers are walked in order up to the
 * deepest requested level and translated:
 *   InputLayer          the graph input (channels last, 3 channels)
 *   ZeroPadding2D       not a node: added to the padding of the conv reading it
 *   Conv2D, DepthwiseConv2D
 *                       "valid" or "same".  TF's "same" pads k−1 in total at
 *                       stride 1 (top/left (k−1)/2, the rest bottom/right); at
 *                       a stride s over 1 it pads max(k−s, 0) when the input is
 *                       a multiple of s and differently otherwise, so such a
 *                       node requires its input to be a multiple of s
 *                       (rd_graph_set_div; checked by rd_graph_plan — a
 *                       working grid on the backbone's stride always is).  An
 *                       `activation` of relu/relu6 is fused.
 *   BatchNormalization  folded into the conv before it (rd_graph_fold_bn, eps
 *                       from the config)
 *   ReLU, Activation    relu (ReLU max_value 6: relu6) fused into the node
 *   Add                 a sum node (n inputs: a chain)
 *   MaxPooling2D, AveragePooling2D   (padding as for convs)
 *   Concatenate         on the channel axis: a chain of two-input concat nodes
 * A fold or fusion needs the producing layer to have no other reader and not
 * to be a requested level; otherwise the BatchNorm/activation becomes a 1×1
 * depthwise identity node of its own, so every layer's output stays exact.
 * Any other layer class before the last level is RD_ERR_UNSUPPORTED.
 *
 * Default levels (metadata "resadd.levels", written by the converter):
 * block_2_add (stride 4, 24 ch), block_5_add (stride 8, 32 ch), block_9_add
 * (stride 16, 64 ch): the last residual block at each resolution the frozen
 * part reaches.  At 224 the forward to them is 0.152 GMAC (block_2_add alone
 * 0.076, block_5_add 0.113), about 7 ms on 2 cores; block_10_project_BN
 * would add 8% MACs for 96 instead of 64 channels (and no residual), making
 * every later per-pixel stage of the pipeline wider. */
#include "backbone.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#define KERAS_MAX_LAYERS 4096
#define KERAS_MAX_INBOUND 16
#define KERAS_MAX_CHANNELS 65536
#define KERAS_MAX_KERNEL 64

typedef enum kclass {
    K_INPUT, K_PAD, K_CONV, K_DWCONV, K_BN, K_RELU, K_ACTIVATION, K_ADD, K_MAXPOOL, K_AVGPOOL, K_CONCAT, K_OTHER
} kclass;

static const struct {
    const char *name;
    kclass k;
} classes[] = {
    {"InputLayer", K_INPUT},  {"ZeroPadding2D", K_PAD}, {"Conv2D", K_CONV},
    {"DepthwiseConv2D", K_DWCONV}, {"BatchNormalization", K_BN}, {"ReLU", K_RELU},
    {"Activation", K_ACTIVATION}, {"Add", K_ADD}, {"MaxPooling2D", K_MAXPOOL},
    {"AveragePooling2D", K_AVGPOOL}, {"Concatenate", K_CONCAT},
};

typedef struct klayer {
    const char *name, *cls; /* point into the parsed JSON */
    kclass k;
    json_t *config;
    int in[KERAS_MAX_INBOUND], nin;
    int consumers; /* layers listing this one as input */
    int level;     /* 1 if a requested level */
    int node;      /* graph node holding this layer's output; -1 none */
    int live;      /* 1 while node computes exactly this layer's output */
    int c;         /* output channels */
    int pad[4];    /* ZeroPadding2D: top, bottom, left, right */
} klayer;

typedef struct kbuild {
    rd_graph *g;
    const rd_st_file *f;
    rd_err *err;
    klayer *L;
    int n;
} kbuild;

/* ---- JSON helpers (0 = ok) ---- */

static int j_int(const json_t *v, int lo, int hi, int *out)
{
    json_int_t x;
    if (json_is_real(v)) { /* Keras writes some integers as 6.0 */
        double d = json_real_value(v);
        if (d != floor(d) || d < lo || d > hi) return -1;
        *out = (int)d;
        return 0;
    }
    if (!json_is_integer(v)) return -1;
    x = json_integer_value(v);
    if (x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}

/* An int or a list of two ints ("kernel_size": 3 or [3, 3]). */
static int j_pair(const json_t *v, int lo, int hi, int out[2])
{
    if (json_is_array(v)) {
        if (json_array_size(v) != 2) return -1;
        return j_int(json_array_get(v, 0), lo, hi, &out[0]) || j_int(json_array_get(v, 1), lo, hi, &out[1]);
    }
    if (j_int(v, lo, hi, &out[0])) return -1;
    out[1] = out[0];
    return 0;
}

static const char *j_str(const json_t *cfg, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return dflt;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int j_bool(const json_t *cfg, const char *key, int dflt)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return dflt;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

static rd_status bad(kbuild *b, int i, const char *what)
{
    return rd_err_set(b->err, RD_ERR_FORMAT, "topology: layer \"%.64s\" (%.32s): %s", b->L[i].name, b->L[i].cls, what);
}

static rd_status unsupported(kbuild *b, int i, const char *what)
{
    return rd_err_set(b->err, RD_ERR_UNSUPPORTED, "topology: layer \"%.64s\" (%.32s): %s", b->L[i].name, b->L[i].cls,
                      what);
}

static rd_status nomem(kbuild *b, int i)
{
    return rd_err_set(b->err, RD_ERR_NOMEM, "out of memory building layer \"%.64s\"", b->L[i].name);
}

/* data_format must be channels_last (the only layout we run). */
static rd_status check_format(kbuild *b, int i)
{
    const char *df = j_str(b->L[i].config, "data_format", "channels_last");
    if (!df) return bad(b, i, "data_format is not a string");
    if (strcmp(df, "channels_last") != 0) return unsupported(b, i, "data_format is not channels_last");
    return RD_OK;
}

/* Whether layer i may read layer src: a node, holding src's output. */
static rd_status readable(kbuild *b, int i, int src)
{
    if (b->L[src].k == K_PAD) return unsupported(b, i, "reads a ZeroPadding2D (only a convolution can)");
    if (b->L[src].node < 0 || !b->L[src].live)
        return rd_err_set(b->err, RD_ERR_INTERNAL, "topology: layer \"%.64s\": input \"%.64s\" is not available",
                          b->L[i].name, b->L[src].name);
    return RD_OK;
}

/* The single input of layer i, which must be available as a node. */
static rd_status single_input(kbuild *b, int i, int *src)
{
    *src = b->L[i].in[0];
    if (b->L[i].nin != 1) return bad(b, i, "expects exactly one input");
    return readable(b, i, *src);
}

/* Whether an op may be fused onto src's node (changing it in place). */
static int can_fuse(const kbuild *b, int src)
{
    const klayer *s = &b->L[src];
    return s->consumers == 1 && !s->level && s->k != K_INPUT && s->k != K_CONCAT &&
           b->g->nodes[s->node].act == RD_ACT_NONE;
}

/* Loads "<layer>/<wname>" as floats after checking its shape. */
static rd_status load_w(kbuild *b, int i, const char *wname, int ndim, const int64_t *shape, float **out)
{
    char name[160];
    rd_err e = {0};
    const rd_st_tensor *t;
    float *w;
    *out = NULL;
    if ((size_t)snprintf(name, sizeof name, "%s/%s", b->L[i].name, wname) >= sizeof name)
        return bad(b, i, "name too long");
    if (!(t = rd_st_expect(b->f, name, ndim, shape, &e))) {
        if (b->err) *b->err = e;
        return e.code;
    }
    if (!(w = malloc((t->numel ? t->numel : 1) * sizeof *w))) return nomem(b, i);
    if (rd_st_to_f32(t, w, &e) != RD_OK) {
        free(w);
        if (b->err) *b->err = e;
        return e.code;
    }
    for (size_t k = 0; k < t->numel; k++)
        if (!isfinite(w[k])) {
            free(w);
            return rd_err_set(b->err, RD_ERR_FORMAT, "tensor \"%.100s\" holds a non-finite value", name);
        }
    *out = w;
    return RD_OK;
}

/* A 1×1 depthwise identity on src's node (for a BatchNorm or activation that
 * cannot be fused); returns the node or -1. */
static int identity_node(kbuild *b, int i, int src, rd_act act)
{
    int c = b->L[src].c;
    float *w = malloc((size_t)c * sizeof *w);
    if (!w) return -1;
    for (int k = 0; k < c; k++) w[k] = 1.0f;
    return rd_graph_dwconv_take(b->g, b->L[i].name, b->L[src].node, 1, 1, 1, 1, 0, 0, 0, 0, c, w, NULL, act);
}

/* "same" padding of one dimension (TF rule): total k−1 at stride 1, none for a
 * 1-wide kernel, max(k−s, 0) at stride s for an input that is a multiple of s
 * (the caller then requires that: *div = s). */
static void same_pad(int k, int s, int *lo, int *hi, int *div)
{
    int total;
    if (s == 1)
        total = k - 1;
    else if (k == 1)
        total = 0;
    else {
        total = k > s ? k - s : 0;
        if (s > *div) *div = s;
    }
    *lo = total / 2;
    *hi = total - *lo;
}

static rd_status parse_act(kbuild *b, int i, const char *a, rd_act *act)
{
    if (!a) return bad(b, i, "activation is not a string");
    if (strcmp(a, "linear") == 0)
        *act = RD_ACT_NONE;
    else if (strcmp(a, "relu") == 0)
        *act = RD_ACT_RELU;
    else if (strcmp(a, "relu6") == 0)
        *act = RD_ACT_RELU6;
    else
        return rd_err_set(b->err, RD_ERR_UNSUPPORTED, "topology: layer \"%.64s\": activation \"%.32s\" is not supported",
                          b->L[i].name, a);
    return RD_OK;
}

/* Window (kernel or pool) geometry shared by convs and pools: kernel, strides,
 * padding mode plus any ZeroPadding2D folded in front. */
static rd_status window(kbuild *b, int i, const char *ksize_key, int *src, int k[2], int s[2], int pad[4], int *div)
{
    const json_t *cfg = b->L[i].config, *sv;
    const char *mode;
    int zp[4] = {0, 0, 0, 0}, d[2] = {1, 1};
    rd_status st;

    if ((st = check_format(b, i)) != RD_OK) return st;
    if (b->L[i].nin != 1) return bad(b, i, "expects exactly one input");
    *src = b->L[i].in[0];
    if (b->L[*src].k == K_PAD) {
        if (b->L[i].k != K_CONV && b->L[i].k != K_DWCONV)
            return unsupported(b, i, "reads a ZeroPadding2D (only a convolution can)");
        memcpy(zp, b->L[*src].pad, sizeof zp);
        *src = b->L[*src].in[0];
        if (b->L[*src].k == K_PAD) return unsupported(b, i, "two ZeroPadding2D layers in a row");
    }
    if ((st = readable(b, i, *src)) != RD_OK) return st;
    if (j_pair(json_object_get(cfg, ksize_key), 1, KERAS_MAX_KERNEL, k)) return bad(b, i, "bad kernel/pool size");
    sv = json_object_get(cfg, "strides");
    if (!sv || json_is_null(sv)) {
        if (b->L[i].k == K_MAXPOOL || b->L[i].k == K_AVGPOOL)
            s[0] = k[0], s[1] = k[1];
        else
            s[0] = s[1] = 1;
    } else if (j_pair(sv, 1, KERAS_MAX_KERNEL, s)) {
        return bad(b, i, "bad strides");
    }
    sv = json_object_get(cfg, "dilation_rate");
    if (sv && !json_is_null(sv) && j_pair(sv, 1, KERAS_MAX_KERNEL, d)) return bad(b, i, "bad dilation_rate");
    if (d[0] != 1 || d[1] != 1) return unsupported(b, i, "dilated convolution");
    mode = j_str(cfg, "padding", "valid");
    if (!mode) return bad(b, i, "padding is not a string");
    if (strcmp(mode, "valid") == 0) {
        memset(pad, 0, 4 * sizeof *pad);
    } else if (strcmp(mode, "same") == 0) {
        if (s[0] != s[1] && k[0] > 1 && k[1] > 1 && s[0] > 1 && s[1] > 1)
            return unsupported(b, i, "\"same\" padding with two different strides over 1");
        same_pad(k[0], s[0], &pad[0], &pad[1], div);
        same_pad(k[1], s[1], &pad[2], &pad[3], div);
        if (*div && (zp[0] || zp[1] || zp[2] || zp[3]))
            return unsupported(b, i, "ZeroPadding2D before \"same\" padding with a stride over 1");
    } else {
        return unsupported(b, i, "padding is neither \"valid\" nor \"same\"");
    }
    for (int q = 0; q < 4; q++) {
        pad[q] += zp[q];
        if (pad[q] >= k[q < 2 ? 0 : 1]) return unsupported(b, i, "padding not smaller than the kernel");
    }
    return RD_OK;
}

static rd_status build_conv(kbuild *b, int i)
{
    const json_t *cfg = b->L[i].config;
    const int dw = b->L[i].k == K_DWCONV;
    int src, k[2], s[2], pad[4], cin, cout, use_bias, node, div = 0;
    float *w = NULL, *bias = NULL;
    rd_act act;
    rd_status st;

    if ((st = window(b, i, "kernel_size", &src, k, s, pad, &div)) != RD_OK) return st;
    cin = b->L[src].c;
    if (dw) {
        int mult = 1;
        const json_t *m = json_object_get(cfg, "depth_multiplier");
        if (m && j_int(m, 1, KERAS_MAX_CHANNELS, &mult)) return bad(b, i, "bad depth_multiplier");
        if (mult != 1) return unsupported(b, i, "depth_multiplier is not 1");
        cout = cin;
    } else if (j_int(json_object_get(cfg, "filters"), 1, KERAS_MAX_CHANNELS, &cout)) {
        return bad(b, i, "bad filters");
    }
    if ((use_bias = j_bool(cfg, "use_bias", 1)) < 0) return bad(b, i, "use_bias is not a boolean");
    if ((st = parse_act(b, i, j_str(cfg, "activation", "linear"), &act)) != RD_OK) return st;
    {
        const int64_t shape[4] = {k[0], k[1], cin, dw ? 1 : cout}, bshape[1] = {cout};
        if ((st = load_w(b, i, dw ? "depthwise_kernel" : "kernel", 4, shape, &w)) != RD_OK) return st;
        if (use_bias && (st = load_w(b, i, "bias", 1, bshape, &bias)) != RD_OK) {
            free(w);
            return st;
        }
    }
    /* pad[] is top, bottom, left, right; the graph takes t, l, b, r. */
    if (dw)
        node = rd_graph_dwconv_take(b->g, b->L[i].name, b->L[src].node, k[0], k[1], s[0], s[1], pad[0], pad[2], pad[1],
                                    pad[3], cin, w, bias, act);
    else
        node = rd_graph_conv_take(b->g, b->L[i].name, b->L[src].node, k[0], k[1], s[0], s[1], pad[0], pad[2], pad[1],
                                  pad[3], cin, cout, w, bias, act);
    if (node < 0) return nomem(b, i);
    rd_graph_set_div(b->g, node, div);
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = cout;
    return RD_OK;
}

static rd_status build_pool(kbuild *b, int i)
{
    int src, k[2], s[2], pad[4], node, div = 0;
    rd_status st;
    if ((st = window(b, i, "pool_size", &src, k, s, pad, &div)) != RD_OK) return st;
    node = rd_graph_pool(b->g, b->L[i].name, b->L[i].k == K_MAXPOOL ? RD_OP_MAXPOOL : RD_OP_AVGPOOL, b->L[src].node,
                         k[0], k[1], s[0], s[1], pad[0], pad[2], pad[1], pad[3]);
    if (node < 0) return nomem(b, i);
    rd_graph_set_div(b->g, node, div);
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = b->L[src].c;
    return RD_OK;
}

static rd_status build_bn(kbuild *b, int i)
{
    const json_t *cfg = b->L[i].config, *ax = json_object_get(cfg, "axis"), *ev = json_object_get(cfg, "epsilon");
    float *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL;
    int src, c, center, scale, axis = -1, node;
    double eps = 1e-3;
    rd_status st;

    if ((st = single_input(b, i, &src)) != RD_OK) return st;
    c = b->L[src].c;
    if (json_is_array(ax) && json_array_size(ax) == 1) ax = json_array_get(ax, 0);
    if (ax && j_int(ax, -1, 3, &axis)) return bad(b, i, "bad axis");
    if (axis != -1 && axis != 3) return unsupported(b, i, "normalizes an axis other than the channels");
    if (ev) {
        if (!json_is_number(ev)) return bad(b, i, "epsilon is not a number");
        eps = json_number_value(ev);
        if (!(eps >= 0 && eps < 1)) return bad(b, i, "epsilon outside [0, 1)");
    }
    if ((center = j_bool(cfg, "center", 1)) < 0 || (scale = j_bool(cfg, "scale", 1)) < 0)
        return bad(b, i, "center/scale is not a boolean");
    {
        const int64_t shape[1] = {c};
        if ((st = load_w(b, i, "moving_mean", 1, shape, &mean)) != RD_OK ||
            (st = load_w(b, i, "moving_variance", 1, shape, &var)) != RD_OK ||
            (scale && (st = load_w(b, i, "gamma", 1, shape, &gamma)) != RD_OK) ||
            (center && (st = load_w(b, i, "beta", 1, shape, &beta)) != RD_OK))
            goto out;
    }
    if ((!gamma && !(gamma = malloc((size_t)c * sizeof *gamma))) || (!beta && !(beta = calloc((size_t)c, sizeof *beta)))) {
        st = nomem(b, i);
        goto out;
    }
    if (!scale)
        for (int k = 0; k < c; k++) gamma[k] = 1.0f;
    {
        const rd_op op = b->g->nodes[b->L[src].node].op;
        if (can_fuse(b, src) && (op == RD_OP_CONV || op == RD_OP_DWCONV)) {
            node = b->L[src].node;
            b->L[src].live = 0;
        } else if ((node = identity_node(b, i, src, RD_ACT_NONE)) < 0) {
            st = nomem(b, i);
            goto out;
        }
    }
    if ((st = rd_graph_fold_bn(b->g, node, gamma, beta, mean, var, (float)eps, b->err)) != RD_OK) goto out;
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = c;
out:
    free(gamma);
    free(beta);
    free(mean);
    free(var);
    return st;
}

static rd_status build_act(kbuild *b, int i)
{
    const json_t *cfg = b->L[i].config;
    rd_act act;
    int src, node;
    rd_status st;

    if ((st = single_input(b, i, &src)) != RD_OK) return st;
    if (b->L[i].k == K_RELU) {
        const json_t *mv = json_object_get(cfg, "max_value"), *ns = json_object_get(cfg, "negative_slope"),
                     *th = json_object_get(cfg, "threshold");
        if ((ns && !json_is_null(ns) && (!json_is_number(ns) || json_number_value(ns) != 0)) ||
            (th && !json_is_null(th) && (!json_is_number(th) || json_number_value(th) != 0)))
            return unsupported(b, i, "leaky or thresholded ReLU");
        if (!mv || json_is_null(mv))
            act = RD_ACT_RELU;
        else if (json_is_number(mv) && json_number_value(mv) == 6)
            act = RD_ACT_RELU6;
        else
            return unsupported(b, i, "max_value other than 6");
    } else if ((st = parse_act(b, i, j_str(cfg, "activation", NULL), &act)) != RD_OK) {
        return st;
    }
    if (act != RD_ACT_NONE && can_fuse(b, src)) {
        node = b->L[src].node;
        rd_graph_set_act(b->g, node, act);
        b->L[src].live = 0;
    } else if ((node = identity_node(b, i, src, act)) < 0) {
        return nomem(b, i);
    }
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = b->L[src].c;
    return RD_OK;
}

static rd_status build_add(kbuild *b, int i)
{
    const klayer *l = &b->L[i];
    int node = -1;
    if (l->nin < 2) return bad(b, i, "adds fewer than two inputs");
    for (int q = 0; q < l->nin; q++) {
        const klayer *s = &b->L[l->in[q]];
        rd_status st = readable(b, i, l->in[q]);
        if (st != RD_OK) return st;
        if (s->c != b->L[l->in[0]].c) {
            return rd_err_set(b->err, RD_ERR_FORMAT, "topology: layer \"%.64s\" adds %d channels to %d", l->name, s->c,
                              b->L[l->in[0]].c);
        }
        if (q == 0) continue;
        node = rd_graph_add(b->g, l->name, q == 1 ? b->L[l->in[0]].node : node, s->node, RD_ACT_NONE);
        if (node < 0) return nomem(b, i);
    }
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = b->L[l->in[0]].c;
    return RD_OK;
}

/* Concatenate on the channel axis (-1 or 3): a chain of two-input nodes. */
static rd_status build_concat(kbuild *b, int i)
{
    const klayer *l = &b->L[i];
    const json_t *ax = json_object_get(l->config, "axis");
    int node = -1, axis = -1, c = 0;
    if (l->nin < 2) return bad(b, i, "concatenates fewer than two inputs");
    if (ax && !json_is_null(ax) && j_int(ax, -1, 3, &axis)) return bad(b, i, "bad axis");
    if (axis != -1 && axis != 3) return unsupported(b, i, "concatenates an axis other than the channels");
    for (int q = 0; q < l->nin; q++) {
        const klayer *s = &b->L[l->in[q]];
        rd_status st = readable(b, i, l->in[q]);
        if (st != RD_OK) return st;
        if (s->c > KERAS_MAX_CHANNELS - c) return bad(b, i, "too many channels");
        c += s->c;
        if (q == 0) continue;
        node = rd_graph_concat(b->g, l->name, q == 1 ? b->L[l->in[0]].node : node, s->node);
        if (node < 0) return nomem(b, i);
    }
    b->L[i].node = node;
    b->L[i].live = 1;
    b->L[i].c = c;
    return RD_OK;
}

static rd_status build_pad(kbuild *b, int i)
{
    const json_t *p = json_object_get(b->L[i].config, "padding");
    klayer *l = &b->L[i];
    rd_status st;
    if ((st = check_format(b, i)) != RD_OK) return st;
    if (l->nin != 1) return bad(b, i, "expects exactly one input");
    if (json_is_array(p) && json_array_size(p) == 2 && json_is_array(json_array_get(p, 0))) {
        int h[2], w[2];
        const json_t *ph = json_array_get(p, 0), *pw = json_array_get(p, 1);
        if (!json_is_array(ph) || json_array_size(ph) != 2 || !json_is_array(pw) || json_array_size(pw) != 2 ||
            j_pair(ph, 0, KERAS_MAX_KERNEL, h) || j_pair(pw, 0, KERAS_MAX_KERNEL, w))
            return bad(b, i, "bad padding");
        l->pad[0] = h[0], l->pad[1] = h[1], l->pad[2] = w[0], l->pad[3] = w[1];
    } else {
        int hw[2];
        if (j_pair(p, 0, KERAS_MAX_KERNEL, hw)) return bad(b, i, "bad padding");
        l->pad[0] = l->pad[1] = hw[0];
        l->pad[2] = l->pad[3] = hw[1];
    }
    if (b->L[l->in[0]].k == K_PAD) return unsupported(b, i, "two ZeroPadding2D layers in a row");
    l->node = -1;
    l->c = b->L[l->in[0]].c;
    return RD_OK;
}

static rd_status build_input(kbuild *b, int i)
{
    const json_t *shape = json_object_get(b->L[i].config, "batch_input_shape");
    int c = 3;
    if (b->L[i].nin != 0) return bad(b, i, "an input layer with inputs");
    if (b->g->n != 0) return unsupported(b, i, "more than one input");
    if (shape && !json_is_null(shape)) {
        if (!json_is_array(shape) || json_array_size(shape) != 4) return bad(b, i, "batch_input_shape is not 4-D");
        if (j_int(json_array_get(shape, 3), 1, KERAS_MAX_CHANNELS, &c)) return bad(b, i, "bad channel count");
    }
    if (c != 3) return unsupported(b, i, "input does not have 3 channels (channels last)");
    if ((b->L[i].node = rd_graph_input(b->g)) < 0) return nomem(b, i);
    b->L[i].live = 1;
    b->L[i].c = 3;
    return RD_OK;
}

static int find_layer(const kbuild *b, const char *name, int before)
{
    for (int i = 0; i < before; i++)
        if (strcmp(b->L[i].name, name) == 0) return i;
    return -1;
}

/* Fills b->L from the JSON array (names, classes, inputs, consumer counts). */
static rd_status parse_layers(kbuild *b, json_t *arr)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0) return rd_err_set(b->err, RD_ERR_FORMAT, "topology: not a non-empty JSON array");
    if (n > KERAS_MAX_LAYERS)
        return rd_err_set(b->err, RD_ERR_LIMIT, "topology: %zu layers, over the limit of %d", n, KERAS_MAX_LAYERS);
    if (!(b->L = calloc(n, sizeof *b->L))) return rd_err_set(b->err, RD_ERR_NOMEM, "out of memory");
    b->n = (int)n;
    for (int i = 0; i < b->n; i++) {
        json_t *o = json_array_get(arr, (size_t)i), *in = json_object_get(o, "inbound");
        klayer *l = &b->L[i];
        l->node = -1;
        l->name = j_str(o, "name", NULL);
        l->cls = j_str(o, "class_name", NULL);
        l->config = json_object_get(o, "config");
        if (!json_is_object(o) || !l->name || !l->cls || !json_is_object(l->config) || !json_is_array(in))
            return rd_err_set(b->err, RD_ERR_FORMAT,
                              "topology: layer %d lacks a name, class_name, config object or inbound list", i);
        if (strlen(l->name) >= sizeof b->g->nodes[0].name)
            return rd_err_set(b->err, RD_ERR_FORMAT, "topology: layer name \"%.64s...\" too long", l->name);
        if (find_layer(b, l->name, i) >= 0)
            return rd_err_set(b->err, RD_ERR_FORMAT, "topology: two layers named \"%.64s\"", l->name);
        l->k = K_OTHER;
        for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++)
            if (strcmp(l->cls, classes[c].name) == 0) l->k = classes[c].k;
        if (json_array_size(in) > KERAS_MAX_INBOUND)
            return rd_err_set(b->err, RD_ERR_LIMIT, "topology: layer \"%.64s\" has over %d inputs", l->name,
                              KERAS_MAX_INBOUND);
        l->nin = (int)json_array_size(in);
        for (int q = 0; q < l->nin; q++) {
            const json_t *s = json_array_get(in, (size_t)q);
            int src = json_is_string(s) ? find_layer(b, json_string_value(s), i) : -1;
            if (src < 0)
                return rd_err_set(b->err, RD_ERR_FORMAT,
                                  "topology: layer \"%.64s\": input %d is not the name of an earlier layer", l->name, q);
            l->in[q] = src;
            b->L[src].consumers++;
        }
    }
    return RD_OK;
}

/* levels: comma-separated layer names → layer indices. */
static rd_status parse_levels(kbuild *b, rd_backbone *bb, const char *csv, int *lv, int *n)
{
    const char *p = csv;
    *n = 0;
    while (*p) {
        char tok[64];
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;
        int li;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) >= sizeof tok) return rd_err_set(b->err, RD_ERR_ARG, "level name too long in \"%.80s\"", csv);
        memcpy(tok, s, (size_t)(e - s));
        tok[e - s] = '\0';
        if ((li = find_layer(b, tok, b->n)) < 0)
            return rd_err_set(b->err, RD_ERR_ARG, "no layer \"%s\" in the model (levels are Keras layer names, e.g. %s)",
                              tok, "block_2_add,block_5_add,block_9_add");
        if (b->L[li].k == K_PAD) return rd_err_set(b->err, RD_ERR_ARG, "level \"%s\" is a ZeroPadding2D layer", tok);
        if (b->L[li].level) return rd_err_set(b->err, RD_ERR_ARG, "level \"%s\" given twice", tok);
        if (*n == RD_MAX_LEVELS)
            return rd_err_set(b->err, RD_ERR_ARG, "more than %d levels in \"%.80s\"", RD_MAX_LEVELS, csv);
        b->L[li].level = 1;
        snprintf(bb->level_names[*n], sizeof bb->level_names[*n], "%s", tok);
        lv[(*n)++] = li;
        p += len;
        if (*p == ',') p++;
    }
    if (*n == 0) return rd_err_set(b->err, RD_ERR_ARG, "no levels given");
    return RD_OK;
}

rd_status rd_backbone_build_keras(rd_backbone *bb, const struct rd_st_file *f, const char *levels_csv, rd_err *err)
{
    kbuild b = {rd_graph_new(), f, err, NULL, 0};
    const char *topo = rd_st_meta(f, "resadd.topology"), *name = rd_st_meta(f, "resadd.name"),
               *size = rd_st_meta(f, "resadd.size"), *input = rd_st_meta(f, "resadd.input");
    json_t *root = NULL;
    json_error_t jerr;
    int lv[RD_MAX_LEVELS], nodes[RD_MAX_LEVELS], nlev = 0, last = 0;
    rd_status st;

    if (!b.g) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    if (!topo) {
        st = rd_err_set(err, RD_ERR_FORMAT, "metadata \"resadd.topology\" (the Keras layer list) is missing");
        goto out;
    }
    if (input && strcmp(input, "scale [-1,1]") != 0) {
        st = rd_err_set(err, RD_ERR_UNSUPPORTED, "metadata resadd.input \"%.40s\": only \"scale [-1,1]\" is supported",
                        input);
        goto out;
    }
    if (!(root = json_loads(topo, JSON_REJECT_DUPLICATES, &jerr))) {
        st = rd_err_set(err, RD_ERR_FORMAT, "metadata resadd.topology: JSON error at line %d: %.200s", jerr.line,
                        jerr.text);
        goto out;
    }
    if ((st = parse_layers(&b, root)) != RD_OK) goto out;
    if (!levels_csv) levels_csv = rd_st_meta(f, "resadd.levels");
    if (!levels_csv) {
        st = rd_err_set(err, RD_ERR_ARG, "no levels given and the file has no resadd.levels metadata");
        goto out;
    }
    if ((st = parse_levels(&b, bb, levels_csv, lv, &nlev)) != RD_OK) goto out;
    for (int q = 0; q < nlev; q++)
        if (lv[q] > last) last = lv[q];

    for (int i = 0; i <= last; i++) {
        switch (b.L[i].k) {
        case K_INPUT: st = build_input(&b, i); break;
        case K_PAD: st = build_pad(&b, i); break;
        case K_CONV:
        case K_DWCONV: st = build_conv(&b, i); break;
        case K_BN: st = build_bn(&b, i); break;
        case K_RELU:
        case K_ACTIVATION: st = build_act(&b, i); break;
        case K_ADD: st = build_add(&b, i); break;
        case K_CONCAT: st = build_concat(&b, i); break;
        case K_MAXPOOL:
        case K_AVGPOOL: st = build_pool(&b, i); break;
        default:
            st = rd_err_set(err, RD_ERR_UNSUPPORTED,
                            "topology: layer \"%.64s\": Keras layer class %.40s is not supported (it comes before the "
                            "last requested level, \"%.64s\")",
                            b.L[i].name, b.L[i].cls, b.L[last].name);
        }
        if (st != RD_OK) goto out;
        if (i == 0 && b.L[i].k != K_INPUT) {
            st = rd_err_set(err, RD_ERR_FORMAT, "topology: the first layer is not an InputLayer");
            goto out;
        }
    }
    for (int q = 0; q < nlev; q++) {
        if (b.L[lv[q]].node < 0 || !b.L[lv[q]].live) {
            st = rd_err_set(err, RD_ERR_INTERNAL, "level \"%s\" was not built", b.L[lv[q]].name);
            goto out;
        }
        nodes[q] = b.L[lv[q]].node;
    }
    if ((st = rd_graph_set_levels(b.g, nodes, nlev, err)) != RD_OK) goto out;
    snprintf(bb->arch, sizeof bb->arch, "%s", name && *name && strlen(name) < sizeof bb->arch ? name : "keras");
    if (size) {
        char *end;
        long s = strtol(size, &end, 10);
        if (*end || end == size || s < 1 || s > RD_GRAPH_MAX_S) {
            st = rd_err_set(err, RD_ERR_FORMAT, "metadata resadd.size \"%.20s\" is not an input size", size);
            goto out;
        }
        bb->default_size = (int)s;
    }
    bb->graph = b.g;
    b.g = NULL;
out:
    rd_graph_free(b.g);
    free(b.L);
    json_decref(root);
    return st;
}
