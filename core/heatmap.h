/* heatmap.h — PNG renderings of an anomaly map over the whole frame, at the
 * original image's size.
 *
 * The map covers the working grid; a view (geometry.h) says which rectangle of
 * the image was resampled onto which rectangle of the grid.  Every output
 * pixel's centre is mapped into the grid and the map sampled bilinearly there
 * (edges clamped to the inspected rectangle).  Pixels outside the view's
 * source rectangle (outside the ROI, cropped away by fit crop) were NOT
 * inspected, which is never the same as "clean":
 *   RD_HEAT_RAW:     8-bit gray + alpha: v = clamp((m − lo)/(hi − lo))·255 and
 *                    alpha 255 where inspected; v = 0 and alpha 0 where not.
 *                    tEXt "resadd:scale" = "lo=<lo> hi=<hi> threshold=<t>" lets
 *                    a reader recover scores; "resadd:view" = "src=x,y,w,h
 *                    (fractions of the image) dst=x,y,w,h grid=WxH
 *                    inspected=<fraction>".
 *   RD_HEAT_OVERLAY: RGB, the image blended with the turbo colormap
 *                    (tabulated at 1024 points) of the normalized map
 *                    (alpha 0.5) where inspected; elsewhere the
 *                    image greyed (luma at half contrast) under dark diagonal
 *                    hatching, so "not inspected" cannot be read as "cold".
 *   RD_HEAT_MASK:    8-bit gray, 255 where m ≥ threshold, else 0 (also where
 *                    not inspected: the mask marks found defects only).
 * Rows are rendered one at a time, so memory is O(out_w + out_h), not O(out_w·out_h).
 * Output is a malloc'ed PNG byte buffer the caller frees with rd_png_buf_release. */
#ifndef RD_HEATMAP_H
#define RD_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"
#include "image.h"
#include "status.h"

typedef enum rd_heat_kind { RD_HEAT_RAW, RD_HEAT_OVERLAY, RD_HEAT_MASK, RD_HEAT_COUNT } rd_heat_kind;

typedef struct rd_png_buf {
    uint8_t *data;
    size_t len;
} rd_png_buf;

typedef struct rd_heat_params {
    float lo, hi;      /* score range mapped to 0..255 / the colormap */
    float threshold;   /* for the mask */
    int out_w, out_h;  /* output geometry (the original image's size) */
} rd_heat_params;

/* img may be NULL except for RD_HEAT_OVERLAY (then out_w/out_h must equal img's).
 * map is v->work_w × v->work_h; roi (same size, NULL = none) is the class's
 * ROI mask on the grid: an output pixel whose nearest grid pixel is masked out
 * renders as not inspected (overlay grey and hatched, raw alpha 0, mask 0). */
rd_status rd_heatmap_render_view(rd_heat_kind kind, const float *map, const rd_view *v, const uint8_t *roi,
                                 const rd_image *img, const rd_heat_params *p, rd_png_buf *out,
                                 rd_err *err) RD_WARN_UNUSED;
/* Legacy: an S×S map over a centre crop (rd_crop) — the view whose source is
 * the crop rectangle; outside it is "not inspected".  Adds "resadd:crop". */
rd_status rd_heatmap_render(rd_heat_kind kind, const float *map, const rd_crop *crop,
                            const rd_image *img, const rd_heat_params *p, rd_png_buf *out,
                            rd_err *err) RD_WARN_UNUSED;
void rd_png_buf_release(rd_png_buf *b);
/* Writes the buffer to path atomically (temp + rename). */
rd_status rd_png_buf_save(const rd_png_buf *b, const char *path, rd_err *err) RD_WARN_UNUSED;
/* Turbo colormap lookup, v in [0,1] → rgb. */
void rd_colormap_turbo(float v, uint8_t rgb[3]);

#endif
