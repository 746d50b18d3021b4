/* adam.c — Adam with L2 weight decay, matching torch.optim.Adam (see adam.h). */
#include "adam.h"

#include <math.h>
#include <stdlib.h>

rd_status rd_adam_init(rd_adam *a, size_t n, float lr, float wd, rd_err *err)
{
    a->n = n;
    a->lr = lr;
    a->wd = wd;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->t = 0;
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    if (!a->m || !a->v) {
        rd_adam_release(a);
        return rd_err_set(err, RD_ERR_NOMEM, "optimizer: out of memory");
    }
    return RD_OK;
}

void rd_adam_release(rd_adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void rd_adam_step(rd_adam *a, float *p, const float *g)
{
    a->t++;
    const float b1 = a->beta1, b2 = a->beta2;
    const double bc1 = 1.0 - pow(b1, (double)a->t), bc2 = 1.0 - pow(b2, (double)a->t);
    const float step = (float)(a->lr / bc1), bc2s = (float)sqrt(bc2);
    for (size_t i = 0; i < a->n; i++) {
        float gi = g[i] + a->wd * p[i];
        a->m[i] = a->m[i] * b1 + (1 - b1) * gi;
        a->v[i] = a->v[i] * b2 + (1 - b2) * gi * gi;
        float den = sqrtf(a->v[i]) / bc2s + a->eps;
        p[i] -= step * (a->m[i] / den);
    }
}

float rd_adam_multistep_lr(float base, int epoch, const int *milestones, int nmilestones, float gamma)
{
    float lr = base;
    for (int i = 0; i < nmilestones; i++)
        if (epoch >= milestones[i]) lr *= gamma;
    return lr;
}
