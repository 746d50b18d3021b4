/* losses.h — ResAD's training losses on per-position vectors.
 *
 * Every loss returns its value (double) and ADDS weight·∂loss/∂input to the
 * given gradient array (NULL = value only), so terms combine by calling one
 * after another into the same buffer.  mask[i] = 1 marks an anomalous
 * position (NULL = all normal).  Reductions follow the official code:
 * means over the positions a term applies to; a term with no positions is 0.
 *
 *  - OCC, abnormal-invariant (on constraintor outputs e, inputs r, n×C):
 *      normals:   mean_i (√(‖e_i‖² + 1) − 1)          (pseudo-Huber pull to 0)
 *      anomalies: mean_{i,j} (e_ij − r_ij)²             (F.mse_loss: keep them)
 *  - ML on normal positions, lpc = logp/C:
 *      RD_ML_LOGSIGMOID: mean −log σ(lpc)   (the code's loss)
 *      RD_ML_NLL:        mean −lpc
 *  - BGAD boundary (calculate_log_barrier_bg_spp_loss): with b_a = b_n − τ,
 *      normals with lpc ≤ b_n:   mean softplus(b_n − lpc)
 *      anomalies with lpc ≥ b_a: mean softplus(lpc − b_a)
 *    b_n is an EMA (momentum 0.9, starting at 0 as in the code's
 *    BoundaryAverager) of the β = 5% quantile of the batch's normal lpc
 *    (element ⌊n_normal·β⌋ of the ascending sort, as the code indexes it). */
#ifndef RD_LOSSES_H
#define RD_LOSSES_H

#include <stddef.h>
#include <stdint.h>

typedef struct rd_loss_parts {
    double normal, anomal; /* the two terms before weighting */
    size_t n_normal, n_anomal;
} rd_loss_parts;

double rd_loss_occ(const float *e, const float *r, const uint8_t *mask, size_t n, int c, float weight, float *de,
                   rd_loss_parts *parts);

typedef enum rd_ml_kind { RD_ML_LOGSIGMOID, RD_ML_NLL, RD_ML_KIND_COUNT } rd_ml_kind;

double rd_loss_ml(const float *lpc, const uint8_t *mask, size_t n, rd_ml_kind kind, float weight, float *dlpc);

typedef struct rd_bgad {
    double b_n;     /* EMA of the normal boundary */
    double momentum; /* 0.9 */
    double beta;     /* 0.05 */
    double tau;      /* 0.1 */
    long updates;
} rd_bgad;

void rd_bgad_init(rd_bgad *b);
/* Folds this batch's normal quantile into b_n (no-op without normals).
 * scratch: n floats.  Returns the batch quantile (NAN when no normals). */
double rd_bgad_update(rd_bgad *b, const float *lpc, const uint8_t *mask, size_t n, float *scratch);
double rd_loss_bgad(const rd_bgad *b, const float *lpc, const uint8_t *mask, size_t n, float weight, float *dlpc,
                    rd_loss_parts *parts);

/* Numerically safe softplus and log-sigmoid (used by the losses; exposed for tests). */
double rd_softplus(double x);

#endif
