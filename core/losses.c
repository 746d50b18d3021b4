/* losses.c — OCC, flow maximum-likelihood and BGAD boundary losses (see losses.h). */
#include "losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double rd_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

double rd_loss_occ(const float *e, const float *r, const uint8_t *mask, size_t n, int c, float weight, float *de,
                   rd_loss_parts *parts)
{
    size_t nn = 0, na = 0;
    double ln = 0, la = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i])
            na++;
        else
            nn++;
    }
    for (size_t i = 0; i < n; i++) {
        const float *ei = e + i * (size_t)c;
        if (mask && mask[i]) {
            const float *ri = r + i * (size_t)c;
            double s = 2.0 * weight / ((double)na * c);
            for (int j = 0; j < c; j++) {
                double d = (double)ei[j] - ri[j];
                la += d * d;
                if (de) de[i * (size_t)c + j] += (float)(s * d);
            }
        } else {
            double q = 0;
            for (int j = 0; j < c; j++) q += (double)ei[j] * ei[j];
            double root = sqrt(q + 1);
            ln += root - 1;
            if (de) {
                double s = weight / ((double)nn * root);
                for (int j = 0; j < c; j++) de[i * (size_t)c + j] += (float)(s * ei[j]);
            }
        }
    }
    ln = nn ? ln / (double)nn : 0;
    la = na ? la / ((double)na * c) : 0;
    if (parts) {
        parts->normal = ln;
        parts->anomal = la;
        parts->n_normal = nn;
        parts->n_anomal = na;
    }
    return weight * (ln + la);
}

double rd_loss_ml(const float *lpc, const uint8_t *mask, size_t n, rd_ml_kind kind, float weight, float *dlpc)
{
    size_t nn = 0;
    double l = 0;
    for (size_t i = 0; i < n; i++)
        if (!(mask && mask[i])) nn++;
    if (!nn) return 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i]) continue;
        double x = lpc[i], g;
        if (kind == RD_ML_NLL) {
            l += -x;
            g = -1;
        } else {
            l += rd_softplus(-x); /* −log σ(x) */
            g = -sigmoid(-x);
        }
        if (dlpc) dlpc[i] += (float)(weight * g / (double)nn);
    }
    return weight * l / (double)nn;
}

void rd_bgad_init(rd_bgad *b)
{
    memset(b, 0, sizeof *b);
    b->momentum = 0.9;
    b->beta = 0.05;
    b->tau = 0.1;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double rd_bgad_update(rd_bgad *b, const float *lpc, const uint8_t *mask, size_t n, float *scratch)
{
    size_t nn = 0;
    for (size_t i = 0; i < n; i++)
        if (!(mask && mask[i])) scratch[nn++] = lpc[i];
    if (!nn) return NAN;
    size_t k = (size_t)((double)nn * b->beta);
    if (k >= nn) k = nn - 1;
    qsort(scratch, nn, sizeof *scratch, cmp_float);
    double q = scratch[k];
    b->b_n = b->b_n * b->momentum + (1 - b->momentum) * q;
    b->updates++;
    return q;
}

double rd_loss_bgad(const rd_bgad *b, const float *lpc, const uint8_t *mask, size_t n, float weight, float *dlpc,
                    rd_loss_parts *parts)
{
    const double bn = b->b_n, ba = b->b_n - b->tau;
    size_t cn = 0, ca = 0;
    double ln = 0, la = 0;
    for (size_t i = 0; i < n; i++) {
        int an = mask && mask[i];
        if (!an && lpc[i] <= bn) cn++;
        if (an && lpc[i] >= ba) ca++;
    }
    for (size_t i = 0; i < n; i++) {
        int an = mask && mask[i];
        double x = lpc[i];
        if (!an && x <= bn) {
            ln += rd_softplus(bn - x);
            if (dlpc) dlpc[i] += (float)(-weight * sigmoid(bn - x) / (double)cn);
        } else if (an && x >= ba) {
            la += rd_softplus(x - ba);
            if (dlpc) dlpc[i] += (float)(weight * sigmoid(x - ba) / (double)ca);
        }
    }
    ln = cn ? ln / (double)cn : 0;
    la = ca ? la / (double)ca : 0;
    if (parts) {
        parts->normal = ln;
        parts->anomal = la;
        parts->n_normal = cn;
        parts->n_anomal = ca;
    }
    return weight * (ln + la);
}
