/* synth.h — anomaly synthesis for training, after GLASS (Chen et al., "A
 * Unified Anomaly Synthesis Strategy with Gradient Ascent for Industrial
 * Anomaly Detection and Localization", ECCV 2024; official code
 * cqylunlun/GLASS, read, not copied).  Two kinds, both used by `resad train`
 * as abnormal samples for the flow's BGAD loss (and, for the local ones, the
 * constraintor's OCC invariance term) next to the dataset's real defects:
 *
 * Local, image space (GLASS's LAS): a Perlin-noise mask — one thresholded
 * field, or the union or intersection of two, each with 2^[pmin, pmax)
 * lattice periods per axis and a random rotation — filled with foreign
 * texture: another image (another known class's) or a transformed patch of the
 * image itself, warped by a random rotation/scale/flip and colour-jittered, and
 * blended: out = base·(1 − m) + m·((1 − β)·T + β·base), β ~ N(0.5, 0.1)
 * clipped to [0.2, 0.8] as GLASS.  A share p_match of them is low-contrast on
 * purpose: the texture's per-channel mean and standard deviation inside the
 * mask are matched to the surface's before blending and β is drawn from
 * [match_lo, match_hi] (more of the surface kept), so only structure differs —
 * the kind of defect the benchmark found at chance (issue 10).
 *
 * Global, feature space (GLASS's GAS, with the flow's likelihood in place of
 * GLASS's discriminator): for normal rows x_i (n×C) at positions (py, px),
 *   g_i = x_i + ε_i,  ε_i ~ N(0, σ²I), σ = r1·u/√C,
 *   `steps` times:  g_i ← g_i − η·u·∇lpc(g_i)/‖∇lpc(g_i)‖   (ascent on the NLL)
 *                   h = g_i − x_i,  g_i ← x_i + h·clamp(‖h‖, r1·u, r2·u)/‖h‖
 * where lpc = logp/C of the flow and u = the RMS row norm of x (the unit the
 * shell [r1, r2] is given in, so one setting fits every level and scale).
 * The gradient is the flow's input gradient (rd_flow_train_backward's dx).
 *
 * Pure computation, deterministic for an rd_rng state; no I/O, no globals. */
#ifndef RD_SYNTH_H
#define RD_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "image.h"
#include "rng.h"
#include "status.h"

typedef struct rd_synth_cfg {
    int pmin, pmax;           /* lattice periods 2^[pmin, pmax) per axis (GLASS: 0, 6) */
    float thresh;             /* field threshold (GLASS 0.5) */
    float min_area, max_area; /* accepted mask area as a share of the image (0.005, 0.5) */
    float beta_mean, beta_std, beta_lo, beta_hi; /* 0.5, 0.1, 0.2, 0.8 (GLASS) */
    float p_match;            /* share of low-contrast anomalies (0.5) */
    float match_lo, match_hi; /* their β range (0.5, 0.85) */
    float p_self;             /* share textured from the image itself (0.3); the rest use `foreign` */
} rd_synth_cfg;

void rd_synth_cfg_default(rd_synth_cfg *c);

/* What rd_synth_local drew (logs, tests). */
typedef struct rd_synth_info {
    double area; /* mask share of the image */
    float beta;
    int matched; /* colour-matched (low-contrast) */
    int self;    /* texture from the image itself */
    int tries;   /* masks drawn until one had an accepted area */
} rd_synth_info;

/* One Perlin field on w×h (values about in [−1, 1]): `periods_x`×`periods_y`
 * lattice cells over the frame, rotated by `angle` radians about the centre,
 * gradients from r.  out: w·h floats.  Exposed for tests. */
void rd_synth_perlin(rd_rng *r, int w, int h, int periods_x, int periods_y, double angle, float *out);

/* A Perlin mask (w·h bytes, 1 = anomalous) with an area in [min_area,
 * max_area]; scratch: 2·w·h floats.  Returns the number of tries (≥ 1), or 0
 * when 1000 draws gave no accepted mask (then mask holds the last draw). */
int rd_synth_mask(const rd_synth_cfg *c, rd_rng *r, int w, int h, uint8_t *mask, float *scratch);

/* A local anomaly on `base`: *out (allocated, base's size; free with
 * rd_image_release) and mask (base.w·base.h bytes).  foreign: the texture
 * source when not drawing from the image itself (NULL = always itself).
 * Images up to 1 << 26 pixels. */
rd_status rd_synth_local(const rd_synth_cfg *c, rd_rng *r, const rd_image *base, const rd_image *foreign,
                         rd_image *out, uint8_t *mask, rd_synth_info *info, rd_err *err) RD_WARN_UNUSED;

typedef struct rd_gas_cfg {
    int steps;    /* gradient-ascent steps (default 2) */
    float r1, r2; /* the shell around x, in units of u (default 0.5, 1.0) */
    float eta;    /* step length in units of u (default 0.1) */
} rd_gas_cfg;

void rd_gas_cfg_default(rd_gas_cfg *c);

/* The RMS row norm of x (n×c), the unit u above (0 for n = 0). */
double rd_gas_unit(const float *x, size_t n, int c);

/* Global anomalies: g (n×C) from the normal rows x (n×C) at (py, px), unit u.
 * Uses the flow's training workspace ws (its cache is overwritten; n ≤ its
 * capacity) and scratch: grad (f->nparams floats, overwritten: the parameter
 * gradients of the ascent are discarded), lpc[n], dlpc[n], dx[n·C].  With
 * steps = 0 it is Gaussian noise projected into the shell. */
rd_status rd_gas_synth(const rd_gas_cfg *c, rd_rng *r, const rd_flow *f, rd_flow_ws *ws, const float *x,
                       const int32_t *py, const int32_t *px, size_t n, double u, float *g, float *grad, float *lpc,
                       float *dlpc, float *dx, rd_err *err) RD_WARN_UNUSED;

/* Projects each row of g into the shell [lo, hi] around x (‖g − x‖ clamped;
 * a row equal to x is left as is).  Exposed for tests. */
void rd_gas_project(float *g, const float *x, size_t n, int c, double lo, double hi);

#endif
