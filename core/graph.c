/* graph.c — building, planning and running a frozen CNN (see graph.h).
 *
 * Activations are HWC, so a convolution is one GEMM: the im2col matrix has one
 * row per output pixel holding its kh·kw·cin receptive field (each kernel tap
 * is a contiguous run of cin floats, copied with memcpy), and the HWIO weights
 * are already the [kh·kw·cin × cout] right-hand side.  A 1×1 stride-1 conv
 * without padding multiplies the input directly.  The bias is written into the
 * output first and sgemm accumulates onto it (beta = 1), so a folded BatchNorm
 * costs nothing; the activation is one pass afterwards.
 *
 * The planner gives every computed node a buffer slot: walking the nodes in
 * order, a slot is free again once the last node reading it has run, and a free
 * slot is reused (grown if needed) before a new one is opened.  Level outputs
 * are written straight into the caller's memory and the input is read in
 * place, so neither takes a slot.  The scratch is the slots plus one im2col
 * block for the largest conv (the matrix is built and multiplied in row blocks
 * of about 4 MiB, which keeps the scratch small at no measured cost in speed);
 * rd_graph_forward takes exactly that from the worker's arena and allocates
 * nothing else.
 *
 * Threads: rd_graph_forward leaves parallelism to OpenBLAS, which leaves the
 * im2col, bias and activation passes serial.  rd_graph_forward_team splits
 * every node across a team instead (by output pixels, or by output channels
 * where a layer has more channels than pixels), each thread with its own
 * im2col block and a single-threaded sgemm. */
#include "graph.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"
#include "v4.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RD_GRAPH_X86 1
#endif

rd_graph *rd_graph_new(void) { return calloc(1, sizeof(rd_graph)); }

void rd_graph_free(rd_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n && !g->borrowed; i++) {
        free(g->nodes[i].w);
        free(g->nodes[i].b);
    }
    free(g->nodes);
    free(g->buf_floats);
    free(g);
}

/* Appends a node; takes w/b (freed on failure). */
static int push(rd_graph *g, const rd_node *nd)
{
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        rd_node *nn = (cap > 0 && (size_t)cap < (size_t)-1 / sizeof *nn) ? realloc(g->nodes, (size_t)cap * sizeof *nn) : NULL;
        if (!nn) {
            free(nd->w);
            free(nd->b);
            return -1;
        }
        g->nodes = nn;
        g->cap = cap;
    }
    g->nodes[g->n] = *nd;
    g->plan_s = 0; /* any earlier plan is stale */
    return g->n++;
}

static void init_node(rd_node *nd, rd_op op, const char *name)
{
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->in[0] = nd->in[1] = -1;
    nd->kh = nd->kw = nd->sh = nd->sw = 1;
    nd->buf = -1;
    if (name) snprintf(nd->name, sizeof nd->name, "%s", name);
}

static int valid_in(const rd_graph *g, int in) { return in >= 0 && in < g->n; }

int rd_graph_input(rd_graph *g)
{
    rd_node nd;
    init_node(&nd, RD_OP_INPUT, "input");
    nd.cin = nd.cout = 3;
    return push(g, &nd);
}

static int window_ok(int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr)
{
    return kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && kh <= 64 && kw <= 64 && pt >= 0 && pl >= 0 && pb >= 0 &&
           pr >= 0 && pt < kh && pb < kh && pl < kw && pr < kw;
}

int rd_graph_conv_take(rd_graph *g, const char *name, int in, int kh, int kw, int sh, int sw, int pt, int pl, int pb,
                       int pr, int cin, int cout, float *w, float *b, rd_act act)
{
    rd_node nd;
    if (!valid_in(g, in) || !window_ok(kh, kw, sh, sw, pt, pl, pb, pr) || cin < 1 || cout < 1 || !w ||
        (unsigned)act >= RD_ACT_COUNT) {
        free(w);
        free(b);
        return -1;
    }
    init_node(&nd, RD_OP_CONV, name);
    nd.in[0] = in;
    nd.kh = kh, nd.kw = kw, nd.sh = sh, nd.sw = sw;
    nd.pad_t = pt, nd.pad_l = pl, nd.pad_b = pb, nd.pad_r = pr;
    nd.cin = cin, nd.cout = cout, nd.w = w, nd.b = b, nd.act = act;
    return push(g, &nd);
}

int rd_graph_dwconv_take(rd_graph *g, const char *name, int in, int kh, int kw, int sh, int sw, int pt, int pl, int pb,
                         int pr, int c, float *w, float *b, rd_act act)
{
    int i = rd_graph_conv_take(g, name, in, kh, kw, sh, sw, pt, pl, pb, pr, c, c, w, b, act);
    if (i >= 0) g->nodes[i].op = RD_OP_DWCONV;
    return i;
}

int rd_graph_add(rd_graph *g, const char *name, int a, int b, rd_act act)
{
    rd_node nd;
    if (!valid_in(g, a) || !valid_in(g, b) || (unsigned)act >= RD_ACT_COUNT) return -1;
    init_node(&nd, RD_OP_ADD, name);
    nd.in[0] = a;
    nd.in[1] = b;
    nd.act = act;
    return push(g, &nd);
}

int rd_graph_concat(rd_graph *g, const char *name, int a, int b)
{
    rd_node nd;
    if (!valid_in(g, a) || !valid_in(g, b)) return -1;
    init_node(&nd, RD_OP_CONCAT, name);
    nd.in[0] = a;
    nd.in[1] = b;
    return push(g, &nd);
}

void rd_graph_set_div(rd_graph *g, int node, int div)
{
    if (node >= 0 && node < g->n && div >= 0) g->nodes[node].div = div;
}

int rd_graph_pool(rd_graph *g, const char *name, rd_op op, int in, int kh, int kw, int sh, int sw, int pt, int pl,
                  int pb, int pr)
{
    rd_node nd;
    if ((op != RD_OP_MAXPOOL && op != RD_OP_AVGPOOL) || !valid_in(g, in) || !window_ok(kh, kw, sh, sw, pt, pl, pb, pr))
        return -1;
    init_node(&nd, op, name);
    nd.in[0] = in;
    nd.kh = kh, nd.kw = kw, nd.sh = sh, nd.sw = sw;
    nd.pad_t = pt, nd.pad_l = pl, nd.pad_b = pb, nd.pad_r = pr;
    return push(g, &nd);
}

void rd_graph_set_act(rd_graph *g, int node, rd_act act)
{
    if (node >= 0 && node < g->n && (unsigned)act < RD_ACT_COUNT && g->nodes[node].op != RD_OP_INPUT)
        g->nodes[node].act = act;
}

rd_status rd_graph_fold_bn(rd_graph *g, int node, const float *gamma, const float *beta, const float *mean,
                           const float *var, float eps, rd_err *err)
{
    rd_node *nd;
    size_t taps;
    float *scale;
    int c;
    if (node < 0 || node >= g->n || (g->nodes[node].op != RD_OP_CONV && g->nodes[node].op != RD_OP_DWCONV))
        return rd_err_set(err, RD_ERR_INTERNAL, "batch norm folded into node %d, which is not a conv", node);
    nd = &g->nodes[node];
    c = nd->cout;
    if (c < 1) return rd_err_set(err, RD_ERR_INTERNAL, "%s: no channels", nd->name);
    taps = (size_t)nd->kh * (size_t)nd->kw * (size_t)(nd->op == RD_OP_CONV ? nd->cin : 1);
    for (int o = 0; o < c; o++)
        if (!((double)var[o] + eps > 0) || !isfinite(var[o]) || !isfinite(gamma[o]) || !isfinite(beta[o]) ||
            !isfinite(mean[o]))
            return rd_err_set(err, RD_ERR_FORMAT, "%s: batch norm channel %d has invalid statistics", nd->name, o);
    if (!nd->b && !(nd->b = calloc((size_t)c, sizeof *nd->b)))
        return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    if (!(scale = malloc((size_t)c * sizeof *scale))) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    for (int o = 0; o < c; o++) {
        double sc = (double)gamma[o] / sqrt((double)var[o] + (double)eps);
        scale[o] = (float)sc;
        nd->b[o] = (float)(((double)nd->b[o] - (double)mean[o]) * sc + (double)beta[o]);
    }
    for (size_t t = 0; t < taps; t++) /* output channel innermost: sequential over the HWIO weights */
        for (int o = 0; o < c; o++) nd->w[t * (size_t)c + (size_t)o] *= scale[o];
    free(scale);
    return RD_OK;
}

int rd_graph_find(const rd_graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

rd_status rd_graph_set_levels(rd_graph *g, const int *nodes, int n, rd_err *err)
{
    if (n < 1 || n > RD_MAX_LEVELS) return rd_err_set(err, RD_ERR_ARG, "%d feature levels; 1 to %d supported", n, RD_MAX_LEVELS);
    g->last = 0;
    for (int i = 0; i < n; i++) {
        if (nodes[i] < 0 || nodes[i] >= g->n) return rd_err_set(err, RD_ERR_ARG, "feature level %d: no such node", i);
        g->level_nodes[i] = nodes[i];
        if (nodes[i] > g->last) g->last = nodes[i];
    }
    g->nlevels = n;
    g->plan_s = 0;
    return RD_OK;
}

static int level_of(const rd_graph *g, int node)
{
    for (int l = 0; l < g->nlevels; l++)
        if (g->level_nodes[l] == node) return l;
    return -1;
}

/* The im2col matrix is built and multiplied in blocks of output rows, so it
 * stays in cache between being written and being packed by sgemm. */
#ifndef RD_IM2COL_BLOCK_FLOATS
#define RD_IM2COL_BLOCK_FLOATS (1024 * 1024) /* 4 MiB: as fast as one block, a fifth of the scratch */
#endif

static int needs_im2col(const rd_node *nd)
{
    return nd->op == RD_OP_CONV && !(nd->kh == 1 && nd->kw == 1 && nd->sh == 1 && nd->sw == 1 && !nd->pad_t &&
                                     !nd->pad_l && !nd->pad_b && !nd->pad_r);
}

/* Output rows per im2col block (at least 256, so the weights — packed by
 * sgemm once per block — are not repacked for a handful of rows; at most all). */
static int im2col_rows(const rd_node *nd)
{
    size_t k = (size_t)nd->kh * nd->kw * nd->cin, m = (size_t)nd->oh * nd->ow, rows = RD_IM2COL_BLOCK_FLOATS / k;
    if (rows < 256) rows = 256;
    if (rows > m) rows = m;
    return (int)rows;
}

static size_t im2col_floats(const rd_node *nd)
{
    if (!needs_im2col(nd)) return 0;
    return (size_t)im2col_rows(nd) * (size_t)nd->kh * (size_t)nd->kw * (size_t)nd->cin;
}

rd_graph *rd_graph_share(const rd_graph *g, rd_err *err)
{
    rd_graph *c = calloc(1, sizeof *c);
    if (c && g->n > 0 && !(c->nodes = malloc((size_t)g->n * sizeof *c->nodes))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory copying the graph");
        return NULL;
    }
    if (g->n > 0) memcpy(c->nodes, g->nodes, (size_t)g->n * sizeof *c->nodes);
    c->n = c->cap = g->n;
    memcpy(c->level_nodes, g->level_nodes, sizeof c->level_nodes);
    c->nlevels = g->nlevels;
    c->last = g->last;
    c->borrowed = 1;
    return c;
}

rd_status rd_graph_plan(rd_graph *g, int s, size_t *scratch_bytes, rd_err *err)
{
    return rd_graph_plan_hw(g, s, s, scratch_bytes, err);
}

rd_status rd_graph_plan_hw(rd_graph *g, int h, int w, size_t *scratch_bytes, rd_err *err)
{
    const int s = h > w ? h : w; /* named in messages */
    int *last_use = NULL, *slot_free = NULL;
    size_t col = 0, total = 0, *sizes = NULL;
    int nslots = 0;
    rd_status st = RD_OK;

    g->plan_s = 0;
    if (g->nlevels < 1 || g->n < 1 || g->nodes[0].op != RD_OP_INPUT)
        return rd_err_set(err, RD_ERR_INTERNAL, "graph has no input or no feature levels");
    if (h < 1 || w < 1 || s > RD_GRAPH_MAX_S)
        return rd_err_set(err, RD_ERR_ARG, "input size %dx%d outside 1..%d", w, h, RD_GRAPH_MAX_S);
    last_use = calloc((size_t)g->n, sizeof *last_use);
    slot_free = calloc((size_t)g->n, sizeof *slot_free);
    sizes = calloc((size_t)g->n, sizeof *sizes);
    if (!last_use || !slot_free || !sizes) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Which nodes feed a level. */
    for (int i = 0; i < g->n; i++) g->nodes[i].needed = 0;
    for (int l = 0; l < g->nlevels; l++) g->nodes[g->level_nodes[l]].needed = 1;
    for (int i = g->last; i >= 0; i--) {
        rd_node *nd = &g->nodes[i];
        if (!nd->needed) continue;
        for (int k = 0; k < 2; k++) {
            if (nd->in[k] < 0) continue;
            if (nd->in[k] >= i) {
                st = rd_err_set(err, RD_ERR_INTERNAL, "%s: input node %d is not earlier", nd->name, nd->in[k]);
                goto out;
            }
            g->nodes[nd->in[k]].needed = 1;
        }
    }
    /* Shapes. */
    for (int i = 0; i <= g->last; i++) {
        rd_node *nd = &g->nodes[i];
        const rd_node *a = nd->in[0] >= 0 ? &g->nodes[nd->in[0]] : NULL;
        if (!nd->needed) continue;
        if (nd->op == RD_OP_INPUT) {
            nd->oh = h;
            nd->ow = w;
            nd->oc = 3;
        } else if (nd->op == RD_OP_ADD) {
            const rd_node *b = &g->nodes[nd->in[1]];
            if (a->oh != b->oh || a->ow != b->ow || a->oc != b->oc) {
                st = rd_err_set(err, RD_ERR_MISMATCH, "%s: adds %dx%dx%d to %dx%dx%d", nd->name, a->oh, a->ow, a->oc,
                                b->oh, b->ow, b->oc);
                goto out;
            }
            nd->oh = a->oh, nd->ow = a->ow, nd->oc = a->oc;
        } else if (nd->op == RD_OP_CONCAT) {
            const rd_node *b = &g->nodes[nd->in[1]];
            if (a->oh != b->oh || a->ow != b->ow) {
                st = rd_err_set(err, RD_ERR_MISMATCH, "%s: concatenates %dx%d with %dx%d", nd->name, a->oh, a->ow,
                                b->oh, b->ow);
                goto out;
            }
            nd->oh = a->oh, nd->ow = a->ow, nd->oc = a->oc + b->oc;
        } else {
            int ph = a->oh + nd->pad_t + nd->pad_b, pw = a->ow + nd->pad_l + nd->pad_r;
            if ((nd->op == RD_OP_CONV || nd->op == RD_OP_DWCONV) && nd->cin != a->oc) {
                st = rd_err_set(err, RD_ERR_MISMATCH, "%s: expects %d input channels, gets %d", nd->name, nd->cin, a->oc);
                goto out;
            }
            if (nd->div > 0 && (a->oh % nd->div || a->ow % nd->div)) {
                st = rd_err_set(err, RD_ERR_ARG,
                                "%s: input %dx%d is not a multiple of %d (\"same\" padding at stride %d; input size %d)",
                                nd->name, a->ow, a->oh, nd->div, nd->div, s);
                goto out;
            }
            if (ph < nd->kh || pw < nd->kw) {
                st = rd_err_set(err, RD_ERR_ARG, "%s: input %dx%d smaller than the %dx%d kernel (input size %d too small)",
                                nd->name, a->oh, a->ow, nd->kh, nd->kw, s);
                goto out;
            }
            nd->oh = (ph - nd->kh) / nd->sh + 1;
            nd->ow = (pw - nd->kw) / nd->sw + 1;
            nd->oc = (nd->op == RD_OP_CONV) ? nd->cout : a->oc;
        }
        {
            size_t k = im2col_floats(nd), m = (size_t)nd->oh * (size_t)nd->ow;
            if (m * (size_t)nd->oc > INT_MAX || (size_t)nd->kh * nd->kw * nd->cin > INT_MAX || k / (m ? m : 1) > INT_MAX) {
                st = rd_err_set(err, RD_ERR_LIMIT, "%s: activation too large for input size %d", nd->name, s);
                goto out;
            }
            if (k > col) col = k;
        }
    }
    /* Liveness: the last node reading each output. */
    for (int i = 0; i <= g->last; i++) {
        last_use[i] = i;
        if (!g->nodes[i].needed) continue;
        for (int k = 0; k < 2; k++)
            if (g->nodes[i].in[k] >= 0) last_use[g->nodes[i].in[k]] = i;
    }
    /* Slots: slot_free[k] = index of the node after which slot k is free. */
    for (int i = 0; i <= g->last; i++) {
        rd_node *nd = &g->nodes[i];
        size_t need = (size_t)nd->oh * (size_t)nd->ow * (size_t)nd->oc;
        int best = -1;
        nd->buf = -1;
        if (!nd->needed || nd->op == RD_OP_INPUT || level_of(g, i) >= 0) continue;
        for (int k = 0; k < nslots; k++) {
            if (slot_free[k] >= i) continue; /* still read by node i or later */
            if (best < 0) {
                best = k;
            } else if (sizes[k] >= need) {
                if (sizes[best] < need || sizes[k] < sizes[best]) best = k; /* tightest that fits */
            } else if (sizes[best] < need && sizes[k] > sizes[best]) {
                best = k; /* none fits yet: grow the largest */
            }
        }
        if (best < 0) best = nslots++;
        if (sizes[best] < need) sizes[best] = need;
        slot_free[best] = last_use[i];
        nd->buf = best;
    }
    free(g->buf_floats);
    g->buf_floats = malloc(((size_t)nslots + 1) * sizeof *g->buf_floats);
    if (!g->buf_floats) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(g->buf_floats, sizes, (size_t)nslots * sizeof *sizes);
    g->nbufs = nslots;
    total = rd_arena_need((size_t)h * (size_t)w * 3 * sizeof(float));
    total += rd_arena_need((size_t)g->n * sizeof(float *));
    if (nslots) total += rd_arena_need((size_t)nslots * sizeof(float *));
    for (int k = 0; k < nslots; k++) total += rd_arena_need(sizes[k] * sizeof(float));
    total += rd_arena_need(col * sizeof(float));
    g->scratch_bytes = total;
    g->col_floats = col;
    g->plan_s = h;
    g->plan_h = h;
    g->plan_w = w;
    if (scratch_bytes) *scratch_bytes = total;
out:
    free(last_use);
    free(slot_free);
    free(sizes);
    return st;
}

void rd_graph_level_shape(const rd_graph *g, int level, int *h, int *w, int *c)
{
    const rd_node *nd = &g->nodes[g->level_nodes[level]];
    *h = nd->oh;
    *w = nd->ow;
    *c = nd->oc;
}

double rd_graph_macs(const rd_graph *g)
{
    double macs = 0;
    for (int i = 0; i <= g->last && i < g->n; i++) {
        const rd_node *nd = &g->nodes[i];
        if (!nd->needed) continue;
        if (nd->op == RD_OP_CONV)
            macs += (double)nd->oh * nd->ow * nd->cout * nd->kh * nd->kw * nd->cin;
        else if (nd->op == RD_OP_DWCONV)
            macs += (double)nd->oh * nd->ow * nd->oc * nd->kh * nd->kw;
    }
    return macs;
}

/* ---- kernels ----
 * The elementwise loops are written with GCC/Clang vector extensions: at -O2
 * the compiler leaves a `x > 0 ? x : 0` loop scalar and branchy, which on
 * real activations (half negative) costs more than the GEMMs' packing. */

static inline rd_v4 v_relu(rd_v4 v)
{
    const rd_v4 zero = {0};
    return (rd_v4)((rd_v4i)v & (v > zero));
}
static inline rd_v4 v_relu6(rd_v4 v)
{
    const rd_v4 six = {6, 6, 6, 6};
    rd_v4i lt;
    v = v_relu(v);
    lt = v < six;
    return (rd_v4)(((rd_v4i)v & lt) | ((rd_v4i)six & ~lt));
}
static inline float s_act(float x, rd_act act)
{
    if (act == RD_ACT_NONE) return x;
    x = x > 0.0f ? x : 0.0f;
    return (act == RD_ACT_RELU6 && x > 6.0f) ? 6.0f : x;
}

#ifdef RD_GRAPH_X86
/* AVX-512 forms of the element-wise passes and the depthwise conv, chosen at
 * run time (the portable 4-wide forms above stay the fallback).  The depthwise
 * conv keeps 16 channels of an output pixel in a register across its kh·kw
 * taps (fused multiply-add; the portable form rounds the product and the sum
 * separately, a last-bit difference) and applies the activation before the
 * single store. */
static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }

__attribute__((target("avx512f"))) static inline __m512 act512(__m512 v, rd_act act)
{
    if (act == RD_ACT_NONE) return v;
    v = _mm512_max_ps(v, _mm512_setzero_ps());
    return act == RD_ACT_RELU6 ? _mm512_min_ps(v, _mm512_set1_ps(6.0f)) : v;
}

static inline __mmask16 tail16(int n) { return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u); }

__attribute__((target("avx512f"))) static void apply_act512(float *x, size_t n, rd_act act)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, act512(_mm512_loadu_ps(x + i), act));
    if (i < n) {
        __mmask16 m = tail16((int)(n - i));
        _mm512_mask_storeu_ps(x + i, m, act512(_mm512_maskz_loadu_ps(m, x + i), act));
    }
}

__attribute__((target("avx512f"))) static void add512(const float *a, const float *b, float *out, size_t n, rd_act act)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, act512(_mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)), act));
    if (i < n) {
        __mmask16 m = tail16((int)(n - i));
        _mm512_mask_storeu_ps(out + i, m,
                              act512(_mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)), act));
    }
}

__attribute__((target("avx512f"))) static void dwconv512(const rd_node *nd, const float *in, int ih, int iw, float *out,
                                                         int p0, int p1)
{
    const int c = nd->oc;
    for (int p = p0; p < p1; p++) {
        const int oy = p / nd->ow, ox = p % nd->ow;
        const int y0 = oy * nd->sh - nd->pad_t, x0 = ox * nd->sw - nd->pad_l;
        const int ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + nd->kh > ih ? ih - y0 : nd->kh;
        const int kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + nd->kw > iw ? iw - x0 : nd->kw;
        float *o = out + (size_t)p * c;
        for (int ch = 0; ch < c; ch += 16) {
            const __mmask16 m = tail16(c - ch);
            __m512 acc = nd->b ? _mm512_maskz_loadu_ps(m, nd->b + ch) : _mm512_setzero_ps();
            for (int ky = ky0; ky < ky1; ky++) {
                const float *ir = in + ((ptrdiff_t)(y0 + ky) * iw + x0 + kx0) * c + ch; /* first tap inside */
                const float *wr = nd->w + ((size_t)ky * nd->kw + (size_t)kx0) * c + ch;
                for (int kx = kx0; kx < kx1; kx++, ir += c, wr += c)
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, ir), _mm512_maskz_loadu_ps(m, wr), acc);
            }
            _mm512_mask_storeu_ps(o + ch, m, act512(acc, nd->act));
        }
    }
}
#endif

static void apply_act(float *x, size_t n, rd_act act)
{
    size_t i = 0;
#ifdef RD_GRAPH_X86
    if (act != RD_ACT_NONE && have_avx512()) {
        apply_act512(x, n, act);
        return;
    }
#endif
    if (act == RD_ACT_RELU) {
        for (; i + 4 <= n; i += 4) rd_v4_st(x + i, v_relu(rd_v4_ld(x + i)));
    } else if (act == RD_ACT_RELU6) {
        for (; i + 4 <= n; i += 4) rd_v4_st(x + i, v_relu6(rd_v4_ld(x + i)));
    } else {
        return;
    }
    for (; i < n; i++) x[i] = s_act(x[i], act);
}

/* o[i] += a[i] * b[i] */
static inline void v_fma_acc(float *o, const float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) rd_v4_st(o + i, rd_v4_ld(o + i) + rd_v4_ld(a + i) * rd_v4_ld(b + i));
    for (; i < n; i++) o[i] += a[i] * b[i];
}
/* o[i] = max(o[i], a[i]) */
static inline void v_max_acc(float *o, const float *a, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        rd_v4 x = rd_v4_ld(o + i), y = rd_v4_ld(a + i);
        rd_v4i gt = y > x;
        rd_v4_st(o + i, (rd_v4)(((rd_v4i)y & gt) | ((rd_v4i)x & ~gt)));
    }
    for (; i < n; i++) o[i] = a[i] > o[i] ? a[i] : o[i];
}
/* o[i] += a[i] */
static inline void v_add_acc(float *o, const float *a, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) rd_v4_st(o + i, rd_v4_ld(o + i) + rd_v4_ld(a + i));
    for (; i < n; i++) o[i] += a[i];
}

/* Rows (output pixels) [p0, p1) of the im2col matrix. */
static void im2col(const rd_node *nd, const float *in, int ih, int iw, int p0, int p1, float *restrict col)
{
    const int c = nd->cin;
    const size_t run = (size_t)c * sizeof(float);
    float *row = col;
    for (int p = p0; p < p1; p++) {
        int oy = p / nd->ow, ox = p % nd->ow, x0 = ox * nd->sw - nd->pad_l;
        for (int ky = 0; ky < nd->kh; ky++) {
            int iy = oy * nd->sh - nd->pad_t + ky;
            if (iy < 0 || iy >= ih) {
                memset(row, 0, (size_t)nd->kw * run);
                row += (size_t)nd->kw * c;
                continue;
            }
            if (x0 >= 0 && x0 + nd->kw <= iw) { /* the kw taps are adjacent pixels: one copy */
                memcpy(row, in + ((size_t)iy * iw + x0) * c, (size_t)nd->kw * run);
                row += (size_t)nd->kw * c;
                continue;
            }
            for (int kx = 0; kx < nd->kw; kx++, row += c) {
                int ix = x0 + kx;
                if (ix < 0 || ix >= iw)
                    memset(row, 0, run);
                else
                    memcpy(row, in + ((size_t)iy * iw + ix) * c, run);
            }
        }
    }
}

/* out[p0..p1) × [n0..n1) = act(A·W + bias) for A (rows p0..p1, lda k) given. */
static void gemm_block(const rd_node *nd, const float *a, int p0, int p1, int n0, int n1, float *out)
{
    const int m = p1 - p0, n = nd->cout, k = nd->kh * nd->kw * nd->cin, w = n1 - n0;
    float beta = 0.0f;
    if (m <= 0 || w <= 0) return;
    out += (size_t)p0 * n + n0;
    if (nd->b) {
        for (int r = 0; r < m; r++) memcpy(out + (size_t)r * n, nd->b + n0, (size_t)w * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, w, k, 1.0f, a, k, nd->w + n0, n, beta, out, n);
    if (w == n)
        apply_act(out, (size_t)m * n, nd->act);
    else
        for (int r = 0; r < m; r++) apply_act(out + (size_t)r * n, (size_t)w, nd->act);
}

/* out rows [p0, p1) = act(A·W + bias), A = input rows or their im2col. */
static void conv_rows(const rd_node *nd, const float *in, int ih, int iw, int p0, int p1, float *out, float *col)
{
    const float *a = in + (size_t)p0 * nd->cin;
    if (p1 <= p0) return;
    if (col) {
        im2col(nd, in, ih, iw, p0, p1, col);
        a = col;
    }
    gemm_block(nd, a, p0, p1, 0, nd->cout, out);
}

static void conv_forward(const rd_node *nd, const float *in, int ih, int iw, float *out, float *col, int p0, int p1)
{
    if (!needs_im2col(nd)) {
        conv_rows(nd, in, ih, iw, p0, p1, out, NULL);
        return;
    }
    const int rows = im2col_rows(nd);
    for (int p = p0; p < p1; p += rows) conv_rows(nd, in, ih, iw, p, p + rows < p1 ? p + rows : p1, out, col);
}

static void dwconv_forward(const rd_node *nd, const float *in, int ih, int iw, float *out, int p0, int p1)
{
    const int c = nd->oc;
#ifdef RD_GRAPH_X86
    if (have_avx512()) {
        dwconv512(nd, in, ih, iw, out, p0, p1);
        return;
    }
#endif
    for (int p = p0; p < p1; p++) {
        int oy = p / nd->ow, ox = p % nd->ow;
        float *o = out + (size_t)p * c;
        if (nd->b)
            memcpy(o, nd->b, (size_t)c * sizeof(float));
        else
            memset(o, 0, (size_t)c * sizeof(float));
        for (int ky = 0; ky < nd->kh; ky++) {
            int iy = oy * nd->sh - nd->pad_t + ky;
            if (iy < 0 || iy >= ih) continue;
            for (int kx = 0; kx < nd->kw; kx++) {
                int ix = ox * nd->sw - nd->pad_l + kx;
                if (ix < 0 || ix >= iw) continue;
                v_fma_acc(o, in + ((size_t)iy * iw + ix) * c, nd->w + ((size_t)ky * nd->kw + kx) * c, c);
            }
        }
        apply_act(o, (size_t)c, nd->act);
    }
}

static void pool_forward(const rd_node *nd, const float *in, int ih, int iw, float *out, int p0, int p1)
{
    const int c = nd->oc;
    for (int p = p0; p < p1; p++) {
        int oy = p / nd->ow, ox = p % nd->ow, count = 0;
        float *o = out + (size_t)p * c;
        for (int ky = 0; ky < nd->kh; ky++) {
            int iy = oy * nd->sh - nd->pad_t + ky;
            if (iy < 0 || iy >= ih) continue;
            for (int kx = 0; kx < nd->kw; kx++) {
                int ix = ox * nd->sw - nd->pad_l + kx;
                if (ix < 0 || ix >= iw) continue;
                const float *ip = in + ((size_t)iy * iw + ix) * c;
                if (count == 0)
                    memcpy(o, ip, (size_t)c * sizeof(float));
                else if (nd->op == RD_OP_MAXPOOL)
                    v_max_acc(o, ip, c);
                else
                    v_add_acc(o, ip, c);
                count++;
            }
        }
        if (count == 0) { /* window entirely in padding (padding < kernel makes this rare) */
            for (int ch = 0; ch < c; ch++) o[ch] = nd->op == RD_OP_MAXPOOL ? -INFINITY : 0.0f;
        } else if (nd->op == RD_OP_AVGPOOL && count > 1) {
            float inv = 1.0f / (float)count;
            for (int ch = 0; ch < c; ch++) o[ch] *= inv;
        }
        apply_act(o, (size_t)c, nd->act);
    }
}

static void add_forward(const rd_node *nd, const float *a, const float *b, float *out, int p0, int p1)
{
    size_t i = (size_t)p0 * nd->oc, n = (size_t)p1 * nd->oc;
#ifdef RD_GRAPH_X86
    if (have_avx512()) {
        add512(a + i, b + i, out + i, n - i, nd->act);
        return;
    }
#endif
    if (nd->act == RD_ACT_RELU)
        for (; i + 4 <= n; i += 4) rd_v4_st(out + i, v_relu(rd_v4_ld(a + i) + rd_v4_ld(b + i)));
    else if (nd->act == RD_ACT_RELU6)
        for (; i + 4 <= n; i += 4) rd_v4_st(out + i, v_relu6(rd_v4_ld(a + i) + rd_v4_ld(b + i)));
    else
        for (; i + 4 <= n; i += 4) rd_v4_st(out + i, rd_v4_ld(a + i) + rd_v4_ld(b + i));
    for (; i < n; i++) out[i] = s_act(a[i] + b[i], nd->act);
}

static void concat_forward(const rd_node *nd, const rd_node *na, const float *a, const float *b, float *out, int p0,
                           int p1)
{
    const size_t ca = (size_t)na->oc, cb = (size_t)(nd->oc - na->oc);
    for (int p = p0; p < p1; p++) {
        memcpy(out + (size_t)p * nd->oc, a + (size_t)p * ca, ca * sizeof *out);
        memcpy(out + (size_t)p * nd->oc + ca, b + (size_t)p * cb, cb * sizeof *out);
    }
}

/* One node over output pixels [p0, p1); `col` is this task's im2col block. */
typedef struct node_job {
    const rd_node *nd, *src;
    const float *in0, *in1;
    float *out;
    float *const *cols;
    int ntasks;
} node_job;

static void run_node_part(const node_job *j, int task)
{
    const rd_node *nd = j->nd;
    const int m = nd->oh * nd->ow;
    const int p0 = (int)((long long)m * task / j->ntasks), p1 = (int)((long long)m * (task + 1) / j->ntasks);
    switch (nd->op) {
    case RD_OP_CONV: conv_forward(nd, j->in0, j->src->oh, j->src->ow, j->out, j->cols[task], p0, p1); break;
    case RD_OP_DWCONV: dwconv_forward(nd, j->in0, j->src->oh, j->src->ow, j->out, p0, p1); break;
    case RD_OP_ADD: add_forward(nd, j->in0, j->in1, j->out, p0, p1); break;
    case RD_OP_CONCAT: concat_forward(nd, j->src, j->in0, j->in1, j->out, p0, p1); break;
    case RD_OP_MAXPOOL:
    case RD_OP_AVGPOOL: pool_forward(nd, j->in0, j->src->oh, j->src->ow, j->out, p0, p1); break;
    default: break;
    }
}

static void node_task(void *ctx, int task) { run_node_part((const node_job *)ctx, task); }

/* A conv with fewer output pixels than channels (the deep layers) is split by
 * output channels instead: each thread then packs only its share of the
 * weights, which at this size cost as much to pack as to multiply.  Per row
 * block: the team builds the im2col rows together, then each thread
 * multiplies them by its column slice of W. */
typedef struct col_job {
    const node_job *j;
    int p0, p1; /* block rows */
    const float *a;
} col_job;

static void im2col_task(void *ctx, int task)
{
    const col_job *c = ctx;
    const rd_node *nd = c->j->nd;
    const int rows = c->p1 - c->p0, r0 = c->p0 + (int)((long long)rows * task / c->j->ntasks),
              r1 = c->p0 + (int)((long long)rows * (task + 1) / c->j->ntasks);
    if (r1 > r0)
        im2col(nd, c->j->in0, c->j->src->oh, c->j->src->ow, r0, r1,
               c->j->cols[0] + (size_t)(r0 - c->p0) * nd->kh * nd->kw * nd->cin);
}

static void gemm_slice_task(void *ctx, int task)
{
    const col_job *c = ctx;
    const int n = c->j->nd->cout, nt = c->j->ntasks;
    int n0 = (int)((long long)n * task / nt) / 16 * 16, n1 = task == nt - 1 ? n : (int)((long long)n * (task + 1) / nt) / 16 * 16;
    gemm_block(c->j->nd, c->a, c->p0, c->p1, n0, n1, c->j->out);
}

static void conv_split_n(rd_team *team, const node_job *j)
{
    const rd_node *nd = j->nd;
    const int m = nd->oh * nd->ow;
    col_job c = {j, 0, m, j->in0};
    if (!needs_im2col(nd)) {
        rd_team_run(team, gemm_slice_task, &c, j->ntasks);
        return;
    }
    const int rows = im2col_rows(nd);
    for (int p = 0; p < m; p += rows) {
        c.p0 = p;
        c.p1 = p + rows < m ? p + rows : m;
        c.a = j->cols[0];
        rd_team_run(team, im2col_task, &c, j->ntasks);
        rd_team_run(team, gemm_slice_task, &c, j->ntasks);
    }
}

static int team_threads(const rd_team *team)
{
    int n = team ? rd_team_size(team) : 1;
    return n < 1 ? 1 : (n > RD_GRAPH_MAX_TEAM ? RD_GRAPH_MAX_TEAM : n);
}

size_t rd_graph_scratch_team(const rd_graph *g, int nthreads)
{
    if (nthreads < 1) nthreads = 1;
    if (nthreads > RD_GRAPH_MAX_TEAM) nthreads = RD_GRAPH_MAX_TEAM;
    return g->scratch_bytes + (size_t)(nthreads - 1) * rd_arena_need(g->col_floats * sizeof(float));
}

rd_status rd_graph_forward(const rd_graph *g, const float *input, rd_arena *a, rd_tensor *levels, rd_err *err)
{
    return rd_graph_forward_team(g, input, a, NULL, levels, err);
}

rd_status rd_graph_forward_team(const rd_graph *g, const float *input, rd_arena *a, rd_team *team, rd_tensor *levels,
                                rd_err *err)
{
    size_t mark = rd_arena_mark(a);
    float **out = NULL, **slot = NULL, *cols[RD_GRAPH_MAX_TEAM] = {NULL};
    const int nt = team_threads(team);
    rd_status st = RD_OK;

    if (!g->plan_s) return rd_err_set(err, RD_ERR_INTERNAL, "graph used before rd_graph_plan");
    out = (float **)rd_arena_alloc(a, (size_t)g->n * sizeof(float *));
    if (!out) goto nomem;
    slot = g->nbufs ? (float **)rd_arena_alloc(a, (size_t)g->nbufs * sizeof(float *)) : NULL;
    if (g->nbufs && !slot) goto nomem;
    for (int k = 0; k < g->nbufs; k++)
        if (!(slot[k] = rd_arena_floats(a, g->buf_floats[k]))) goto nomem;
    for (int t = 0; t < nt && g->col_floats; t++)
        if (!(cols[t] = rd_arena_floats(a, g->col_floats))) goto nomem;

    for (int i = 0; i <= g->last; i++) {
        const rd_node *nd = &g->nodes[i];
        int l = level_of(g, i);
        node_job job;
        if (!nd->needed) continue;
        if (nd->op == RD_OP_INPUT) {
            out[i] = (float *)input;
            continue;
        }
        if ((unsigned)nd->op >= RD_OP_COUNT) {
            st = rd_err_set(err, RD_ERR_INTERNAL, "%s: unknown op %d", nd->name, (int)nd->op);
            goto out;
        }
        out[i] = l >= 0 ? levels[l].data : slot[nd->buf];
        job.nd = nd;
        job.src = &g->nodes[nd->in[0]];
        job.in0 = out[nd->in[0]];
        job.in1 = nd->in[1] >= 0 ? out[nd->in[1]] : NULL;
        job.out = out[i];
        job.cols = cols;
        /* Split by output pixels, but not into slivers: small nodes run whole. */
        job.ntasks = nt;
        if (nd->op == RD_OP_CONV && nt > 1 && nd->oh * nd->ow < nd->cout && nd->cout >= 32 * nt) {
            conv_split_n(team, &job);
            continue;
        }
        while (job.ntasks > 1 && nd->oh * nd->ow / job.ntasks < 16) job.ntasks--;
        if (job.ntasks > 1)
            rd_team_run(team, node_task, &job, job.ntasks);
        else
            run_node_part(&job, 0);
    }
    for (int l = 0; l < g->nlevels; l++) {
        const rd_node *nd = &g->nodes[g->level_nodes[l]];
        levels[l].h = nd->oh;
        levels[l].w = nd->ow;
        levels[l].c = nd->oc;
        if (out[g->level_nodes[l]] != levels[l].data) /* a level listed twice, or the input itself */
            memcpy(levels[l].data, out[g->level_nodes[l]], (size_t)nd->oh * nd->ow * nd->oc * sizeof(float));
    }
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_INTERNAL, "scratch arena too small for the planned forward pass (%zu bytes planned)",
                    rd_graph_scratch_team(g, nt));
out:
    rd_arena_rewind(a, mark);
    return st;
}
