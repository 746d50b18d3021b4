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

#endif
