/* graph.h — a frozen CNN as a list of ops, and the engine that runs it.
 *
 * Both backbone families end up here: the ResNet builder (backbone_resnet.c)
 * emits nodes from torchvision tensor names, the Keras translator
 * (backbone_keras.c) from the MobileNetV2 layer list.  Nodes are in
 * topological order; node 0 is the input (S×S×3, already normalized).
 * BatchNorm is folded into the preceding conv at build time (w' = w·γ/σ,
 * b' = β − μ·γ/σ), so the ops are few: conv (any kernel/stride/padding,
 * asymmetric padding for Keras "same"), depthwise conv, add, max/avg pool,
 * channel concatenation (two inputs; n-way as a chain), each with an optional
 * ReLU/ReLU6 fused at the end (not concat).
 *
 * Conv is im2col + OpenBLAS cblas_sgemm over HWC data; 1×1 stride-1 convs skip
 * im2col.  rd_graph_plan computes every node's output shape for an input size S
 * and the scratch bytes a worker needs (activation buffers are reused once no
 * later node reads them); rd_graph_forward then never allocates.
 *
 * Ownership: a graph owns its nodes' weights; after rd_graph_plan it is
 * read-only and may be shared by any number of workers, each with its own arena. */
#ifndef RD_GRAPH_H
#define RD_GRAPH_H

#include <stddef.h>

#include "arena.h"
#include "status.h"
#include "tensor.h"

typedef enum rd_op {
    RD_OP_INPUT,
    RD_OP_CONV,    /* dense conv, weights HWIO: [kh][kw][cin][cout], bias[cout] */
    RD_OP_DWCONV,  /* depthwise, multiplier 1: weights [kh][kw][c], bias[c] */
    RD_OP_ADD,     /* in[0] + in[1] */
    RD_OP_MAXPOOL, /* padding counts as -inf */
    RD_OP_AVGPOOL, /* padding excluded from the count */
    RD_OP_CONCAT,  /* in[0]'s channels then in[1]'s, same height and width */
    RD_OP_COUNT
} rd_op;

typedef enum rd_act { RD_ACT_NONE, RD_ACT_RELU, RD_ACT_RELU6, RD_ACT_COUNT } rd_act;

typedef struct rd_node {
    rd_op op;
    char name[64];
    int in[2];                      /* producer node indices (-1 = none) */
    int kh, kw, sh, sw;             /* kernel and stride */
    int pad_t, pad_l, pad_b, pad_r; /* zero padding (conv) / ignored padding (pool) */
    int div;                        /* > 0: the input's height and width must be multiples of it
                                       (TF "same" padding at a stride over 1 is fixed only then) */
    int cin, cout;
    float *w, *b; /* owned by the graph (malloc); b may be NULL = zero */
    rd_act act;
    /* filled by rd_graph_plan: */
    int oh, ow, oc;
    int buf;    /* activation buffer slot; -1 = external (the input, or a level's caller memory) */
    int needed; /* 1 if some declared level depends on this node (others are not run) */
} rd_node;

typedef struct rd_graph {
    rd_node *nodes;
    int n, cap;
    int level_nodes[RD_MAX_LEVELS]; /* nodes whose outputs are the feature levels */
    int nlevels;
    int last; /* last node needed to compute all levels */
    /* plan */
    int plan_s;         /* nonzero once planned (= plan_h) */
    int plan_h, plan_w; /* planned input size */
    int borrowed;       /* 1: a rd_graph_share copy; node weights belong to the source graph */
    int nbufs;
    size_t *buf_floats;
    size_t scratch_bytes;
    size_t col_floats; /* one im2col block (each team thread has its own) */
} rd_graph;

rd_graph *rd_graph_new(void);
void rd_graph_free(rd_graph *g);

/* Builders.  Each returns the new node's index or -1 on allocation failure.
 * w/b ownership passes to the graph (_take): they are freed with it, also on
 * failure.  Padding is given explicitly (t, l, b, r). */
int rd_graph_input(rd_graph *g);
int rd_graph_conv_take(rd_graph *g, const char *name, int in, int kh, int kw, int sh, int sw,
                       int pt, int pl, int pb, int pr, int cin, int cout, float *w, float *b,
                       rd_act act);
int rd_graph_dwconv_take(rd_graph *g, const char *name, int in, int kh, int kw, int sh, int sw,
                         int pt, int pl, int pb, int pr, int c, float *w, float *b, rd_act act);
int rd_graph_add(rd_graph *g, const char *name, int a, int b, rd_act act);
int rd_graph_concat(rd_graph *g, const char *name, int a, int b);
/* Requires node's input to be a multiple of div in both dimensions at plan time. */
void rd_graph_set_div(rd_graph *g, int node, int div);
int rd_graph_pool(rd_graph *g, const char *name, rd_op op, int in, int kh, int kw, int sh, int sw,
                  int pt, int pl, int pb, int pr);
/* Sets the activation of an existing node (used when a ReLU layer follows). */
void rd_graph_set_act(rd_graph *g, int node, rd_act act);
/* Folds an inference BatchNorm into conv/dwconv node `node`. */
rd_status rd_graph_fold_bn(rd_graph *g, int node, const float *gamma, const float *beta,
                           const float *mean, const float *var, float eps, rd_err *err) RD_WARN_UNUSED;
/* Name lookup, -1 if absent. */
int rd_graph_find(const rd_graph *g, const char *name);
/* Declares the feature levels (node indices, in output order). */
rd_status rd_graph_set_levels(rd_graph *g, const int *nodes, int n, rd_err *err) RD_WARN_UNUSED;

/* Largest input side rd_graph_plan accepts. */
#define RD_GRAPH_MAX_S 8192

/* Shapes + buffer plan for an S×S input; returns the arena bytes a worker needs
 * for rd_graph_forward (input buffer included: a caller may first take the
 * S·S·3 input floats from the same arena, then call forward).  Must be called (once per S)
 * before forward; not thread-safe, do it at load. */
rd_status rd_graph_plan(rd_graph *g, int s, size_t *scratch_bytes, rd_err *err) RD_WARN_UNUSED;
/* The same for an h×w input (whole-frame inspection: any aspect ratio). */
rd_status rd_graph_plan_hw(rd_graph *g, int h, int w, size_t *scratch_bytes, rd_err *err) RD_WARN_UNUSED;

/* A copy of g's node list sharing its weights (not copied, not freed by the
 * copy), to be planned at another input size: one backbone, several working
 * geometries.  g must outlive the copy; free the copy with rd_graph_free. */
rd_graph *rd_graph_share(const rd_graph *g, rd_err *err);

/* Runs the graph on an S×S×3 HWC input (S as planned).  Level outputs are
 * written to levels[i] whose data must point to caller memory of
 * oh·ow·oc floats each (rd_graph_level_shape).  Scratch comes from `a` and is
 * given back before returning.  Thread-safe for distinct arenas. */
rd_status rd_graph_forward(const rd_graph *g, const float *input, rd_arena *a, rd_tensor *levels,
                           rd_err *err) RD_WARN_UNUSED;

/* The same with the work of each node split by output pixels across a team
 * (core/team.h; NULL = serial): every thread builds its own im2col blocks and
 * runs its own sgemm, so the caller should run OpenBLAS single-threaded
 * (rd_blas_set_threads(1)) while a team of n does the work.  The arena needs
 * rd_graph_scratch_team(g, n) bytes. */
#define RD_GRAPH_MAX_TEAM 64
struct rd_team;
rd_status rd_graph_forward_team(const rd_graph *g, const float *input, rd_arena *a, struct rd_team *team,
                                rd_tensor *levels, rd_err *err) RD_WARN_UNUSED;
size_t rd_graph_scratch_team(const rd_graph *g, int nthreads);

void rd_graph_level_shape(const rd_graph *g, int level, int *h, int *w, int *c);

/* Multiply-accumulates of one forward pass up to the last level (after plan). */
double rd_graph_macs(const rd_graph *g);

#endif
