/* heatmap.c — PNG renderings of anomaly maps over the whole frame (see heatmap.h).
 *
 * Each output row is produced on its own: output pixel centres are mapped
 * into the working grid through the view and the map is sampled bilinearly
 * there, clamped to the inspected rectangle; pixels outside the view's source
 * rectangle are rendered as not inspected.  The view is axis-aligned, so the
 * mapping is separable: each column's and each row's taps are computed once
 * (rd_view_axis_to_grid, the same arithmetic as rd_view_to_grid), and the
 * colormap is tabulated at TURBO_N points per rendering (4× the 256 levels of
 * the published table, so a one-level change of the raw map moves a colour by
 * no more than the polynomial itself does).
 * PNGs are encoded with libpng into a growing memory buffer. */
#include "heatmap.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Turbo colormap (Google, 2019; Apache-2.0): the published polynomial
 * approximation of the 256-entry table, by its author A. Mikhailov. */
void rd_colormap_turbo(float v, uint8_t rgb[3])
{
    double x = v < 0 ? 0 : v > 1 ? 1 : v;
    double x2 = x * x, x3 = x2 * x, x4 = x3 * x, x5 = x4 * x;
    double r = 0.13572138 + 4.61539260 * x - 42.66032258 * x2 + 132.13108234 * x3 - 152.94239396 * x4 + 59.28637943 * x5;
    double g = 0.09140261 + 2.19418839 * x + 4.84296658 * x2 - 14.18503333 * x3 + 4.27729857 * x4 + 2.82956604 * x5;
    double b = 0.10667330 + 12.64194608 * x - 60.58204836 * x2 + 110.36276771 * x3 - 89.90310912 * x4 + 27.34824973 * x5;
    double c[3] = {r, g, b};
    for (int i = 0; i < 3; i++) {
        double t = c[i] < 0 ? 0 : c[i] > 1 ? 1 : c[i];
        rgb[i] = (uint8_t)lround(t * 255.0);
    }
}

#define TURBO_N 1024

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
    int failed;
} membuf;

static void mem_write(png_structp png, png_bytep d, png_size_t n)
{
    membuf *b = png_get_io_ptr(png);
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n) cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->failed = 1;
            png_error(png, "out of memory");
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

/* One axis of the output → grid mapping, computed once per column (or row):
 * the view is axis-aligned, so u depends on x only and v on y only.  in: the
 * output pixel lies inside the view's source; a, b, w: the bilinear taps and
 * weight, clamped to the inspected span [lo, hi); r: the nearest grid index
 * (for the ROI mask), clamped to the grid. */
typedef struct axis_tap {
    int in, a, b, r;
    float w;
} axis_tap;

static void axis_taps(axis_tap *t, const rd_view *vw, int n, int vertical)
{
    const int lo = vertical ? vw->dst_y : vw->dst_x, hi = lo + (vertical ? vw->dst_h : vw->dst_w);
    const int grid = vertical ? vw->work_h : vw->work_w;
    for (int i = 0; i < n; i++) {
        float u;
        t[i].in = rd_view_axis_to_grid(vw, n, i, vertical, &u);
        int r = (int)lroundf(u);
        t[i].r = r < 0 ? 0 : r >= grid ? grid - 1 : r;
        if (u < (float)lo) u = (float)lo;
        if (u > (float)(hi - 1)) u = (float)(hi - 1);
        t[i].a = (int)u;
        t[i].b = t[i].a + 1 < hi ? t[i].a + 1 : t[i].a;
        t[i].w = u - (float)t[i].a;
    }
}

/* Not-inspected pixel of the overlay: grey at half contrast, dark hatching. */
static void not_inspected(const uint8_t *px, int x, int y, uint8_t *o)
{
    int l = (299 * px[0] + 587 * px[1] + 114 * px[2]) / 1000;
    uint8_t g = ((x + y) % 12) < 2 ? 40 : (uint8_t)(96 + l / 2);
    o[0] = o[1] = o[2] = g;
}

static rd_status render(rd_heat_kind kind, const float *map, const rd_view *vw, const uint8_t *roi,
                        const char *crop_text, const rd_image *img, const rd_heat_params *p, rd_png_buf *out,
                        rd_err *err)
{
    png_structp png = NULL;
    png_infop info = NULL;
    membuf mb = {0};
    uint8_t *volatile row = NULL;
    axis_tap *volatile xtap = NULL, *volatile ytap = NULL;
    volatile rd_status st = RD_OK;
    const int W = p->out_w, H = p->out_h;
    const int ch = kind == RD_HEAT_OVERLAY ? 3 : kind == RD_HEAT_RAW ? 2 : 1;

    out->data = NULL;
    out->len = 0;
    if (kind < 0 || kind >= RD_HEAT_COUNT || !map || !vw || W < 1 || H < 1 || vw->work_w < 1 || vw->work_h < 1 ||
        vw->dst_w < 1 || vw->dst_h < 1 || vw->dst_x < 0 || vw->dst_y < 0 || vw->dst_x + vw->dst_w > vw->work_w ||
        vw->dst_y + vw->dst_h > vw->work_h || !(vw->src_w > 0) || !(vw->src_h > 0))
        return rd_err_set(err, RD_ERR_ARG, "heatmap: bad arguments");
    if (kind == RD_HEAT_OVERLAY && (!img || !img->rgb || img->w != W || img->h != H))
        return rd_err_set(err, RD_ERR_ARG, "heatmap: the overlay needs the image at the output size");
    if ((uint64_t)W * (uint64_t)H > 400000000ull) return rd_err_set(err, RD_ERR_LIMIT, "heatmap: %dx%d is too large", W, H);
    row = malloc((size_t)W * ch);
    xtap = malloc((size_t)W * sizeof *xtap);
    ytap = malloc((size_t)H * sizeof *ytap);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!row || !xtap || !ytap || !png || !(info = png_create_info_struct(png))) {
        st = rd_err_set(err, RD_ERR_NOMEM, "heatmap: out of memory");
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = rd_err_set(err, mb.failed ? RD_ERR_NOMEM : RD_ERR_INTERNAL, "heatmap: PNG encoding failed");
        goto out;
    }
    png_set_write_fn(png, &mb, mem_write, mem_flush);
    png_set_compression_level(png, 1); /* speed: heatmaps are rendered per inspection */
    png_set_filter(png, 0, PNG_FILTER_SUB);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
                 ch == 3 ? PNG_COLOR_TYPE_RGB : ch == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    {
        char scale[128], vt[256];
        png_text t[3];
        int nt = 2;
        snprintf(scale, sizeof scale, "lo=%.6g hi=%.6g threshold=%.6g", p->lo, p->hi, p->threshold);
        snprintf(vt, sizeof vt, "src=%.6f,%.6f,%.6f,%.6f dst=%d,%d,%d,%d grid=%dx%d inspected=%.6f%s", vw->src_x,
                 vw->src_y, vw->src_w, vw->src_h, vw->dst_x, vw->dst_y, vw->dst_w, vw->dst_h, vw->work_w, vw->work_h,
                 vw->src_w * vw->src_h * rd_view_roi_share(vw, roi), roi ? " roi=mask" : "");
        memset(t, 0, sizeof t);
        t[0].compression = t[1].compression = t[2].compression = PNG_TEXT_COMPRESSION_NONE;
        t[0].key = (char *)"resadd:scale";
        t[0].text = scale;
        t[1].key = (char *)"resadd:view";
        t[1].text = vt;
        if (crop_text) {
            t[2].key = (char *)"resadd:crop";
            t[2].text = (char *)crop_text;
            nt = 3;
        }
        png_set_text(png, info, t, nt);
    }
    png_write_info(png, info);
    axis_taps(xtap, vw, W, 0);
    axis_taps(ytap, vw, H, 1);
    {
        const float range = p->hi > p->lo ? p->hi - p->lo : 1.0f;
        const int gw = vw->work_w;
        const axis_tap *xt = xtap, *yt = ytap;
        uint8_t turbo[TURBO_N][3]; /* the overlay's only */
        for (int i = 0; kind == RD_HEAT_OVERLAY && i < TURBO_N; i++)
            rd_colormap_turbo((float)i / (TURBO_N - 1), turbo[i]);
        for (int y = 0; y < H; y++) {
            const axis_tap ty = yt[y];
            const float *r0 = map + (size_t)ty.a * gw, *r1 = map + (size_t)ty.b * gw;
            const uint8_t *rr = roi ? roi + (size_t)ty.r * gw : NULL;
            for (int x = 0; x < W; x++) {
                const axis_tap tx = xt[x];
                int in = ty.in && tx.in && (!rr || rr[tx.r]);
                float m = 0.0f;
                if (in) {
                    float top = r0[tx.a] + (r0[tx.b] - r0[tx.a]) * tx.w;
                    float bot = r1[tx.a] + (r1[tx.b] - r1[tx.a]) * tx.w;
                    m = top + (bot - top) * ty.w;
                }
                float t = (m - p->lo) / range;
                t = t > 0 ? (t < 1 ? t : 1) : 0; /* NaN → 0: it indexes the colormap table */
                if (kind == RD_HEAT_RAW) {
                    row[2 * x] = in ? (uint8_t)lroundf(t * 255.0f) : 0;
                    row[2 * x + 1] = in ? 255 : 0;
                } else if (kind == RD_HEAT_MASK) {
                    row[x] = in && m >= p->threshold ? 255 : 0;
                } else {
                    const uint8_t *px = img->rgb + ((size_t)y * W + x) * 3;
                    if (!in) {
                        not_inspected(px, x, y, row + 3 * x);
                        continue;
                    }
                    const uint8_t *c = turbo[(int)(t * (TURBO_N - 1) + 0.5f)];
                    for (int k = 0; k < 3; k++) row[3 * x + k] = (uint8_t)((px[k] + c[k] + 1) / 2);
                }
            }
            png_write_row(png, row);
        }
    }
    png_write_end(png, info);
    out->data = mb.data;
    out->len = mb.len;
    mb.data = NULL;
out:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(mb.data);
    free(row);
    free(xtap);
    free(ytap);
    return st;
}

rd_status rd_heatmap_render_view(rd_heat_kind kind, const float *map, const rd_view *v, const uint8_t *roi,
                                 const rd_image *img, const rd_heat_params *p, rd_png_buf *out, rd_err *err)
{
    return render(kind, map, v, roi, NULL, img, p, out, err);
}

rd_status rd_heatmap_render(rd_heat_kind kind, const float *map, const rd_crop *crop, const rd_image *img,
                            const rd_heat_params *p, rd_png_buf *out, rd_err *err)
{
    rd_view v;
    char cr[160];
    out->data = NULL;
    out->len = 0;
    if (!crop || crop->s < 1 || !(crop->w > 0) || !(crop->h > 0) || p->out_w < 1 || p->out_h < 1)
        return rd_err_set(err, RD_ERR_ARG, "heatmap: bad arguments");
    memset(&v, 0, sizeof v);
    v.img_w = p->out_w;
    v.img_h = p->out_h;
    v.work_w = v.work_h = v.dst_w = v.dst_h = crop->s;
    v.src_x = crop->x / p->out_w;
    v.src_y = crop->y / p->out_h;
    v.src_w = crop->w / p->out_w;
    v.src_h = crop->h / p->out_h;
    snprintf(cr, sizeof cr, "x=%.3f y=%.3f w=%.3f h=%.3f s=%d", crop->x, crop->y, crop->w, crop->h, crop->s);
    return render(kind, map, &v, NULL, cr, img, p, out, err);
}

void rd_png_buf_release(rd_png_buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

rd_status rd_png_buf_save(const rd_png_buf *b, const char *path, rd_err *err)
{
    char tmp[4200];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (!f) return rd_err_set(err, RD_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (fwrite(b->data, 1, b->len, f) != b->len || fflush(f) != 0) {
        fclose(f);
        unlink(tmp);
        return rd_err_set(err, RD_ERR_IO, "%s: write failed", path);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return rd_err_set(err, RD_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return RD_OK;
}
