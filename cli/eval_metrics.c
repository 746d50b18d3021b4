/* eval_metrics.c — the metric bundle of one evaluation run, via core/metrics,
 * and the projection of a working-grid map onto the whole frame. */
#include "eval.h"
#include "metrics.h"

#include <math.h>

rd_status rd_eval_metrics(const float *img_scores, const uint8_t *labels, const float *maps, const uint8_t *gt,
                          int n, const int *h, const int *w, double out[6], rd_err *err)
{
    rd_metrics_acc *acc = NULL;
    rd_metrics_result r;
    size_t total = 0, off = 0;
    for (int i = 0; i < n; i++) total += (size_t)h[i] * (size_t)w[i];
    rd_status st = rd_metrics_acc_new(total, &acc, err);
    for (int i = 0; st == RD_OK && i < n; i++) {
        const size_t hw = (size_t)h[i] * (size_t)w[i];
        st = rd_metrics_image_add(acc, img_scores[i], labels[i], err);
        if (st == RD_OK) st = rd_metrics_pixel_add(acc, maps + off, gt + off, (size_t)w[i], (size_t)h[i], err);
        off += hw;
    }
    if (st == RD_OK) st = rd_metrics_compute(acc, &r, err);
    rd_metrics_acc_free(acc);
    if (st != RD_OK) return st;
    out[0] = r.image_auroc;
    out[1] = r.pixel_auroc;
    out[2] = r.pro;
    out[3] = r.image_f1_max;
    out[4] = r.pixel_f1_max;
    out[5] = r.pixel_ap;
    return RD_OK;
}

/* Bilinear sample at (u, v), clamped to the grid rectangle [x0, x1] × [y0, y1]
 * (the inspected part: padding is never blended in). */
static float sample(const float *m, int w, const int lim[4], float u, float v)
{
    if (u < (float)lim[0]) u = (float)lim[0];
    if (v < (float)lim[2]) v = (float)lim[2];
    if (u > (float)lim[1]) u = (float)lim[1];
    if (v > (float)lim[3]) v = (float)lim[3];
    int x0 = (int)u, y0 = (int)v, x1 = x0 + 1 <= lim[1] ? x0 + 1 : x0, y1 = y0 + 1 <= lim[3] ? y0 + 1 : y0;
    float a = u - (float)x0, b = v - (float)y0;
    const float *r0 = m + (size_t)y0 * w, *r1 = m + (size_t)y1 * w;
    return (1 - b) * ((1 - a) * r0[x0] + a * r0[x1]) + b * ((1 - a) * r1[x0] + a * r1[x1]);
}

double rd_eval_map_to_frame(const float *map, const rd_eval_grid *g, int fw, int fh, float *out)
{
    size_t inspected = 0;
    float lo = INFINITY;
    int lim[4] = {(int)ceil(g->dst_x), (int)ceil(g->dst_x + g->dst_w) - 1, (int)ceil(g->dst_y),
                  (int)ceil(g->dst_y + g->dst_h) - 1};
    if (lim[0] < 0) lim[0] = 0;
    if (lim[2] < 0) lim[2] = 0;
    if (lim[1] > g->map_w - 1) lim[1] = g->map_w - 1;
    if (lim[3] > g->map_h - 1) lim[3] = g->map_h - 1;
    if (lim[1] < lim[0]) lim[1] = lim[0];
    if (lim[3] < lim[2]) lim[3] = lim[2];
    /* rows and columns separately: the mapping is separable */
    for (int y = 0; y < fh; y++) {
        const double ty = ((y + 0.5) / fh - g->src_y) / g->src_h;
        const int iny = ty >= 0 && ty < 1;
        const float v = (float)(g->dst_y + ty * g->dst_h - 0.5);
        for (int x = 0; x < fw; x++) {
            const double tx = ((x + 0.5) / fw - g->src_x) / g->src_w;
            float *o = out + (size_t)y * fw + x;
            if (iny && tx >= 0 && tx < 1) {
                *o = sample(map, g->map_w, lim, (float)(g->dst_x + tx * g->dst_w - 0.5), v);
                if (*o < lo) lo = *o;
                inspected++;
            } else {
                *o = NAN;
            }
        }
    }
    if (!inspected) { /* nothing inspected: the map's own minimum */
        lo = map[0];
        for (size_t i = 1; i < (size_t)g->map_w * g->map_h; i++)
            if (map[i] < lo) lo = map[i];
    }
    for (size_t i = 0, n = (size_t)fw * fh; i < n; i++)
        if (isnan(out[i])) out[i] = lo;
    return (double)inspected / ((double)fw * fh);
}
