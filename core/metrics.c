/* metrics.c — exact AUROC / AP / F1-max / PRO over an evaluation run.
 *
 * Everything reduces to one pass over (score, tag) pairs sorted by descending
 * score, visiting groups of exactly equal scores as one threshold (the way
 * sklearn's _binary_clf_curve and MVTec's compute_pro collapse ties).  The tag
 * is −1 for a negative (normal pixel / good image) and ≥ 0 for a positive; for
 * pixels it is the global id of the ground-truth region the pixel lies in, so
 * the same sorted array gives pixel AUROC/AP/F1 and the PRO curve.
 *
 * Why exact sorting and not a histogram: thresholds then match the reference
 * implementations bit for bit in grouping, which is what makes heavy ties
 * (flat maps, quantized scores) agree with sklearn to 1e-6.  The price is 8
 * bytes per pixel, capped by max_pixels (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd_sp {
    float s;
    int32_t tag; /* −1 negative, ≥ 0 positive (region id for pixels) */
} rd_sp;

struct rd_metrics_acc {
    size_t max_pixels;
    rd_sp *img;
    size_t n_img, cap_img;
    rd_sp *pix;
    size_t n_pix, cap_pix;
    uint32_t *region_size; /* pixels per region, indexed by region id */
    size_t n_regions, cap_regions;
    int32_t *lab;          /* scratch: per-map region labels */
    uint32_t *stack;       /* scratch: flood-fill stack */
    size_t cap_scratch;
};

#define RD_PRO_FPR_LIMIT 0.3

rd_status rd_metrics_acc_new(size_t max_pixels, rd_metrics_acc **out, rd_err *err)
{
    *out = NULL;
    rd_metrics_acc *a = calloc(1, sizeof *a);
    if (!a) return rd_err_set(err, RD_ERR_NOMEM, "metrics: out of memory");
    a->max_pixels = max_pixels ? max_pixels : RD_METRICS_MAX_PIXELS_DEFAULT;
    *out = a;
    return RD_OK;
}

void rd_metrics_acc_free(rd_metrics_acc *a)
{
    if (!a) return;
    free(a->img);
    free(a->pix);
    free(a->region_size);
    free(a->lab);
    free(a->stack);
    free(a);
}

/* Grows *buf (elements of size el) to hold at least need; doubling. */
static int grow(void **buf, size_t *cap, size_t need, size_t el)
{
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) {
        if (!rd_mul_size(nc, 2, &nc)) return 0;
    }
    size_t bytes;
    if (!rd_mul_size(nc, el, &bytes)) return 0;
    void *p = realloc(*buf, bytes);
    if (!p) return 0;
    *buf = p;
    *cap = nc;
    return 1;
}

rd_status rd_metrics_image_add(rd_metrics_acc *a, float score, int anomalous, rd_err *err)
{
    if (!isfinite(score)) return rd_err_set(err, RD_ERR_ARG, "metrics: image score is not finite");
    if (a->n_img >= RD_METRICS_MAX_IMAGES)
        return rd_err_set(err, RD_ERR_LIMIT, "metrics: over %zu images", RD_METRICS_MAX_IMAGES);
    if (!grow((void **)&a->img, &a->cap_img, a->n_img + 1, sizeof(rd_sp)))
        return rd_err_set(err, RD_ERR_NOMEM, "metrics: out of memory");
    a->img[a->n_img].s = score;
    a->img[a->n_img].tag = anomalous ? 0 : -1;
    a->n_img++;
    return RD_OK;
}

/* Labels the 8-connected components of mask into a->lab (−1 background,
 * first..first+count−1 regions) and records their sizes. */
static rd_status label_regions(rd_metrics_acc *a, const uint8_t *mask, size_t w, size_t h,
                               rd_err *err)
{
    size_t n = w * h;
    for (size_t i = 0; i < n; i++) a->lab[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (!mask[i] || a->lab[i] >= 0) continue;
        if (a->n_regions >= (size_t)INT32_MAX)
            return rd_err_set(err, RD_ERR_LIMIT, "metrics: too many ground-truth regions");
        if (!grow((void **)&a->region_size, &a->cap_regions, a->n_regions + 1, sizeof(uint32_t)))
            return rd_err_set(err, RD_ERR_NOMEM, "metrics: out of memory");
        int32_t id = (int32_t)a->n_regions;
        uint32_t size = 0;
        size_t top = 0;
        a->lab[i] = id;
        a->stack[top++] = (uint32_t)i;
        while (top) {
            uint32_t p = a->stack[--top];
            size++;
            size_t px = p % w, py = p / w;
            for (int dy = -1; dy <= 1; dy++) {
                if ((dy < 0 && py == 0) || (dy > 0 && py + 1 >= h)) continue;
                for (int dx = -1; dx <= 1; dx++) {
                    if ((dx < 0 && px == 0) || (dx > 0 && px + 1 >= w)) continue;
                    size_t q = (py + (size_t)(ptrdiff_t)dy) * w + px + (size_t)(ptrdiff_t)dx;
                    if (mask[q] && a->lab[q] < 0) {
                        a->lab[q] = id;
                        a->stack[top++] = (uint32_t)q; /* each pixel pushed once: top ≤ n */
                    }
                }
            }
        }
        a->region_size[a->n_regions++] = size;
    }
    return RD_OK;
}

rd_status rd_metrics_pixel_add(rd_metrics_acc *a, const float *scores, const uint8_t *mask,
                               size_t w, size_t h, rd_err *err)
{
    size_t n, total;
    if (w == 0 || h == 0) return rd_err_set(err, RD_ERR_ARG, "metrics: empty map");
    if (!rd_mul_size(w, h, &n) || n > (size_t)UINT32_MAX ||
        !rd_add_size(a->n_pix, n, &total) || total > a->max_pixels)
        return rd_err_set(err, RD_ERR_LIMIT,
                          "metrics: %zux%zu map would exceed the %zu-pixel evaluation limit", w, h,
                          a->max_pixels);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return rd_err_set(err, RD_ERR_ARG, "metrics: pixel score %zu is not finite", i);
    if (!grow((void **)&a->pix, &a->cap_pix, total, sizeof(rd_sp)))
        return rd_err_set(err, RD_ERR_NOMEM, "metrics: out of memory for %zu pixels", total);
    if (n > a->cap_scratch) {
        int32_t *lab = realloc(a->lab, n * sizeof *lab);
        if (lab) a->lab = lab;
        uint32_t *st = lab ? realloc(a->stack, n * sizeof *st) : NULL;
        if (st) a->stack = st;
        if (!lab || !st) return rd_err_set(err, RD_ERR_NOMEM, "metrics: out of memory");
        a->cap_scratch = n;
    }
    size_t regions_before = a->n_regions;
    rd_status st = label_regions(a, mask, w, h, err);
    if (st) {
        a->n_regions = regions_before; /* leave the accumulator as it was */
        return st;
    }
    rd_sp *dst = a->pix + a->n_pix;
    for (size_t i = 0; i < n; i++) {
        dst[i].s = scores[i];
        dst[i].tag = a->lab[i];
    }
    a->n_pix = total;
    return RD_OK;
}

static int cmp_desc(const void *pa, const void *pb)
{
    float a = ((const rd_sp *)pa)->s, b = ((const rd_sp *)pb)->s;
    return (a < b) - (a > b);
}

/* AUROC, AP and F1-max of a descending-sorted array. */
static void curve_metrics(const rd_sp *v, size_t n, double *auroc, double *ap, double *f1max)
{
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) npos += v[i].tag >= 0;
    size_t nneg = n - npos;
    *auroc = *ap = *f1max = NAN;
    if (npos == 0) return; /* recall undefined: every metric NaN */
    double P = (double)npos;
    double tp = 0, fp = 0, ptp = 0, pfp = 0, auc = 0, a = 0, best = 0;
    for (size_t i = 0; i < n;) {
        float s = v[i].s;
        for (; i < n && v[i].s == s; i++) {
            if (v[i].tag >= 0) tp += 1;
            else fp += 1;
        }
        auc += (fp - pfp) * (tp + ptp) * 0.5;
        if (tp > ptp) a += (tp - ptp) / P * (tp / (tp + fp));
        double f = 2.0 * tp / (P + tp + fp);
        if (f > best) best = f;
        ptp = tp;
        pfp = fp;
    }
    *ap = a;
    *f1max = best;
    if (nneg) *auroc = auc / (P * (double)nneg);
}

/* Normalized area under the PRO curve (see metrics.h) of the sorted pixels. */
static double pro_metric(const rd_metrics_acc *a)
{
    size_t nneg = 0;
    for (size_t i = 0; i < a->n_pix; i++) nneg += a->pix[i].tag < 0;
    if (a->n_regions == 0 || nneg == 0) return NAN;
    const double lim = RD_PRO_FPR_LIMIT;
    double R = (double)a->n_regions, N = (double)nneg;
    double fp = 0, overlap = 0; /* overlap: sum over regions of covered fraction */
    double x0 = 0, y0 = 0, area = 0;
    for (size_t i = 0; i < a->n_pix;) {
        float s = a->pix[i].s;
        for (; i < a->n_pix && a->pix[i].s == s; i++) {
            int32_t t = a->pix[i].tag;
            if (t < 0) fp += 1;
            else overlap += 1.0 / a->region_size[t];
        }
        double x1 = fp / N, y1 = overlap / R;
        if (y1 > 1) y1 = 1;
        if (x1 <= lim) {
            area += 0.5 * (y0 + y1) * (x1 - x0);
        } else {
            if (x0 < lim) {
                double yi = y0 + (y1 - y0) * (lim - x0) / (x1 - x0);
                area += 0.5 * (yi + y0) * (lim - x0);
            }
            break;
        }
        x0 = x1;
        y0 = y1;
    }
    return area / lim;
}

rd_status rd_metrics_compute(rd_metrics_acc *a, rd_metrics_result *r, rd_err *err)
{
    (void)err;
    memset(r, 0, sizeof *r);
    if (a->n_img) qsort(a->img, a->n_img, sizeof(rd_sp), cmp_desc);
    if (a->n_pix) qsort(a->pix, a->n_pix, sizeof(rd_sp), cmp_desc);
    curve_metrics(a->img, a->n_img, &r->image_auroc, &r->image_ap, &r->image_f1_max);
    curve_metrics(a->pix, a->n_pix, &r->pixel_auroc, &r->pixel_ap, &r->pixel_f1_max);
    r->pro = pro_metric(a);
    r->n_images = a->n_img;
    for (size_t i = 0; i < a->n_img; i++) r->n_anomalous_images += a->img[i].tag >= 0;
    r->n_pixels = a->n_pix;
    for (size_t i = 0; i < a->n_pix; i++) r->n_anomalous_pixels += a->pix[i].tag >= 0;
    r->n_regions = a->n_regions;
    return RD_OK;
}
