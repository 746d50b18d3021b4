/* heatmap.h — PNG renderings of an anomaly map at the original image's geometry.
 *
 * The map is S×S over the centre crop (rd_crop); it is resampled bilinearly
 * onto out_w×out_h pixels of the original image (normally img->w×img->h);
 * pixels outside the crop have no score: 0 in the raw map, the untouched image
 * in the overlay, 0 in the mask.
 *   RD_HEAT_RAW:     8-bit gray, v = clamp((m − lo)/(hi − lo))·255; a tEXt
 *                    chunk "resadd:scale" = "lo=<lo> hi=<hi>" lets a reader
 *                    recover scores; "resadd:crop" gives the crop rectangle.
 *   RD_HEAT_OVERLAY: RGB, the image blended with the turbo colormap of the
 *                    normalized map (alpha 0.5).
 *   RD_HEAT_MASK:    8-bit gray, 255 where m ≥ threshold, else 0.
 * Rows are rendered one at a time, so memory is O(out_w), not O(out_w·out_h).
 * Output is a malloc'ed PNG byte buffer the caller frees with rd_png_buf_release. */
#ifndef RD_HEATMAP_H
#define RD_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

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

/* img may be NULL except for RD_HEAT_OVERLAY (then out_w/out_h must equal img's). */
rd_status rd_heatmap_render(rd_heat_kind kind, const float *map, const rd_crop *crop,
                            const rd_image *img, const rd_heat_params *p, rd_png_buf *out,
                            rd_err *err) RD_WARN_UNUSED;
void rd_png_buf_release(rd_png_buf *b);
/* Writes the buffer to path atomically (temp + rename). */
rd_status rd_png_buf_save(const rd_png_buf *b, const char *path, rd_err *err) RD_WARN_UNUSED;
/* Turbo colormap lookup, v in [0,1] → rgb. */
void rd_colormap_turbo(float v, uint8_t rgb[3]);

#endif
