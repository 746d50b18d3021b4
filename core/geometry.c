/* geometry.c — inspection geometry and image-to-grid views (see geometry.h). */
#include "geometry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static const char *const fit_names[RD_FIT_COUNT] = {"none", "pad", "stretch", "crop"};

const char *rd_fit_name(rd_fit f) { return (unsigned)f < RD_FIT_COUNT ? fit_names[f] : "?"; }

int rd_fit_parse(const char *s, rd_fit *out)
{
    for (int i = 0; i < RD_FIT_COUNT; i++)
        if (!strcmp(s, fit_names[i])) {
            *out = (rd_fit)i;
            return 0;
        }
    return -1;
}

int rd_geometry_long_side(int s, double ratio, int stride)
{
    double v = floor((double)s * ratio / stride + 0.5) * stride;
    if (v < stride) v = stride;
    if (v > 1e9) v = 1e9;
    return (int)v;
}

rd_status rd_geometry_init(rd_geometry *g, int fw, int fh, const rd_geo_opts *o, int default_s, int stride,
                           rd_err *err)
{
    rd_geo_opts d = {0};
    int s;
    if (!o) o = &d;
    memset(g, 0, sizeof *g);
    if (fw < 1 || fh < 1) return rd_err_set(err, RD_ERR_ARG, "frame %dx%d is empty", fw, fh);
    if (stride < 1 || stride > 256) return rd_err_set(err, RD_ERR_ARG, "grid stride %d out of range", stride);
    if ((unsigned)o->fit >= RD_FIT_COUNT) return rd_err_set(err, RD_ERR_ARG, "unknown fit policy %d", (int)o->fit);
    if (o->alpha < 0 || o->alpha > 1) return rd_err_set(err, RD_ERR_ARG, "unknown alpha policy %d", o->alpha);
    s = o->s > 0 ? o->s : default_s;
    if (s < 32 || s > RD_GEO_MAX_SIDE)
        return rd_err_set(err, RD_ERR_LIMIT, "working size %d outside 32..%d", s, RD_GEO_MAX_SIDE);
    g->frame_w = fw;
    g->frame_h = fh;
    if (o->roi.w != 0 || o->roi.h != 0) {
        const rd_rect *r = &o->roi;
        if (r->w < 1 || r->h < 1 || r->x < 0 || r->y < 0 || r->x > fw - r->w || r->y > fh - r->h)
            return rd_err_set(err, RD_ERR_ARG, "ROI %d,%d,%d,%d (x,y,w,h) is not inside the %dx%d frame", r->x, r->y,
                              r->w, r->h, fw, fh);
        g->roi = *r;
    } else {
        g->roi = (rd_rect){0, 0, fw, fh};
    }
    g->s = s;
    g->stride = stride;
    {
        int ss = rd_geometry_long_side(s, 1.0, stride); /* S itself on the stride */
        if (g->roi.w >= g->roi.h) {
            g->work_h = ss;
            g->work_w = rd_geometry_long_side(ss, (double)g->roi.w / g->roi.h, stride);
        } else {
            g->work_w = ss;
            g->work_h = rd_geometry_long_side(ss, (double)g->roi.h / g->roi.w, stride);
        }
    }
    if (g->work_w > RD_GEO_MAX_SIDE || g->work_h > RD_GEO_MAX_SIDE ||
        (uint64_t)g->work_w * (uint64_t)g->work_h > RD_GEO_MAX_PIXELS)
        return rd_err_set(err, RD_ERR_LIMIT,
                          "working grid %dx%d (short side %d, aspect %.3f) exceeds the limits (side %d, %u pixels)",
                          g->work_w, g->work_h, s, (double)g->roi.w / g->roi.h, RD_GEO_MAX_SIDE, RD_GEO_MAX_PIXELS);
    g->fit = o->fit;
    g->alpha = o->alpha;
    g->search_tile = o->search_tile < 0 ? 0 : o->search_tile == 0 ? RD_GEO_SEARCH_TILE : o->search_tile;
    if (g->search_tile && (g->search_tile < stride || g->search_tile % stride))
        return rd_err_set(err, RD_ERR_ARG, "search tile %d must be a multiple of the grid stride %d", g->search_tile,
                          stride);
    return RD_OK;
}

static int aspect_close(double a, double b) { return fabs(a - b) <= RD_GEO_ASPECT_TOL * (a < b ? a : b); }

int rd_geometry_same_aspect(const rd_geometry *g, int w, int h)
{
    return w > 0 && h > 0 && aspect_close((double)w / h, (double)g->frame_w / g->frame_h);
}

int rd_geometry_compatible(const rd_geometry *a, const rd_geometry *b)
{
    return a->work_w == b->work_w && a->work_h == b->work_h && a->stride == b->stride &&
           aspect_close((double)a->frame_w / a->frame_h, (double)b->frame_w / b->frame_h) &&
           aspect_close((double)a->roi.w / a->frame_w, (double)b->roi.w / b->frame_w) &&
           aspect_close((double)a->roi.h / a->frame_h, (double)b->roi.h / b->frame_h);
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void rd_geometry_describe(const rd_geometry *g, char *buf, size_t len)
{
    int d = gcd(g->frame_w, g->frame_h);
    int an = g->frame_w / d, ad = g->frame_h / d;
    if (an > 64 || ad > 64)
        snprintf(buf, len, "%dx%d (aspect %.3f, working %dx%d)", g->frame_w, g->frame_h,
                 (double)g->frame_w / g->frame_h, g->work_w, g->work_h);
    else
        snprintf(buf, len, "%dx%d (%d:%d, working %dx%d)", g->frame_w, g->frame_h, an, ad, g->work_w, g->work_h);
}

void rd_geometry_format(const rd_geometry *g, char *buf, size_t len)
{
    snprintf(buf, len, "frame=%dx%d roi=%d,%d,%d,%d work=%dx%d s=%d stride=%d fit=%s alpha=%s search=%d", g->frame_w,
             g->frame_h, g->roi.x, g->roi.y, g->roi.w, g->roi.h, g->work_w, g->work_h, g->s, g->stride,
             rd_fit_name(g->fit), g->alpha ? "ignore" : "composite", g->search_tile);
}

rd_status rd_geometry_parse(const char *text, rd_geometry *g, rd_err *err)
{
    rd_geometry t;
    rd_geo_opts o = {0};
    char fit[16], alpha[16];
    int n = 0, fw, fh, ww, wh;
    if (!text || strlen(text) >= RD_GEO_TEXT_MAX ||
        sscanf(text, "frame=%dx%d roi=%d,%d,%d,%d work=%dx%d s=%d stride=%d fit=%15s alpha=%15s search=%d%n", &fw, &fh,
               &o.roi.x, &o.roi.y, &o.roi.w, &o.roi.h, &ww, &wh, &o.s, &t.stride, fit, alpha, &o.search_tile,
               &n) != 13 ||
        text[n] != '\0')
        return rd_err_set(err, RD_ERR_FORMAT, "geometry: cannot parse \"%.80s\"", text ? text : "");
    if (rd_fit_parse(fit, &o.fit)) return rd_err_set(err, RD_ERR_FORMAT, "geometry: unknown fit \"%s\"", fit);
    if (!strcmp(alpha, "composite")) o.alpha = 0;
    else if (!strcmp(alpha, "ignore")) o.alpha = 1;
    else return rd_err_set(err, RD_ERR_FORMAT, "geometry: unknown alpha \"%s\"", alpha);
    if (o.search_tile == 0) o.search_tile = -1;
    if (rd_geometry_init(&t, fw, fh, &o, o.s, t.stride, err) != RD_OK) return err ? err->code : RD_ERR_FORMAT;
    if (t.work_w != ww || t.work_h != wh)
        return rd_err_set(err, RD_ERR_FORMAT, "geometry: working grid %dx%d does not follow from the rest (%dx%d)", ww,
                          wh, t.work_w, t.work_h);
    *g = t;
    return RD_OK;
}

/* One axis: image extent n, frame-from-image x_f = k·x + b, ROI [r0, r0 + rn)
 * in frame pixels, grid side gn.  Writes the integer source span and the
 * destination span. */
static void axis_map(int n, double k, double b, int r0, int rn, int gn, int *s0, int *s1, int *d0, int *d1,
                     double *keep /* share of the ROI's pre-image inside the image */)
{
    double a0 = (r0 - b) / k, a1 = (r0 + rn - b) / k; /* ROI pre-image, image pixels */
    double c0 = a0 < 0 ? 0 : a0, c1 = a1 > n ? n : a1;
    int i0 = (int)floor(c0 + 0.5), i1 = (int)floor(c1 + 0.5);
    if (i1 <= i0) i1 = i0 + 1;
    if (i1 > n) i1 = n, i0 = i1 - 1 < i0 ? i1 - 1 : i0;
    if (i0 < 0) i0 = 0;
    *keep = (c1 - c0) / (a1 - a0);
    *s0 = i0;
    *s1 = i1;
    double u0 = ((k * i0 + b) - r0) * gn / rn, u1 = ((k * i1 + b) - r0) * gn / rn;
    int j0 = (int)floor(u0 + 0.5), j1 = (int)floor(u1 + 0.5);
    if (j0 < 0) j0 = 0;
    if (j1 > gn) j1 = gn;
    if (j1 <= j0) j1 = j0 + 1 <= gn ? j0 + 1 : gn, j0 = j1 - 1;
    *d0 = j0;
    *d1 = j1;
}

rd_status rd_view_for_image(const rd_geometry *g, int w, int h, rd_view *v, rd_err *err)
{
    double kx, ky, bx = 0, by = 0, keepx, keepy;
    int sx0, sx1, sy0, sy1, dx0, dx1, dy0, dy1;
    memset(v, 0, sizeof *v);
    if (w < 1 || h < 1) return rd_err_set(err, RD_ERR_ARG, "image %dx%d is empty", w, h);
    kx = (double)g->frame_w / w;
    ky = (double)g->frame_h / h;
    if (!rd_geometry_same_aspect(g, w, h)) {
        char want[128];
        rd_geometry_describe(g, want, sizeof want);
        switch (g->fit) {
        case RD_FIT_NONE:
            return rd_err_set(err, RD_ERR_MISMATCH,
                              "image %dx%d (aspect %.3f) does not match the class geometry %s; create the class with "
                              "fit pad, stretch or crop to accept other aspect ratios",
                              w, h, (double)w / h, want);
        case RD_FIT_PAD:
        case RD_FIT_CROP: {
            double k = g->fit == RD_FIT_PAD ? fmin(kx, ky) : fmax(kx, ky);
            kx = ky = k;
            bx = (g->frame_w - w * k) / 2;
            by = (g->frame_h - h * k) / 2;
            break;
        }
        default: break; /* stretch: each axis on its own */
        }
        v->fitted = 1;
    }
    axis_map(w, kx, bx, g->roi.x, g->roi.w, g->work_w, &sx0, &sx1, &dx0, &dx1, &keepx);
    axis_map(h, ky, by, g->roi.y, g->roi.h, g->work_h, &sy0, &sy1, &dy0, &dy1, &keepy);
    v->img_w = w;
    v->img_h = h;
    v->work_w = g->work_w;
    v->work_h = g->work_h;
    v->src_x = (double)sx0 / w;
    v->src_w = (double)(sx1 - sx0) / w;
    v->src_y = (double)sy0 / h;
    v->src_h = (double)(sy1 - sy0) / h;
    v->dst_x = dx0;
    v->dst_w = dx1 - dx0;
    v->dst_y = dy0;
    v->dst_h = dy1 - dy0;
    v->inspected_frac = v->src_w * v->src_h;
    (void)keepx;
    (void)keepy;
    /* fit crop: the share of the image that falls outside the frame */
    v->left_out_frac = g->fit == RD_FIT_CROP && v->fitted
                           ? 1.0 - fmin(1.0, g->frame_w / (kx * w)) * fmin(1.0, g->frame_h / (ky * h))
                           : 0.0;
    if (v->left_out_frac < 1e-9) v->left_out_frac = 0;
    return RD_OK;
}

void rd_view_src_pixels(const rd_view *v, int w, int h, rd_rect *r)
{
    int x0 = (int)floor(v->src_x * w + 0.5), y0 = (int)floor(v->src_y * h + 0.5);
    int x1 = (int)floor((v->src_x + v->src_w) * w + 0.5), y1 = (int)floor((v->src_y + v->src_h) * h + 0.5);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    if (x1 <= x0) x1 = x0 + 1 <= w ? x0 + 1 : w, x0 = x1 - 1;
    if (y1 <= y0) y1 = y0 + 1 <= h ? y0 + 1 : h, y0 = y1 - 1;
    *r = (rd_rect){x0, y0, x1 - x0, y1 - y0};
}

int rd_view_axis_to_grid(const rd_view *v, int out_n, int i, int vertical, float *pos)
{
    double f = (i + 0.5) / out_n;
    double t = vertical ? (f - v->src_y) / v->src_h : (f - v->src_x) / v->src_w;
    *pos = vertical ? (float)(v->dst_y + t * v->dst_h - 0.5) : (float)(v->dst_x + t * v->dst_w - 0.5);
    return t >= 0 && t < 1;
}

int rd_view_to_grid(const rd_view *v, int out_w, int out_h, int x, int y, float *u, float *vv)
{
    int in_x = rd_view_axis_to_grid(v, out_w, x, 0, u);
    int in_y = rd_view_axis_to_grid(v, out_h, y, 1, vv);
    return in_x && in_y;
}

void rd_view_mask(const rd_view *v, const rd_image *m, uint8_t *out)
{
    memset(out, 0, (size_t)v->work_w * v->work_h);
    for (int j = v->dst_y; j < v->dst_y + v->dst_h; j++) {
        double fy = v->src_y + ((j + 0.5 - v->dst_y) / v->dst_h) * v->src_h;
        int sy = (int)(fy * m->h);
        if (sy >= m->h) sy = m->h - 1;
        if (sy < 0) sy = 0;
        for (int i = v->dst_x; i < v->dst_x + v->dst_w; i++) {
            double fx = v->src_x + ((i + 0.5 - v->dst_x) / v->dst_w) * v->src_w;
            int sx = (int)(fx * m->w);
            if (sx >= m->w) sx = m->w - 1;
            if (sx < 0) sx = 0;
            out[(size_t)j * v->work_w + i] = m->rgb[((size_t)sy * m->w + sx) * 3] > 127;
        }
    }
}

rd_status rd_geometry_roi_grid(const rd_geometry *g, const rd_image *mask, uint8_t **out, double *frac, rd_err *err)
{
    rd_view v;
    size_t n = (size_t)g->work_w * g->work_h;
    *out = NULL;
    if (frac) *frac = 0;
    if (!mask || !mask->rgb || mask->w < 1 || mask->h < 1) return rd_err_set(err, RD_ERR_ARG, "roi mask: no image");
    if (!rd_geometry_same_aspect(g, mask->w, mask->h)) {
        char want[128];
        rd_geometry_describe(g, want, sizeof want);
        return rd_err_set(err, RD_ERR_MISMATCH,
                          "roi mask %dx%d (aspect %.3f) does not match the class frame %s: draw the mask at the "
                          "frame's aspect ratio",
                          mask->w, mask->h, (double)mask->w / mask->h, want);
    }
    rd_status st = rd_view_for_image(g, mask->w, mask->h, &v, err);
    if (st != RD_OK) return st;
    uint8_t *grid = malloc(n);
    if (!grid) return rd_err_set(err, RD_ERR_NOMEM, "roi mask: out of memory");
    rd_view_mask(&v, mask, grid); /* 0 outside the destination rectangle */
    double share = rd_view_roi_share(&v, grid);
    if (!(share > 0)) {
        free(grid);
        return rd_err_set(err, RD_ERR_ARG, "roi mask inspects nothing: no pixel of the ROI is white (> 127)");
    }
    if (frac) *frac = share;
    *out = grid;
    return RD_OK;
}

double rd_view_roi_share(const rd_view *v, const uint8_t *roi)
{
    size_t on = 0;
    if (!roi || v->dst_w < 1 || v->dst_h < 1) return 1.0;
    for (int y = v->dst_y; y < v->dst_y + v->dst_h; y++)
        for (int x = v->dst_x; x < v->dst_x + v->dst_w; x++) on += roi[(size_t)y * v->work_w + x] != 0;
    return (double)on / ((double)v->dst_w * v->dst_h);
}
