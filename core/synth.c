/* synth.c — GLASS-style local (image) and global (feature) anomaly synthesis
 * for training (see synth.h).
 *
 * The Perlin field is the classic gradient-noise construction (random unit
 * gradients on a lattice, the quintic fade 6t⁵ − 15t⁴ + 10t³, scaled by √2 as
 * GLASS's rand_perlin_2d) evaluated at rotated coordinates, so the rotation
 * needs no resampling; the lattice wraps, so rotated corners stay defined. */
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIXELS (1u << 26)
#define MAX_PERIODS 64
#define MASK_TRIES 1000
#define PI 3.14159265358979323846

void rd_synth_cfg_default(rd_synth_cfg *c)
{
    c->pmin = 0;
    c->pmax = 6;
    c->thresh = 0.5f;
    c->min_area = 0.005f;
    c->max_area = 0.5f;
    c->beta_mean = 0.5f;
    c->beta_std = 0.1f;
    c->beta_lo = 0.2f;
    c->beta_hi = 0.8f;
    c->p_match = 0.5f;
    c->match_lo = 0.5f;
    c->match_hi = 0.85f;
    c->p_self = 0.3f;
}

void rd_gas_cfg_default(rd_gas_cfg *c)
{
    c->steps = 2;
    c->r1 = 0.5f;
    c->r2 = 1.0f;
    c->eta = 0.1f;
}

static double fade(double t) { return t * t * t * (t * (t * 6 - 15) + 10); }
static int below(rd_rng *r, int n) { return (int)(rd_rng_u64(r) % (uint64_t)n); }
static double uniform(rd_rng *r, double lo, double hi) { return lo + (hi - lo) * rd_rng_uniform(r); }

void rd_synth_perlin(rd_rng *r, int w, int h, int periods_x, int periods_y, double angle, float *out)
{
    double gx[MAX_PERIODS * MAX_PERIODS], gy[MAX_PERIODS * MAX_PERIODS];
    int px = periods_x < 1 ? 1 : periods_x > MAX_PERIODS ? MAX_PERIODS : periods_x;
    int py = periods_y < 1 ? 1 : periods_y > MAX_PERIODS ? MAX_PERIODS : periods_y;
    for (int i = 0; i < px * py; i++) {
        double a = 2 * PI * rd_rng_uniform(r);
        gx[i] = cos(a);
        gy[i] = sin(a);
    }
    const double ca = cos(angle), sa = sin(angle), cx = 0.5 * w, cy = 0.5 * h;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            /* rotated pixel position in lattice units */
            double u = (ca * dx - sa * dy + cx) * px / w, v = (sa * dx + ca * dy + cy) * py / h;
            double fu = floor(u), fv = floor(v), tu = u - fu, tv = v - fv;
            int iu = ((int)fu % px + px) % px, iv = ((int)fv % py + py) % py;
            int iu1 = (iu + 1) % px, iv1 = (iv + 1) % py;
            double n00 = gx[iv * px + iu] * tu + gy[iv * px + iu] * tv;
            double n10 = gx[iv * px + iu1] * (tu - 1) + gy[iv * px + iu1] * tv;
            double n01 = gx[iv1 * px + iu] * tu + gy[iv1 * px + iu] * (tv - 1);
            double n11 = gx[iv1 * px + iu1] * (tu - 1) + gy[iv1 * px + iu1] * (tv - 1);
            double su = fade(tu), sv = fade(tv);
            double a = n00 + (n10 - n00) * su, b = n01 + (n11 - n01) * su;
            out[(size_t)y * w + x] = (float)(1.4142135623730951 * (a + (b - a) * sv));
        }
    }
}

/* one thresholded field with random periods and rotation (GLASS: ±90°) */
static void field(const rd_synth_cfg *c, rd_rng *r, int w, int h, float *buf)
{
    int span = c->pmax > c->pmin ? c->pmax - c->pmin : 1;
    int ex = c->pmin + below(r, span), ey = c->pmin + below(r, span);
    double angle = uniform(r, -PI / 2, PI / 2);
    rd_synth_perlin(r, w, h, 1 << ex, 1 << ey, angle, buf);
}

int rd_synth_mask(const rd_synth_cfg *c, rd_rng *r, int w, int h, uint8_t *mask, float *scratch)
{
    size_t n = (size_t)w * h;
    float *f1 = scratch, *f2 = scratch + n;
    for (int tries = 1; tries <= MASK_TRIES; tries++) {
        field(c, r, w, h, f1);
        field(c, r, w, h, f2);
        double pick = rd_rng_uniform(r); /* GLASS: union, intersection or one field, 1/3 each */
        size_t area = 0;
        for (size_t i = 0; i < n; i++) {
            int a = f1[i] > c->thresh, b = f2[i] > c->thresh;
            mask[i] = (uint8_t)(pick > 2.0 / 3 ? (a | b) : pick > 1.0 / 3 ? (a & b) : a);
            area += mask[i];
        }
        double share = (double)area / (double)n;
        if (share >= c->min_area && share <= c->max_area && area > 0) return tries;
    }
    return 0;
}

/* mirror-reflected coordinate in [0, n) */
static double reflect(double v, int n)
{
    double p = 2.0 * n;
    v = fmod(v, p);
    if (v < 0) v += p;
    if (v >= n) v = p - v - 1e-9;
    if (v < 0) v = 0;
    if (v > n - 1) v = n - 1;
    return v;
}

/* Texture T (base's size, 3 floats per pixel, 0..255): src warped by a random
 * rotation (±45°), scale [0.75, 1.5], flips and offset, bilinear with mirrored
 * borders, then brightness, contrast and saturation jitter in [0.8, 1.2]. */
static void texture(rd_rng *r, const rd_image *src, int w, int h, float *t)
{
    double ang = uniform(r, -PI / 4, PI / 4), sc = uniform(r, 0.75, 1.5);
    double fx = rd_rng_uniform(r) < 0.5 ? -1 : 1, fy = rd_rng_uniform(r) < 0.5 ? -1 : 1;
    double ox = uniform(r, 0, src->w), oy = uniform(r, 0, src->h);
    double ca = cos(ang) / sc, sa = sin(ang) / sc;
    double bright = uniform(r, 0.8, 1.2), contrast = uniform(r, 0.8, 1.2), sat = uniform(r, 0.8, 1.2);
    double sum = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = fx * (x - 0.5 * w), dy = fy * (y - 0.5 * h);
            double u = reflect(ca * dx - sa * dy + ox, src->w), v = reflect(sa * dx + ca * dy + oy, src->h);
            int u0 = (int)u, v0 = (int)v, u1 = u0 + 1 < src->w ? u0 + 1 : u0, v1 = v0 + 1 < src->h ? v0 + 1 : v0;
            double au = u - u0, av = v - v0;
            float *o = t + ((size_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++) {
                double p00 = src->rgb[((size_t)v0 * src->w + u0) * 3 + k], p10 = src->rgb[((size_t)v0 * src->w + u1) * 3 + k];
                double p01 = src->rgb[((size_t)v1 * src->w + u0) * 3 + k], p11 = src->rgb[((size_t)v1 * src->w + u1) * 3 + k];
                double a = p00 + (p10 - p00) * au, b = p01 + (p11 - p01) * au;
                o[k] = (float)((a + (b - a) * av) * bright);
            }
            sum += 0.299 * o[0] + 0.587 * o[1] + 0.114 * o[2];
        }
    double mean = sum / ((double)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float *o = t + i * 3;
        double g = 0.299 * o[0] + 0.587 * o[1] + 0.114 * o[2];
        for (int k = 0; k < 3; k++) {
            double v = g + (o[k] - g) * sat;     /* saturation about the pixel's grey */
            v = mean + (v - mean) * contrast;     /* contrast about the frame's mean grey */
            o[k] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* Per channel: T inside the mask gets the base's mean and standard deviation there. */
static void match_colour(const rd_image *base, const uint8_t *mask, float *t)
{
    size_t n = (size_t)base->w * base->h, cnt = 0;
    double sb[3] = {0}, sb2[3] = {0}, st[3] = {0}, st2[3] = {0};
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        cnt++;
        for (int k = 0; k < 3; k++) {
            double b = base->rgb[i * 3 + k], v = t[i * 3 + k];
            sb[k] += b, sb2[k] += b * b, st[k] += v, st2[k] += v * v;
        }
    }
    if (!cnt) return;
    double mb[3], mt[3], gain[3];
    for (int k = 0; k < 3; k++) {
        mb[k] = sb[k] / cnt;
        mt[k] = st[k] / cnt;
        double vb = sb2[k] / cnt - mb[k] * mb[k], vt = st2[k] / cnt - mt[k] * mt[k];
        double sdb = sqrt(vb > 0 ? vb : 0), sdt = sqrt(vt > 0 ? vt : 0);
        gain[k] = sdt > 1.0 ? sdb / sdt : 1.0; /* a flat texture keeps its (zero) contrast */
    }
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        for (int k = 0; k < 3; k++) {
            double v = (t[i * 3 + k] - mt[k]) * gain[k] + mb[k];
            t[i * 3 + k] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

rd_status rd_synth_local(const rd_synth_cfg *c, rd_rng *r, const rd_image *base, const rd_image *foreign,
                         rd_image *out, uint8_t *mask, rd_synth_info *info, rd_err *err)
{
    rd_status st = RD_OK;
    float *scratch = NULL, *t = NULL;
    rd_synth_info inf;
    memset(&inf, 0, sizeof inf);
    memset(out, 0, sizeof *out);
    if (!base || !base->rgb || base->w < 2 || base->h < 2 || (size_t)base->w * base->h > MAX_PIXELS)
        return rd_err_set(err, RD_ERR_ARG, "synthesis: base image missing or of a size not handled");
    if (foreign && (!foreign->rgb || foreign->w < 2 || foreign->h < 2))
        return rd_err_set(err, RD_ERR_ARG, "synthesis: empty foreign image");
    if (!(c->min_area >= 0 && c->min_area <= c->max_area && c->max_area <= 1) || c->pmin < 0 || c->pmax > 6 ||
        c->pmin >= c->pmax)
        return rd_err_set(err, RD_ERR_ARG, "synthesis: bad mask settings");
    const int w = base->w, h = base->h;
    const size_t n = (size_t)w * h;
    scratch = malloc(2 * n * sizeof(float));
    t = malloc(3 * n * sizeof(float));
    out->rgb = malloc(3 * n);
    if (!scratch || !t || !out->rgb) {
        st = rd_err_set(err, RD_ERR_NOMEM, "synthesis: out of memory");
        goto out;
    }
    out->w = w;
    out->h = h;
    inf.tries = rd_synth_mask(c, r, w, h, mask, scratch);
    if (!inf.tries) {
        st = rd_err_set(err, RD_ERR_STATE, "synthesis: no mask with an area in [%g, %g] in %d draws", c->min_area,
                        c->max_area, MASK_TRIES);
        goto out;
    }
    inf.self = !foreign || rd_rng_uniform(r) < c->p_self;
    texture(r, inf.self ? base : foreign, w, h, t);
    inf.matched = rd_rng_uniform(r) < c->p_match;
    if (inf.matched) {
        match_colour(base, mask, t);
        inf.beta = (float)uniform(r, c->match_lo, c->match_hi);
    } else {
        double b = c->beta_mean + c->beta_std * rd_rng_normal(r);
        inf.beta = (float)(b < c->beta_lo ? c->beta_lo : b > c->beta_hi ? c->beta_hi : b);
    }
    size_t area = 0;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            uint8_t b = base->rgb[i * 3 + k];
            if (!mask[i]) {
                out->rgb[i * 3 + k] = b;
                continue;
            }
            double v = (1.0 - inf.beta) * t[i * 3 + k] + inf.beta * b;
            out->rgb[i * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
        }
        area += mask[i];
    }
    inf.area = (double)area / (double)n;
out:
    if (st != RD_OK) rd_image_release(out);
    free(scratch);
    free(t);
    if (info) *info = inf;
    return st;
}

double rd_gas_unit(const float *x, size_t n, int c)
{
    double s = 0;
    for (size_t i = 0; i < n * (size_t)c; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0;
}

void rd_gas_project(float *g, const float *x, size_t n, int c, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) {
        float *gi = g + i * (size_t)c;
        const float *xi = x + i * (size_t)c;
        double q = 0;
        for (int j = 0; j < c; j++) q += ((double)gi[j] - xi[j]) * ((double)gi[j] - xi[j]);
        double norm = sqrt(q);
        if (norm <= 0) continue;
        double want = norm < lo ? lo : norm > hi ? hi : norm;
        if (want == norm) continue;
        double s = want / norm;
        for (int j = 0; j < c; j++) gi[j] = (float)(xi[j] + s * ((double)gi[j] - xi[j]));
    }
}

rd_status rd_gas_synth(const rd_gas_cfg *c, rd_rng *r, const rd_flow *f, rd_flow_ws *ws, const float *x,
                       const int32_t *py, const int32_t *px, size_t n, double u, float *g, float *grad, float *lpc,
                       float *dlpc, float *dx, rd_err *err)
{
    const int C = f->cfg.c;
    if (c->steps < 0 || !(c->r1 >= 0 && c->r1 <= c->r2) || !(c->eta >= 0))
        return rd_err_set(err, RD_ERR_ARG, "global synthesis: bad settings");
    if (n == 0) return RD_OK;
    const double lo = c->r1 * u, hi = c->r2 * u, sigma = lo / sqrt((double)C), step = c->eta * u;
    for (size_t i = 0; i < n * (size_t)C; i++) g[i] = (float)(x[i] + sigma * rd_rng_normal(r));
    rd_gas_project(g, x, n, C, lo, hi);
    for (int s = 0; s < c->steps; s++) {
        rd_status st = rd_flow_train_forward(f, ws, g, py, px, n, lpc, err);
        if (st != RD_OK) return st;
        for (size_t i = 0; i < n; i++) dlpc[i] = 1.0f; /* ∂lpc_i/∂g_i per row; its sign is handled below */
        memset(grad, 0, f->nparams * sizeof(float));
        st = rd_flow_train_backward(f, ws, dlpc, grad, dx, err);
        if (st != RD_OK) return st;
        for (size_t i = 0; i < n; i++) {
            float *gi = g + i * (size_t)C;
            const float *di = dx + i * (size_t)C;
            double q = 0;
            for (int j = 0; j < C; j++) q += (double)di[j] * di[j];
            if (!(q > 0) || !isfinite(q)) continue;
            double k = step / sqrt(q); /* descend lpc = ascend the NLL, unit direction */
            for (int j = 0; j < C; j++) gi[j] = (float)(gi[j] - k * di[j]);
        }
        rd_gas_project(g, x, n, C, lo, hi);
    }
    return RD_OK;
}
