/* constraintor.h — ResAD's Feature Constraintor: per level, Conv(C→C, k×k,
 * padding k/2, stride 1) + BatchNorm + ReLU on an h×w×C residual map (HWC).
 *
 * Inference folds BN into the conv (rd_cstr_plan_new): out = relu(col·W'ᵀ + b')
 * with W' = W·γ/σ, b' = (b − μ)·γ/σ + β, σ = √(running_var + eps).  Training
 * runs BN in train mode over the N·h·w positions of a batch (biased variance
 * to normalise, unbiased for the running variance, momentum 0.1, eps 1e-5 —
 * torch's BatchNorm2d) and back-propagates to the conv weight/bias, γ, β and,
 * on request, the input.  Conv is im2col + sgemm (1×1: the map is the matrix).
 *
 * Parameters live in one flat array (w, b, γ, β) so gradients and Adam state
 * are flat arrays of the same length.  Internal weight layout is
 * [cout][ky][kx][cin] (matches the HWC im2col rows); files use torch's
 * [cout][cin][ky][kx].
 *
 * Ownership: rd_cstr_new/rd_cstr_import → rd_cstr_free; plans and workspaces
 * have their own _new/_free.  A plan is read-only and may be shared. */
#ifndef RD_CONSTRAINTOR_H
#define RD_CONSTRAINTOR_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "flow.h" /* RD_LEARN_NAME_MAX */
#include "safetensors.h"
#include "status.h"
#include "team.h"

#define RD_CSTR_MAX_C 4096
#define RD_CSTR_MAX_HW 4096

typedef struct rd_cstr {
    int c, k;        /* channels, kernel size (1 or 3) */
    float eps, momentum;
    size_t nparams;  /* c·k·k·c + 3c */
    float *params;   /* flat trainable parameters: */
    float *w;        /*   c × (k·k·c), [cout][ky][kx][cin] */
    float *b;        /*   c conv bias */
    float *gamma;    /*   c BN weight */
    float *beta;     /*   c BN bias */
    float *run_mean; /* c (buffer, not trained) */
    float *run_var;  /* c */
    float nbt;       /* num_batches_tracked (informational) */
    float cfg_tensor[4]; /* {1, c, k, eps}: the "<prefix>.config" tensor */
} rd_cstr;

/* New constraintor with torch's default init (conv U(±1/√fan_in), BN γ=1 β=0,
 * running mean 0 var 1), drawn from seed.  k must be 1 or 3. */
rd_cstr *rd_cstr_new(int c, int k, uint64_t seed, rd_err *err);
void rd_cstr_free(rd_cstr *m);

/* ---- inference ----------------------------------------------------------- */
typedef struct rd_cstr_plan rd_cstr_plan;
rd_cstr_plan *rd_cstr_plan_new(const rd_cstr *m, rd_err *err);
void rd_cstr_plan_free(rd_cstr_plan *p);
/* Arena bytes rd_cstr_plan_forward needs for an h×w map. */
size_t rd_cstr_plan_scratch(const rd_cstr_plan *p, int h, int w);
/* out (h·w×C) = constraintor(x (h·w×C)); out must not alias x. */
rd_status rd_cstr_plan_forward(const rd_cstr_plan *p, const float *x, int h, int w, float *out, rd_arena *a,
                               rd_err *err) RD_WARN_UNUSED;
/* The same split by map rows across team (team.h; NULL = serial), same
 * scratch: each row block is one single-threaded sgemm, so the result equals
 * the serial one up to the GEMM kernel's rounding for that block size. */
rd_status rd_cstr_plan_forward_team(const rd_cstr_plan *p, const float *x, int h, int w, float *out, rd_team *team,
                                    rd_arena *a, rd_err *err) RD_WARN_UNUSED;
double rd_cstr_plan_macs(const rd_cstr_plan *p, int h, int w);

/* ---- training ------------------------------------------------------------ */
typedef struct rd_cstr_ws rd_cstr_ws;
/* Workspace for batches of up to max_n maps of h×w. */
rd_cstr_ws *rd_cstr_ws_new(const rd_cstr *m, int max_n, int h, int w, rd_err *err);
void rd_cstr_ws_free(rd_cstr_ws *ws);

/* Train-mode forward of n maps x (n×h×w×C) → out (same shape).  With
 * update_stats the running mean/var move by momentum (torch semantics).  x must
 * stay unchanged until the backward (1×1 convs read it there). */
rd_status rd_cstr_train_forward(rd_cstr *m, rd_cstr_ws *ws, const float *x, int n, float *out, int update_stats,
                                rd_err *err) RD_WARN_UNUSED;
/* Backward of the last forward: ADDS ∂loss/∂params to grad (nparams) and, if
 * dx is non-NULL, writes ∂loss/∂x. */
rd_status rd_cstr_train_backward(const rd_cstr *m, rd_cstr_ws *ws, const float *dout, float *grad, float *dx,
                                 rd_err *err) RD_WARN_UNUSED;

/* ---- files --------------------------------------------------------------- */
/* "<prefix>.config" [4] {1, c, k, eps}, "<prefix>.conv.weight" [c, c, k, k]
 * (torch layout), ".conv.bias" [c], ".bn.weight", ".bn.bias", ".bn.running_mean",
 * ".bn.running_var" [c]. */
#define RD_CSTR_TENSORS 7
/* out/names have RD_CSTR_TENSORS slots; wt_torch (c·c·k·k floats, caller
 * memory) receives the transposed weight the export points to. */
rd_status rd_cstr_export(const rd_cstr *m, const char *prefix, float *wt_torch, rd_st_out_tensor *out,
                         char (*names)[RD_LEARN_NAME_MAX], rd_err *err) RD_WARN_UNUSED;
rd_cstr *rd_cstr_import(const rd_st_file *st, const char *prefix, rd_err *err);
rd_status rd_cstr_save(const rd_cstr *m, const char *path, const char *prefix, rd_err *err) RD_WARN_UNUSED;
rd_cstr *rd_cstr_load(const char *path, const char *prefix, rd_err *err);

#endif
