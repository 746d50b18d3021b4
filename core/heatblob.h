/* heatblob.h — the compact stored form of an inspection's anomaly map, from
 * which the overlay/raw/mask PNGs of heatmap.h are rendered later (lazy
 * heatmaps, issue 13).
 *
 * A blob is one line of text followed by a PNG:
 *   "resadd-map 1 lo=<lo> hi=<hi> thr=<t> out=WxH vimg=WxH grid=WxH
 *    src=x,y,w,h dst=x,y,w,h insp=<f> left=<f> fitted=<0|1>[ roi=1]\n"
 * then an 8-bit grey PNG of the working grid holding
 *   q = round(clamp((m − lo)/(hi − lo)) · 255)
 * or, with " roi=1" (a class with a ROI mask), a grey + alpha PNG: q and the
 * mask (255 inspected, 0 masked out) per grid pixel
 * with lo/hi/thr the rd_heat_params of the result (rd_result_heat_params).
 * Nothing outside [lo, hi] is needed by any rendering (raw and overlay clamp
 * there, and lo ≤ threshold ≤ hi), so the map decodes to
 *   m' = lo + q/255 · (hi − lo),   |m' − m| ≤ (hi − lo)/510 inside [lo, hi]
 * and the view says where the grid lies in the frame, so every kind renders
 * at the original geometry.  Anomaly maps are smooth; PNG's filters and
 * deflate make a 224×224 map a few KB.  Pure computation. */
#ifndef RD_HEATBLOB_H
#define RD_HEATBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"
#include "heatmap.h"
#include "status.h"

typedef struct rd_heatblob {
    float *map;        /* view.work_w × view.work_h, decoded (owned; rd_heatblob_release) */
    uint8_t *roi;      /* the same size, 1 = inspected by the ROI mask (owned); NULL = no mask */
    rd_view view;
    rd_heat_params p;  /* lo, hi, threshold, out_w/out_h = the frame's size */
} rd_heatblob;

/* Encodes map (v->work_w × v->work_h) and its ROI mask (the same size, NULL =
 * none) with p into a malloc'ed blob. */
rd_status rd_heatblob_encode(const float *map, const rd_view *v, const uint8_t *roi, const rd_heat_params *p,
                             uint8_t **blob, size_t *len, rd_err *err) RD_WARN_UNUSED;
/* Parses and validates a blob (any bytes are safe: RD_ERR_FORMAT when malformed). */
rd_status rd_heatblob_decode(const uint8_t *blob, size_t len, rd_heatblob *out, rd_err *err) RD_WARN_UNUSED;
void rd_heatblob_release(rd_heatblob *b);

#endif
