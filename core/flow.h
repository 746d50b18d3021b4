/* flow.h — ResAD's Feature Distribution Estimator: a conditional normalizing
 * flow per feature level, built from K FrEIA-style AllInOneBlocks.
 *
 * One block, for rows u (n×C) with condition c (n×P, 2-D sin/cos positional
 * encoding of the row's (y, x) in its h×w map):
 *   x1 = u[:, :cp]  (passive, cp = C − C/2)     x2 = u[:, cp:]  (active, ca = C/2)
 *   a  = 0.1 · (W2 · relu(W1 · [x1, c] + b1) + b2)   W1: hid×(cp+P), W2: 2ca×hid
 *   s  = clamp · tanh(a[:, :ca]);  t = a[:, ca:]
 *   v  = [x1, x2 · exp(s) + t]
 *   y  = (v ⊙ g + offset) · Rᵀ    g = 0.2·log(1 + exp(0.5·γ)) (torch Softplus(β=0.5)
 *                                  with its threshold 20), R a fixed Haar rotation
 *   logdet += Σ s + Σ log g
 * logp = −C/2·log 2π − ½‖z‖² + logdet, reported as logp/C ("lpc").
 * Defaults match the official ResAD code: hid = 2·(cp + P), clamp 1.9, P 256,
 * γ initialised so g = 1, offset 0, torch Linear init (uniform ±1/√fan_in).
 *
 * What the condition encodes is the flow's `pos` mode (rd_flow_pos, stored in
 * its config tensor, so a model file says how its condition is defined):
 *   ABS   absolute (y, x) of the row (the paper's; config format 1): the flow
 *         can learn that border positions look different (it does: ~1.2 units
 *         lower at the borders of good images after training on S×S crops);
 *   NONE  no position: every row encodes (0, 0), the condition is a constant
 *         bias (config format 2);
 *   SHIFT (y + oy, x + ox) with a random translation (oy, ox) in [0, R]² per
 *         image and level during training, R = rd_flow_shift_range (a fraction
 *         `shift` of the grid), so an encoding value is seen at the border and
 *         inside alike; inference encodes i·s + R/2 (the middle of the range).
 * The positional condition is separable: c = [pe(x) (P/2), pe(y) (P/2)], so
 * W1_c·c = A[x] + B[y].  Neither inference nor training ever forms the n×P
 * condition rows: the first layer is x1·W1_xᵀ (a GEMM with inner size cp) plus
 * two table rows.  The last rotation is skipped at inference (‖z‖ does not
 * change under a rotation), and g, offset and the 0.1 are folded into the
 * matrices by rd_flow_plan_new.
 *
 * Parameters live in one flat float array (f->params, f->nparams) so gradients and
 * Adam state are flat arrays of the same length; rd_flow_block_view gives the
 * per-block pointers into any such array.  The rotations are not parameters.
 *
 * Ownership: rd_flow_new/rd_flow_import return heap objects freed with
 * rd_flow_free; a plan (rd_flow_plan_new) copies what it needs and is freed with
 * rd_flow_plan_free.  Flows and plans are read-only after creation (training
 * mutates the parameter array in place; do not share a flow being trained).
 * Thread-safety: a plan may be shared by any number of workers. */
#ifndef RD_FLOW_H
#define RD_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "safetensors.h"
#include "status.h"
#include "team.h"

#define RD_FLOW_MAX_C 4096
#define RD_FLOW_MAX_K 64
#define RD_FLOW_MAX_HID 65536
#define RD_FLOW_MAX_HW 4096 /* largest h or w of a level */
#define RD_FLOW_DEFAULT_P 256
#define RD_FLOW_DEFAULT_CLAMP 1.9f

typedef enum rd_flow_pos {
    RD_FLOW_POS_ABS = 0,  /* absolute (y, x): format 1, every model before this mode existed */
    RD_FLOW_POS_NONE = 1, /* constant condition */
    RD_FLOW_POS_SHIFT = 2 /* randomly translated during training */
} rd_flow_pos;
#define RD_FLOW_DEFAULT_SHIFT 1.0f

typedef struct rd_flow_cfg {
    int c;       /* channels */
    int k;       /* blocks */
    int p;       /* positional channels, multiple of 4 (default 256) */
    int hid;     /* subnet hidden width; 0 = 2·(cp + p) as in the code */
    float clamp; /* soft clamp α of s (default 1.9) */
    int pos;     /* rd_flow_pos (default ABS) */
    float shift; /* SHIFT only: translation range as a fraction of the grid, (0, 4] */
} rd_flow_cfg;

/* Per-block views into a flat parameter (or gradient, or Adam) array. */
typedef struct rd_flow_block {
    float *w1;     /* hid × (cp + p), torch layout [out][in]: columns 0..cp-1 see x1 */
    float *b1;     /* hid */
    float *w2;     /* 2ca × hid */
    float *b2;     /* 2ca */
    float *gamma;  /* c: global scale, pre-activation */
    float *offset; /* c */
} rd_flow_block;

typedef struct rd_flow {
    rd_flow_cfg cfg;
    int cp, ca, in; /* passive, active, subnet input = cp + p */
    size_t nparams; /* trainable floats */
    size_t block_stride;
    float *params;  /* nparams floats, block after block */
    float *rot;     /* k × c × c fixed rotations (row-major, y = v·Rᵀ) */
    float cfg_tensor[8]; /* {1, c, k, p, hid, clamp} (ABS) or {2, c, k, p, hid, clamp, pos, shift}:
                          * the "<prefix>.config" tensor */
    int cfg_len;         /* 6 or 8 */
} rd_flow;

/* Fills cfg's defaults for c channels and k blocks. */
void rd_flow_cfg_default(rd_flow_cfg *cfg, int c, int k);

/* A new flow initialised as torch/FrEIA would (Linear init, g = 1, offset 0)
 * with Haar-random rotations; everything is drawn from `seed` (deterministic). */
rd_flow *rd_flow_new(const rd_flow_cfg *cfg, uint64_t seed, rd_err *err);
void rd_flow_free(rd_flow *f);

rd_flow_block rd_flow_block_view(const rd_flow *f, float *flat, int block);

/* SHIFT: the largest translation for an axis of n positions, ⌊shift·(n − 1) + ½⌋
 * (0 for the other modes).  Training positions on that axis run 0..n−1+R. */
int rd_flow_shift_range(const rd_flow_cfg *cfg, int n);

/* Parses "abs", "none", "shift" or "shift:F" into cfg->pos/shift; 0 if invalid. */
int rd_flow_pos_parse(const char *s, rd_flow_cfg *cfg);
/* The mode as text ("abs", "none", "shift:0.5") for metadata. */
void rd_flow_pos_name(const rd_flow_cfg *cfg, char *buf, size_t len);

/* The P-channel positional encoding of (y, x) — exposed for tests. */
void rd_flow_posenc(int p, int y, int x, float *out);

/* Deterministic Haar-random matrix of SO(c) (QR of a Gaussian, sign-fixed,
 * det +1), row-major.  Returns 0 on allocation failure.  Exposed for tests. */
int rd_flow_haar(int c, uint64_t seed, float *out);

/* ---- inference ----------------------------------------------------------- */

typedef struct rd_flow_plan rd_flow_plan;

/* Precomputes everything that does not depend on the input for an h×w level:
 * the condition tables A/B, folded scale/offset, 0.1·W2, the log-det constant. */
rd_flow_plan *rd_flow_plan_new(const rd_flow *f, int h, int w, rd_err *err);

/* The positional condition at any geometry.  The model is trained on one
 * square grid per level (trained_h × trained_w, e.g. 56×56 at level 1 for
 * S = 224) with integer positions 0..n−1.  On another h×w grid (whole-frame
 * inspection: 16:9 frames, larger working sizes) each axis is rescaled so its
 * positions span the same range: position i encodes i·s with
 * s = (n_trained − 1)/(n − 1) (rd_flow_pos_scale), i.e. the first and last
 * row/column of any frame see the trained grid's borders and everything in
 * between is interpolated; nothing is extrapolated beyond what training saw.
 * At the trained size s = 1 and the plan is bit-identical to rd_flow_plan_new.
 * NONE encodes every row as (0, 0); SHIFT encodes i·s + R/2 with R the
 * trained grid's rd_flow_shift_range. */
float rd_flow_pos_scale(int n, int n_trained);
rd_flow_plan *rd_flow_plan_new_at(const rd_flow *f, int h, int w, int trained_h, int trained_w, rd_err *err);
void rd_flow_plan_free(rd_flow_plan *p);

/* Arena bytes rd_flow_plan_lpc needs. */
size_t rd_flow_plan_scratch(const rd_flow_plan *p);

/* logp/C for each of the h·w rows of x (HWC, row r = y·w + x).  Writes lpc[h·w].
 * Scratch from `a` is given back before returning.  Thread-safe per arena. */
rd_status rd_flow_plan_lpc(const rd_flow_plan *p, const float *x, float *lpc, rd_arena *a,
                           rd_err *err) RD_WARN_UNUSED;

/* The same for rows [r0, r1) only (x and lpc are still the whole level's
 * arrays).  Rows are independent: a worker may split a level across its team
 * threads, each with its own arena of rd_flow_plan_scratch bytes — best with
 * OpenBLAS at 1 thread, since the chunk GEMMs are small (256 rows). */
rd_status rd_flow_plan_lpc_range(const rd_flow_plan *p, const float *x, size_t r0, size_t r1, float *lpc,
                                 rd_arena *a, rd_err *err) RD_WARN_UNUSED;

/* The whole level split into contiguous row ranges over a worker's team
 * (team may be NULL = serial), each thread with its own slice of `a`
 * (rd_flow_plan_scratch_team bytes for the team's size).  Same values as
 * rd_flow_plan_lpc, bit for bit.  Measured ~2× on 2 cores with OpenBLAS at 1
 * thread, where threading the small GEMMs themselves (OpenBLAS at 2) is slower
 * than 1 thread. */
#define RD_FLOW_MAX_TEAM 64
size_t rd_flow_plan_scratch_team(const rd_flow_plan *p, int nthreads);
rd_status rd_flow_plan_lpc_team(const rd_flow_plan *p, const float *x, float *lpc, rd_team *team, rd_arena *a,
                                rd_err *err) RD_WARN_UNUSED;

/* Multiply-accumulates per image of rd_flow_plan_lpc (GEMMs only). */
double rd_flow_plan_macs(const rd_flow_plan *p);

/* ---- training ------------------------------------------------------------ */

/* Workspace of a training forward: caches every block's activations for the
 * backward.  Caller-owned; sized for up to `cap` rows and positions with
 * y < max_h, x < max_w (SHIFT: the caller adds the image's translation to the
 * positions, so max_h = h + R).  About cap·(K·(hid + 2C + C/2) + 5C + hid) floats:
 * 8192 rows, C 24, K 8, default hidden ≈ 178 MB. */
typedef struct rd_flow_ws rd_flow_ws;

rd_flow_ws *rd_flow_ws_new(const rd_flow *f, size_t cap, int max_h, int max_w, rd_err *err);
void rd_flow_ws_free(rd_flow_ws *ws);

/* Forward of n rows x (n×C) at positions (py[i], px[i]) with the current
 * parameters; writes lpc[n] = logp/C and keeps what the backward needs. */
rd_status rd_flow_train_forward(const rd_flow *f, rd_flow_ws *ws, const float *x, const int32_t *py,
                                const int32_t *px, size_t n, float *lpc, rd_err *err) RD_WARN_UNUSED;

/* Backward of the last forward: dlpc[n] = ∂loss/∂lpc.  ADDS ∂loss/∂params to
 * grad (nparams floats, same layout as f->params) and, if dx is non-NULL,
 * writes ∂loss/∂x (n×C). */
rd_status rd_flow_train_backward(const rd_flow *f, rd_flow_ws *ws, const float *dlpc, float *grad,
                                 float *dx, rd_err *err) RD_WARN_UNUSED;

/* ---- files ----------------------------------------------------------------- */

/* Tensors written per flow: "<prefix>.config" [6] = {1, c, k, p, hid, clamp}
 * for ABS (as every earlier model), [8] = {2, c, k, p, hid, clamp, pos, shift} otherwise,
 * and per block b "<prefix>.block<b>.subnet.0.weight" [hid, cp+p],
 * ".subnet.0.bias", ".subnet.2.weight" [2ca, hid], ".subnet.2.bias",
 * ".global_scale" [c], ".global_offset" [c], ".rot" [c, c]. */
#define RD_LEARN_NAME_MAX 128
size_t rd_flow_tensor_count(const rd_flow *f);
/* Fills out[rd_flow_tensor_count] (data point into f; names into names[]). */
rd_status rd_flow_export(const rd_flow *f, const char *prefix, rd_st_out_tensor *out,
                         char (*names)[RD_LEARN_NAME_MAX], rd_err *err) RD_WARN_UNUSED;
/* Reads a flow written by rd_flow_export; validates every shape and that the
 * rotations are orthogonal. */
rd_flow *rd_flow_import(const rd_st_file *st, const char *prefix, rd_err *err);

/* Single-flow convenience wrappers (tests, tools). */
rd_status rd_flow_save(const rd_flow *f, const char *path, const char *prefix, rd_err *err) RD_WARN_UNUSED;
rd_flow *rd_flow_load(const char *path, const char *prefix, rd_err *err);

#endif
