/* score.h — from per-position residuals to an anomaly map and an image score.
 *
 * A scorer turns one level's residuals (n×c) into n per-position anomaly
 * values (higher = more anomalous).  Today's scorer is "residual-norm": ‖r‖₂,
 * the honest ResAD baseline *without* the Feature Constraintor and the
 * normalizing flow (issue 5 adds the learned scorer in the same slot; it
 * returns −logp/C).  Level maps are calibrated per class (z = (d − μ_l)/σ_l,
 * μ/σ from leave-one-out scoring of the references), upsampled bilinearly with
 * align_corners to the working grid (S×S, or H×W for a whole frame), averaged over levels and blurred (Gaussian σ, scipy
 * "reflect").  Image score: the map's max, or the mean of its top-k values. */
#ifndef RD_SCORE_H
#define RD_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "status.h"

typedef enum rd_resid { RD_RESID_X_MINUS_NN, RD_RESID_SQUARED } rd_resid;

/* r = x − x* or (x − x*)² for n rows of c channels; nn[i] indexes pool_rows. */
void rd_residuals(const float *x, const float *pool_rows, const int *nn, size_t n, int c,
                  rd_resid mode, float *r);

/* Residual-norm scorer: out[i] = ‖r_i‖₂. */
void rd_score_residual_norm(const float *r, size_t n, int c, float *out);

/* Adds w·upsample(level) into acc (S×S).  level is h×w; tmp holds S×S floats. */
void rd_score_accumulate(const float *level, int h, int w, float mu, float sigma, float weight,
                         float *acc, int s, float *tmp);
/* The same onto an H×W grid (whole-frame inspection); tmp holds H·W floats. */
void rd_score_accumulate_hw(const float *level, int h, int w, float mu, float sigma, float weight, float *acc, int H,
                            int W, float *tmp);

/* Image score of an n-value map: max (topk_frac <= 0) or mean of the top
 * ceil(topk_frac·n) values.  tmp holds n floats. */
float rd_score_image(const float *map, size_t n, float topk_frac, float *tmp);

/* Mean and population std of n floats (double accumulation). */
void rd_score_moments(const float *x, size_t n, double *mean, double *std);

/* ---- calibration variants (issue 10 item 4: normal structure must not win) ----
 * global     z = (d − μ_l)/σ_l, μ/σ over every leave-one-out (LOO) position
 *            score of the references (the default).
 * position   per-position μ_l(p)/σ_l(p): the mean and mean square over the k
 *            references' LOO maps at p, each blurred on the level grid
 *            (Gaussian, smooth cells), mixed with the global moments by alpha
 *            (rd_score_posstats).  For aligned classes: where the references
 *            themselves vary (edges, seams at fixed places) σ(p) is large.
 * neighbour  d'(p) = d(p) − alpha·(ℓ(nn(p)) − μ_ℓ): ℓ(q) is the LOO score of
 *            the reference feature the position was matched to, μ_ℓ its
 *            level mean (rd_score_nn_adjust); then the global calibration of
 *            the adjusted LOO maps.  Content-adaptive, needs no alignment: a
 *            structure that is rare *among the references* (a seam no other
 *            reference matches) scores high in LOO, and a test position that
 *            falls back on it is discounted by as much.
 * edge       per-ring μ_l(r)/σ_l(r), r = a position's distance in cells to the
 *            nearest frame edge, rings r ≥ R pooled (R = ⌈min(h, w)/4⌉: the
 *            outer quarter of the grid at every level): the moments of every
 *            LOO position of the ring over all k maps, mixed with the global
 *            ones by alpha (rd_score_edgestats).  Needs no alignment: it only
 *            says how the references' own maps behave near the frame's edges,
 *            where the backbone's zero padding changes every feature. */
typedef enum rd_score_calib {
    RD_SCORE_CALIB_GLOBAL,
    RD_SCORE_CALIB_POSITION,
    RD_SCORE_CALIB_NEIGHBOUR,
    RD_SCORE_CALIB_EDGE
} rd_score_calib;

/* Parses "global", "position[:ALPHA]", "neighbour[:ALPHA]", "edge[:ALPHA]" (alpha in [0, 1],
 * default 1).  0 on success, -1 if malformed. */
int rd_score_calib_parse(const char *s, rd_score_calib *mode, float *alpha);
const char *rd_score_calib_name(rd_score_calib mode);

#define RD_SCORE_POS_SD_FLOOR 0.5f /* σ(p) ≥ this · σ_global */

/* Per-position calibration of one level from k LOO maps of h·w values
 * (map i at loo + i·h·w): per position the mean m(p) and mean square s(p)
 * over the maps, each blurred (rd_gauss_blur, sigma = smooth cells; 0 none),
 * then μ(p) = (1−α)μ + α·m̃(p), var(p) = (1−α)(σ² + μ²) + α·s̃(p) − μ(p)²
 * (the moments of the mixture), σ(p) = max(sqrt(var), FLOOR·σ).
 * pmu, psd, tmp: h·w floats each. */
void rd_score_posstats(const float *loo, int k, int h, int w, float mu, float sigma, float alpha, float smooth,
                       float *pmu, float *psd, float *tmp);
/* R, the edge calibration's ring cap on an h×w grid: ⌈min(h, w)/4⌉.  A
 * position's ring is min(its distance in cells to the nearest edge, R). */
int rd_score_edge_rings(int h, int w);
/* Per-ring calibration of one level from k LOO maps (as rd_score_posstats,
 * same mixture with the global μ/σ and the same σ floor), written out per
 * position into pmu/psd (h·w floats each). */
void rd_score_edgestats(const float *loo, int k, int h, int w, float mu, float sigma, float alpha, float *pmu,
                        float *psd);
/* acc (H×W) += weight · upsample((level − pmu)/psd): the per-position z-map
 * at level resolution, then bilinear (align_corners) to the grid; tmp holds
 * h·w + H·W floats. */
void rd_score_accumulate_pos_hw(const float *level, const float *pmu, const float *psd, int h, int w, float weight,
                                float *acc, int H, int W, float *tmp);
/* d[i] −= alpha · (vals[nn[i]] − mu_l) for n positions (vals: the LOO score of each pool row). */
void rd_score_nn_adjust(float *d, const int32_t *nn, const float *vals, size_t n, float mu_l, float alpha);

#endif
