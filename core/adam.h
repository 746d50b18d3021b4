/* adam.h — torch.optim.Adam over a flat parameter array, and the MultiStepLR
 * schedule the official ResAD code uses.
 *
 * Step t (from 1): g ← grad + wd·p (torch's weight_decay is L2 added to the
 * gradient, not decoupled), m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
 * p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps) — the same operation order as
 * torch's single-tensor implementation, so one step matches it to rounding.
 * Ownership: rd_adam_init allocates the moments, rd_adam_release frees them. */
#ifndef RD_ADAM_H
#define RD_ADAM_H

#include <stddef.h>

#include "status.h"

typedef struct rd_adam {
    size_t n;
    float lr, beta1, beta2, eps, wd;
    long t;
    float *m, *v;
} rd_adam;

/* lr and weight decay given; β = (0.9, 0.999), eps 1e-8 as torch. */
rd_status rd_adam_init(rd_adam *a, size_t n, float lr, float wd, rd_err *err) RD_WARN_UNUSED;
void rd_adam_release(rd_adam *a);
/* One step on p[n] with gradient g[n] (g is not modified). */
void rd_adam_step(rd_adam *a, float *p, const float *g);

/* MultiStepLR: base · γ^(number of milestones ≤ epoch). */
float rd_adam_multistep_lr(float base, int epoch, const int *milestones, int nmilestones, float gamma);

#endif
