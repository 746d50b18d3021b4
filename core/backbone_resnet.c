/* backbone_resnet.c — torchvision/timm ResNets (basic and bottleneck blocks,
 * wide variants) from their state_dict tensor names into a graph.
 *
 * Names: conv1/bn1 (stem), layerL.B.convK/bnK, layerL.B.downsample.0/1; "fc.*"
 * and "*.num_batches_tracked" are ignored.  Channel counts come from the
 * tensor shapes and every conv is checked against its producer, so a truncated
 * or mixed-up export fails with the name of the first tensor that does not fit.
 * Strides follow torchvision ≥ 0.2 ("ResNet v1.5", also timm): the first block
 * of layers 2–4 strides in its 3×3 conv (conv2 of a bottleneck, conv1 of a
 * basic block) and in its 1×1 downsample.  BatchNorm (eps 1e-5) is folded into
 * the conv before it.  Only the layers up to the deepest requested level are
 * built. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone.h"
#include "safetensors.h"

#define RD_RESNET_BN_EPS 1e-5f
#define RD_RESNET_MAX_BLOCKS 64

typedef struct builder {
    rd_graph *g;
    const rd_st_file *f;
    rd_err *err;
} builder;

/* Reads "<prefix>.weight" (OIHW, [cout][cin][k][k]) as HWIO; cout < 0 = any. */
static rd_status load_conv(builder *b, const char *prefix, int cin, int cout, int k, float **w_out, float **b_out,
                           int *cout_out)
{
    char name[128];
    int64_t want[4] = {cout, cin, k, k};
    const rd_st_tensor *t, *tb;
    float *raw = NULL, *w = NULL, *bias = NULL;
    rd_status st;
    size_t co, taps = (size_t)k * k;

    snprintf(name, sizeof name, "%s.weight", prefix);
    if (!(t = rd_st_expect(b->f, name, 4, want, b->err))) return b->err ? b->err->code : RD_ERR_FORMAT;
    if (t->shape[0] < 1 || t->shape[0] > 65536)
        return rd_err_set(b->err, RD_ERR_FORMAT, "tensor \"%s\": %lld output channels", name, (long long)t->shape[0]);
    co = (size_t)t->shape[0];
    raw = malloc(t->numel * sizeof *raw + 1);
    w = malloc(t->numel * sizeof *w + 1);
    if (!raw || !w) {
        st = rd_err_set(b->err, RD_ERR_NOMEM, "out of memory for \"%s\"", name);
        goto fail;
    }
    if ((st = rd_st_to_f32(t, raw, b->err)) != RD_OK) goto fail;
    /* [o][i][y][x] → [y][x][i][o] */
    for (size_t p = 0; p < taps; p++)
        for (size_t i = 0; i < (size_t)cin; i++)
            for (size_t o = 0; o < co; o++) w[(p * (size_t)cin + i) * co + o] = raw[(o * (size_t)cin + i) * taps + p];
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (rd_st_find(b->f, name)) {
        int64_t wb[1] = {(int64_t)co};
        if (!(tb = rd_st_expect(b->f, name, 1, wb, b->err))) {
            st = b->err ? b->err->code : RD_ERR_FORMAT;
            goto fail;
        }
        if (!(bias = malloc(co * sizeof *bias))) {
            st = rd_err_set(b->err, RD_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if ((st = rd_st_to_f32(tb, bias, b->err)) != RD_OK) goto fail;
    }
    free(raw);
    *w_out = w;
    *b_out = bias;
    *cout_out = (int)co;
    return RD_OK;
fail:
    free(raw);
    free(w);
    free(bias);
    return st;
}

static rd_status fold_bn(builder *b, int node, const char *prefix, int c)
{
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    float *v = malloc((size_t)c * 4 * sizeof *v);
    int64_t want[1] = {c};
    rd_status st = RD_OK;
    if (!v) return rd_err_set(b->err, RD_ERR_NOMEM, "out of memory");
    for (int k = 0; k < 4; k++) {
        char name[128];
        const rd_st_tensor *t;
        snprintf(name, sizeof name, "%s.%s", prefix, parts[k]);
        if (!(t = rd_st_expect(b->f, name, 1, want, b->err))) {
            st = b->err ? b->err->code : RD_ERR_FORMAT;
            goto out;
        }
        if ((st = rd_st_to_f32(t, v + (size_t)k * c, b->err)) != RD_OK) goto out;
    }
    st = rd_graph_fold_bn(b->g, node, v, v + c, v + 2 * (size_t)c, v + 3 * (size_t)c, RD_RESNET_BN_EPS, b->err);
out:
    free(v);
    return st;
}

/* conv + folded BN (+ act) → node index in *node. */
static rd_status conv_bn(builder *b, const char *conv, const char *bn, int in, int cin, int cout, int k, int stride,
                         rd_act act, int *node, int *cout_out)
{
    float *w = NULL, *bias = NULL;
    int co = 0, pad = k / 2;
    rd_status st = load_conv(b, conv, cin, cout, k, &w, &bias, &co);
    if (st != RD_OK) return st;
    *node = rd_graph_conv_take(b->g, conv, in, k, k, stride, stride, pad, pad, pad, pad, cin, co, w, bias, act);
    if (*node < 0) return rd_err_set(b->err, RD_ERR_NOMEM, "out of memory building %s", conv);
    if (cout_out) *cout_out = co;
    return fold_bn(b, *node, bn, co);
}

static int count_blocks(const rd_st_file *f, int layer)
{
    int n = 0;
    char name[64];
    for (;;) {
        snprintf(name, sizeof name, "layer%d.%d.conv1.weight", layer, n);
        if (!rd_st_find(f, name) || n >= RD_RESNET_MAX_BLOCKS) return n;
        n++;
    }
}

static const char *recognize(int bottleneck, int width_ratio, const int *blocks)
{
    static const struct {
        const char *name;
        int bottleneck, ratio, b[3];
    } known[] = {
        {"resnet18", 0, 1, {2, 2, 2}},        {"resnet34", 0, 1, {3, 4, 6}},
        {"resnet50", 1, 1, {3, 4, 6}},        {"resnet101", 1, 1, {3, 4, 23}},
        {"resnet152", 1, 1, {3, 8, 36}},      {"wide_resnet50_2", 1, 2, {3, 4, 6}},
        {"wide_resnet101_2", 1, 2, {3, 4, 23}},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].bottleneck == bottleneck && known[i].ratio == width_ratio && known[i].b[0] == blocks[0] &&
            known[i].b[1] == blocks[1] && known[i].b[2] == blocks[2])
            return known[i].name;
    return "resnet";
}

/* "layer1, layer3" → {1, 3}. */
static rd_status parse_levels(const char *csv, int *layers, int *n, rd_err *err)
{
    const char *p = csv ? csv : "layer1,layer2,layer3";
    *n = 0;
    while (*p) {
        char tok[64];
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) >= sizeof tok) return rd_err_set(err, RD_ERR_ARG, "level name too long in \"%.80s\"", csv);
        memcpy(tok, s, (size_t)(e - s));
        tok[e - s] = '\0';
        if (strlen(tok) != 6 || strncmp(tok, "layer", 5) != 0 || tok[5] < '1' || tok[5] > '4')
            return rd_err_set(err, RD_ERR_ARG, "unknown ResNet level \"%s\" (use layer1..layer4)", tok);
        if (*n == RD_MAX_LEVELS) return rd_err_set(err, RD_ERR_ARG, "more than %d levels in \"%.80s\"", RD_MAX_LEVELS, csv);
        layers[(*n)++] = tok[5] - '0';
        p += len;
        if (*p == ',') p++;
    }
    if (*n == 0) return rd_err_set(err, RD_ERR_ARG, "no levels given");
    return RD_OK;
}

rd_status rd_backbone_build_resnet(rd_backbone *bb, const rd_st_file *f, const char *levels_csv, rd_err *err)
{
    builder b = {rd_graph_new(), f, err};
    int layers[RD_MAX_LEVELS], nlev, maxl = 0, blocks[4], bottleneck, stem_c, width_ratio = 1;
    int layer_out[5] = {0}, levels[RD_MAX_LEVELS], x, c;
    const char *detected;
    rd_status st;

    if (!b.g) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    if ((st = parse_levels(levels_csv, layers, &nlev, err)) != RD_OK) goto fail;
    for (int i = 0; i < nlev; i++)
        if (layers[i] > maxl) maxl = layers[i];
    for (int l = 1; l <= 4; l++) blocks[l - 1] = count_blocks(f, l);
    bottleneck = rd_st_find(f, "layer1.0.conv3.weight") != NULL;
    {
        const rd_st_tensor *t = rd_st_find(f, "layer1.0.conv1.weight"), *s = rd_st_find(f, "conv1.weight");
        if (!s || s->ndim != 4) {
            st = rd_err_set(err, RD_ERR_FORMAT, "tensor \"conv1.weight\" is missing or not 4-D: not a ResNet state_dict");
            goto fail;
        }
        if (t && t->ndim == 4 && bottleneck && s->shape[0] > 0 && t->shape[0] == 2 * s->shape[0]) width_ratio = 2;
    }
    detected = recognize(bottleneck, width_ratio, blocks);
    if (bb->arch[0] && strcmp(bb->arch, "resnet") != 0 && strcmp(bb->arch, detected) != 0) {
        st = rd_err_set(err, RD_ERR_MISMATCH, "metadata says %s but the tensors are a %s (%s blocks %d,%d,%d)", bb->arch,
                        detected, bottleneck ? "bottleneck" : "basic", blocks[0], blocks[1], blocks[2]);
        goto fail;
    }
    snprintf(bb->arch, sizeof bb->arch, "%s", detected);
    for (int l = 1; l <= maxl; l++)
        if (blocks[l - 1] == 0) {
            st = rd_err_set(err, RD_ERR_FORMAT, "tensor \"layer%d.0.conv1.weight\" is missing", l);
            goto fail;
        }

    /* Stem: conv 7×7/2 + BN + ReLU, max pool 3×3/2. */
    if ((x = rd_graph_input(b.g)) < 0) goto nomem;
    if ((st = conv_bn(&b, "conv1", "bn1", x, 3, -1, 7, 2, RD_ACT_RELU, &x, &stem_c)) != RD_OK) goto fail;
    if ((x = rd_graph_pool(b.g, "maxpool", RD_OP_MAXPOOL, x, 3, 3, 2, 2, 1, 1, 1, 1)) < 0) goto nomem;
    c = stem_c;

    for (int l = 1; l <= maxl; l++) {
        for (int k = 0; k < blocks[l - 1]; k++) {
            char p[32], cv[128], bn[128];
            int stride = (l > 1 && k == 0) ? 2 : 1, y, w1, w2, cout, id = x;
            snprintf(p, sizeof p, "layer%d.%d", l, k);
            if (bottleneck) {
                snprintf(cv, sizeof cv, "%s.conv1", p), snprintf(bn, sizeof bn, "%s.bn1", p);
                if ((st = conv_bn(&b, cv, bn, x, c, -1, 1, 1, RD_ACT_RELU, &y, &w1)) != RD_OK) goto fail;
                snprintf(cv, sizeof cv, "%s.conv2", p), snprintf(bn, sizeof bn, "%s.bn2", p);
                if ((st = conv_bn(&b, cv, bn, y, w1, -1, 3, stride, RD_ACT_RELU, &y, &w2)) != RD_OK) goto fail;
                snprintf(cv, sizeof cv, "%s.conv3", p), snprintf(bn, sizeof bn, "%s.bn3", p);
                if ((st = conv_bn(&b, cv, bn, y, w2, -1, 1, 1, RD_ACT_NONE, &y, &cout)) != RD_OK) goto fail;
            } else {
                snprintf(cv, sizeof cv, "%s.conv1", p), snprintf(bn, sizeof bn, "%s.bn1", p);
                if ((st = conv_bn(&b, cv, bn, x, c, -1, 3, stride, RD_ACT_RELU, &y, &w1)) != RD_OK) goto fail;
                snprintf(cv, sizeof cv, "%s.conv2", p), snprintf(bn, sizeof bn, "%s.bn2", p);
                if ((st = conv_bn(&b, cv, bn, y, w1, -1, 3, 1, RD_ACT_NONE, &y, &cout)) != RD_OK) goto fail;
            }
            snprintf(cv, sizeof cv, "%s.downsample.0.weight", p);
            if (rd_st_find(f, cv)) {
                snprintf(cv, sizeof cv, "%s.downsample.0", p), snprintf(bn, sizeof bn, "%s.downsample.1", p);
                if ((st = conv_bn(&b, cv, bn, x, c, cout, 1, stride, RD_ACT_NONE, &id, NULL)) != RD_OK) goto fail;
            } else if (stride != 1 || c != cout) {
                st = rd_err_set(err, RD_ERR_FORMAT, "tensor \"%s\" is missing (block changes %s)", cv,
                                stride != 1 ? "resolution" : "channels");
                goto fail;
            }
            if ((x = rd_graph_add(b.g, p, y, id, RD_ACT_RELU)) < 0) goto nomem;
            c = cout;
        }
        layer_out[l] = x;
    }
    for (int i = 0; i < nlev; i++) {
        levels[i] = layer_out[layers[i]];
        snprintf(bb->level_names[i], sizeof bb->level_names[i], "layer%d", layers[i]);
    }
    if ((st = rd_graph_set_levels(b.g, levels, nlev, err)) != RD_OK) goto fail;
    bb->graph = b.g;
    return RD_OK;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory building the ResNet graph");
fail:
    rd_graph_free(b.g);
    return st;
}
