/* geometry.h — a class's inspection geometry: how a camera frame maps onto the
 * working grid that the backbone, the reference pool, the residuals, the
 * constraintor and the flow all run on (whole-frame inspection, no crop).
 *
 * rd_geometry is fixed when a class's first reference is registered:
 *   frame     the first reference's displayed size (its aspect ratio is the class's);
 *   roi       the inspected rectangle in frame pixels (default: the whole frame);
 *   working   short side S (default: the model's size, 224), long side
 *             round(S·aspect / stride)·stride, where stride is the coarsest
 *             feature level's (16 for MobileNetV2), so every level's grid is
 *             integral — 1920×1080 at S = 224 → 400×224, 640×480 → 304×224;
 *   fit       what an image of another aspect ratio gets:
 *               none     refused (RD_ERR_MISMATCH naming both geometries)
 *               pad      fitted inside the frame, centred; the bars are not inspected
 *               stretch  scaled to the frame on each axis separately
 *               crop     scaled to cover the frame, centred; what falls outside
 *                        is left out and reported (inspected fraction < 1);
 *   alpha     the decoding policy for RGBA inputs (rd_image_alpha: composite on
 *             mid-grey or ignore alpha), recorded so every image of the class is
 *             decoded alike;
 *   search    nearest-neighbour search: 0 = over the whole pool (the paper),
 *             T > 0 = local: the grid is cut into T×T-working-pixel tiles and a
 *             query searches only the references' positions in its own and the
 *             8 neighbouring tiles (aligned objects: the match lies within
 *             T..2T working pixels), so the cost grows linearly with the working
 *             pixels.  While a level has at most 18 tiles' worth of positions
 *             the search stays global (the neighbourhood would be half the grid
 *             anyway; then the result is the paper's exactly): with the default
 *             T = 112 that is every level up to 16:9 at S = 320 (576×320), so
 *             the default working size is searched globally.  See pool.h.
 * It serializes to one line of text (rd_geometry_format / rd_geometry_parse):
 *   "frame=1920x1080 roi=0,0,1920,1080 work=400x224 s=224 stride=16 fit=none alpha=composite search=112"
 * which the daemon can store per class.
 *
 * rd_view maps one image onto a geometry: the source rectangle of the image
 * that is resampled (src, in fractions of the image so it holds at any decoded
 * scale) onto the destination rectangle of the working grid (dst, in grid
 * pixels).  Grid pixels outside dst are padding and not inspected; image
 * pixels outside src are not inspected.  Pixel centres map linearly:
 *   x_img / img_w = src_x + ((u + 0.5 − dst_x) / dst_w) · src_w
 * Pure computation; no allocation. */
#ifndef RD_GEOMETRY_H
#define RD_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RD_GEO_MAX_SIDE 4096            /* working grid side */
#define RD_GEO_MAX_PIXELS (2048u * 2048u) /* working grid pixels */
#define RD_GEO_SEARCH_TILE 112          /* default local-search tile (working pixels) */
#define RD_GEO_ASPECT_TOL 0.01          /* relative aspect difference still "the same aspect" */
#define RD_GEO_TEXT_MAX 256

typedef enum rd_fit { RD_FIT_NONE, RD_FIT_PAD, RD_FIT_STRETCH, RD_FIT_CROP, RD_FIT_COUNT } rd_fit;

typedef struct rd_rect {
    int x, y, w, h;
} rd_rect;

typedef struct rd_geometry {
    int frame_w, frame_h; /* the class's frame (displayed size of its first reference) */
    rd_rect roi;          /* inspected rectangle in frame pixels */
    int s;                /* requested short side of the working grid */
    int stride;           /* the grid's sides are multiples of it */
    int work_w, work_h;   /* the working grid */
    rd_fit fit;
    int alpha;            /* rd_image_alpha (image.h): 0 composite, 1 ignore */
    int search_tile;      /* 0 = global nearest-neighbour search, else local tile side */
} rd_geometry;

/* Options for rd_geometry_init: zero = defaults. */
typedef struct rd_geo_opts {
    int s;           /* 0 = the caller's default */
    rd_fit fit;
    rd_rect roi;     /* w == 0: whole frame */
    int alpha;
    int search_tile; /* -1 = global, 0 = RD_GEO_SEARCH_TILE, else the tile side */
} rd_geo_opts;

/* Derives a geometry for a frame_w×frame_h frame.  Errors: RD_ERR_ARG (ROI
 * outside the frame, bad sizes), RD_ERR_LIMIT (working grid too large). */
rd_status rd_geometry_init(rd_geometry *g, int frame_w, int frame_h, const rd_geo_opts *o, int default_s, int stride,
                           rd_err *err) RD_WARN_UNUSED;

/* Working side for a short side s and a long/short ratio: round(s·ratio / stride)·stride, ≥ stride. */
int rd_geometry_long_side(int s, double ratio, int stride);

/* Same grid, stride and ROI shape: two geometries whose features can share a pool. */
int rd_geometry_compatible(const rd_geometry *a, const rd_geometry *b);
/* Does a w×h image have the class's aspect ratio (within RD_GEO_ASPECT_TOL)? */
int rd_geometry_same_aspect(const rd_geometry *g, int w, int h);

/* "1920x1080 (16:9, working 400x224)" for messages. */
void rd_geometry_describe(const rd_geometry *g, char *buf, size_t len);
/* One line of text (see above) and back.  Parse validates every field. */
void rd_geometry_format(const rd_geometry *g, char *buf, size_t len);
rd_status rd_geometry_parse(const char *text, rd_geometry *g, rd_err *err) RD_WARN_UNUSED;

const char *rd_fit_name(rd_fit f);
int rd_fit_parse(const char *s, rd_fit *out); /* 0 on success */

typedef struct rd_view {
    int img_w, img_h;              /* the image as mapped (any decoded scale) */
    int work_w, work_h;            /* the grid */
    double src_x, src_y, src_w, src_h; /* source rectangle, fractions of the image */
    int dst_x, dst_y, dst_w, dst_h;    /* destination rectangle in grid pixels */
    double inspected_frac;         /* fraction of the image's pixels that are inspected */
    double left_out_frac;          /* fit crop: fraction of the image outside the frame, else 0 */
    int fitted;                    /* 1 if a fit policy was applied (other aspect) */
} rd_view;

/* Maps a w×h image onto g (the ROI scales with the image's size).  An image of
 * another aspect ratio with fit none is RD_ERR_MISMATCH naming both. */
rd_status rd_view_for_image(const rd_geometry *g, int w, int h, rd_view *v, rd_err *err) RD_WARN_UNUSED;

/* The integer source rectangle of a w×h image (pixels) that a view samples. */
void rd_view_src_pixels(const rd_view *v, int w, int h, rd_rect *r);

/* Grid coordinate (u, v) of the centre of pixel (x, y) of an out_w×out_h
 * rendering of the image, and whether that pixel is inspected. */
int rd_view_to_grid(const rd_view *v, int out_w, int out_h, int x, int y, float *u, float *vv);
/* One axis of it (the view is axis-aligned): the grid coordinate of the centre
 * of column i (vertical 0) or row i (vertical 1) of an out_n-pixel rendering,
 * and whether it lies inside the view's source along that axis. */
int rd_view_axis_to_grid(const rd_view *v, int out_n, int i, int vertical, float *pos);

/* Grid pixel (u, v) inspected? */
static inline int rd_view_grid_inspected(const rd_view *v, int u, int vv)
{
    return u >= v->dst_x && u < v->dst_x + v->dst_w && vv >= v->dst_y && vv < v->dst_y + v->dst_h;
}

/* A ground-truth mask (decoded image, > 127 = defect) on the grid: nearest
 * sampling of the mask at each grid pixel's centre; 0 outside dst.  out holds
 * work_w·work_h bytes (0/1).  Evaluation at the working geometry. */
struct rd_image;
void rd_view_mask(const rd_view *v, const struct rd_image *mask, uint8_t *out);

/* A class's ROI mask on its working grid.  mask is an image of the frame's
 * aspect ratio (any size; channel 0 > 127 = inspected), sampled at the centre
 * of each grid pixel inside the ROI rectangle (rd_view_mask of the frame's own
 * view: the mask covers the whole frame, the rectangle selects from it), so the
 * mask applies at the grid's resolution.  *out: malloc'ed work_w·work_h bytes
 * (0/1); *frac: the inspected share of the rectangle's grid pixels.  Errors:
 * RD_ERR_MISMATCH (another aspect ratio, naming both), RD_ERR_ARG (no grid
 * pixel inspected), RD_ERR_NOMEM. */
rd_status rd_geometry_roi_grid(const rd_geometry *g, const struct rd_image *mask, uint8_t **out, double *frac,
                               rd_err *err) RD_WARN_UNUSED;
/* Inspected share of the view's destination rectangle under a grid mask
 * (roi NULL: 1). */
double rd_view_roi_share(const rd_view *v, const uint8_t *roi);

#endif
