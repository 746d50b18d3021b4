/* regions.c — connected anomalous regions of a map, anomalous area and the
 * bounded confidence (see regions.h).  Two-pass labelling with union-find
 * over 8-connectivity, then one pass of per-component statistics. */
#include "regions.h"

#include <math.h>
#include <stdlib.h>

typedef struct comp {
    rd_region r;
    long first; /* raster index of its first pixel (tie-break) */
    int x1, y1; /* exclusive right/bottom while accumulating */
} comp;

static int find(int *p, int i)
{
    while (p[i] != i) {
        p[i] = p[p[i]];
        i = p[i];
    }
    return i;
}

static void unite(int *p, int a, int b)
{
    a = find(p, a);
    b = find(p, b);
    if (a < b) p[b] = a;
    else if (b < a) p[a] = b;
}

static int by_area(const void *a, const void *b)
{
    const comp *x = a, *y = b;
    if (x->r.area != y->r.area) return x->r.area > y->r.area ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

int rd_regions_find(const float *map, int w, int h, const rd_rect *in, float t, rd_region *out, int max, long *hot,
                    long *inspected)
{
    rd_rect all = {0, 0, w, h}, b = in ? *in : all;
    if (b.x < 0) b.w += b.x, b.x = 0;
    if (b.y < 0) b.h += b.y, b.y = 0;
    if (b.x + b.w > w) b.w = w - b.x;
    if (b.y + b.h > h) b.h = h - b.y;
    *hot = 0;
    *inspected = b.w > 0 && b.h > 0 ? (long)b.w * b.h : 0;
    if (*inspected == 0) return 0;
    size_t n = (size_t)b.w * (size_t)b.h;
    int *lab = malloc(n * sizeof *lab); /* parent index within the box, -1 = cold */
    int *idx = malloc(n * sizeof *idx); /* root -> component number */
    comp *c = NULL;
    int nc = 0, ret = -1;
    if (!lab || !idx) goto out;
    for (int y = 0; y < b.h; y++)
        for (int x = 0; x < b.w; x++) {
            int i = y * b.w + x;
            if (!(map[(size_t)(y + b.y) * w + x + b.x] >= t)) {
                lab[i] = -1;
                continue;
            }
            lab[i] = i;
            (*hot)++;
            /* already visited 8-neighbours: W, NW, N, NE */
            if (x > 0 && lab[i - 1] >= 0) unite(lab, i, i - 1);
            if (y > 0) {
                int up = i - b.w;
                if (x > 0 && lab[up - 1] >= 0) unite(lab, i, up - 1);
                if (lab[up] >= 0) unite(lab, i, up);
                if (x + 1 < b.w && lab[up + 1] >= 0) unite(lab, i, up + 1);
            }
        }
    for (size_t i = 0; i < n; i++)
        if (lab[i] >= 0 && find(lab, (int)i) == (int)i) idx[i] = nc++;
    c = calloc(nc ? (size_t)nc : 1, sizeof *c);
    if (!c) goto out;
    for (int k = 0; k < nc; k++) c[k].first = -1;
    for (int y = 0; y < b.h; y++)
        for (int x = 0; x < b.w; x++) {
            int i = y * b.w + x;
            if (lab[i] < 0) continue;
            comp *k = &c[idx[find(lab, i)]];
            float v = map[(size_t)(y + b.y) * w + x + b.x];
            int gx = x + b.x, gy = y + b.y;
            if (k->first < 0) {
                k->first = i;
                k->r.x = gx, k->r.y = gy, k->x1 = gx + 1, k->y1 = gy + 1;
                k->r.peak = v, k->r.peak_x = gx, k->r.peak_y = gy;
            }
            if (gx < k->r.x) k->r.x = gx;
            if (gx + 1 > k->x1) k->x1 = gx + 1;
            if (gy + 1 > k->y1) k->y1 = gy + 1;
            if (v > k->r.peak) k->r.peak = v, k->r.peak_x = gx, k->r.peak_y = gy;
            k->r.area++;
        }
    for (int k = 0; k < nc; k++) c[k].r.w = c[k].x1 - c[k].r.x, c[k].r.h = c[k].y1 - c[k].r.y;
    qsort(c, (size_t)nc, sizeof *c, by_area);
    for (int k = 0; k < nc && k < max; k++) out[k] = c[k].r;
    ret = nc;
out:
    free(lab);
    free(idx);
    free(c);
    return ret;
}

/* image x (continuous) of grid x-coordinate u */
static double img_x(const rd_view *v, double u)
{
    return v->img_w * (v->src_x + (u - v->dst_x) / v->dst_w * v->src_w);
}

static double img_y(const rd_view *v, double u)
{
    return v->img_h * (v->src_y + (u - v->dst_y) / v->dst_h * v->src_h);
}

static int clampi(double x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : (int)x; }

void rd_regions_to_image(const rd_view *v, rd_region *r, int n)
{
    if (v->dst_w <= 0 || v->dst_h <= 0) return;
    double px = (double)v->img_w * v->src_w / v->dst_w * ((double)v->img_h * v->src_h / v->dst_h);
    for (int i = 0; i < n; i++) {
        int x0 = clampi(floor(img_x(v, r[i].x) + 1e-9), 0, v->img_w);
        int x1 = clampi(ceil(img_x(v, r[i].x + r[i].w) - 1e-9), 0, v->img_w);
        int y0 = clampi(floor(img_y(v, r[i].y) + 1e-9), 0, v->img_h);
        int y1 = clampi(ceil(img_y(v, r[i].y + r[i].h) - 1e-9), 0, v->img_h);
        r[i].x = x0, r[i].y = y0, r[i].w = x1 - x0, r[i].h = y1 - y0;
        long a = lround((double)r[i].area * px);
        r[i].area = a < 1 ? 1 : a;
        r[i].peak_x = clampi(floor(img_x(v, r[i].peak_x + 0.5)), 0, v->img_w - 1);
        r[i].peak_y = clampi(floor(img_y(v, r[i].peak_y + 0.5)), 0, v->img_h - 1);
    }
}

double rd_confidence(double score, double threshold)
{
    double scale = threshold != 0 ? fabs(threshold) : 1.0;
    return 1.0 / (1.0 + exp(-RD_CONF_K * (score - threshold) / scale));
}

double rd_sensitivity_threshold(double threshold, double sensitivity)
{
    return threshold * exp2(1.0 - 2.0 * sensitivity);
}
