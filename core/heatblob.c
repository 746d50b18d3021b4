/* heatblob.c — compact stored anomaly maps (see heatblob.h): a text line with
 * the scale and view, then an 8-bit grey PNG written and read with libpng's
 * simplified API. */
#include "heatblob.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_MAX 512

rd_status rd_heatblob_encode(const float *map, const rd_view *v, const rd_heat_params *p, uint8_t **blob,
                             size_t *len, rd_err *err)
{
    char head[HEAD_MAX];
    uint8_t *q = NULL, *out = NULL;
    png_image im;
    png_alloc_size_t plen = 0;
    size_t n = (size_t)v->work_w * (size_t)v->work_h;
    float span = p->hi - p->lo;
    rd_status st = RD_ERR_NOMEM;
    *blob = NULL;
    *len = 0;
    if (v->work_w <= 0 || v->work_h <= 0 || !(span > 0)) return rd_err_set(err, RD_ERR_ARG, "heatblob: empty map");
    int hl = snprintf(head, sizeof head,
                      "resadd-map 1 lo=%.9g hi=%.9g thr=%.9g out=%dx%d vimg=%dx%d grid=%dx%d src=%.17g,%.17g,%.17g,"
                      "%.17g dst=%d,%d,%d,%d insp=%.9g left=%.9g fitted=%d\n",
                      p->lo, p->hi, p->threshold, p->out_w, p->out_h, v->img_w, v->img_h, v->work_w, v->work_h,
                      v->src_x, v->src_y, v->src_w, v->src_h, v->dst_x, v->dst_y, v->dst_w, v->dst_h,
                      v->inspected_frac, v->left_out_frac, v->fitted);
    if (hl <= 0 || hl >= (int)sizeof head) return rd_err_set(err, RD_ERR_INTERNAL, "heatblob: header too long");
    if (!(q = malloc(n))) goto fail;
    for (size_t i = 0; i < n; i++) {
        float t = (map[i] - p->lo) / span;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        if (t != t) t = 0; /* NaN */
        q[i] = (uint8_t)lrintf(t * 255.0f);
    }
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)v->work_w;
    im.height = (png_uint_32)v->work_h;
    im.format = PNG_FORMAT_GRAY;
    if (!png_image_write_get_memory_size(im, plen, 0, q, 0, NULL)) {
        st = rd_err_set(err, RD_ERR_INTERNAL, "heatblob: png: %s", im.message);
        goto fail;
    }
    if (!(out = malloc((size_t)hl + plen))) goto fail;
    memcpy(out, head, (size_t)hl);
    if (!png_image_write_to_memory(&im, out + hl, &plen, 0, q, 0, NULL)) {
        st = rd_err_set(err, RD_ERR_INTERNAL, "heatblob: png: %s", im.message);
        goto fail;
    }
    free(q);
    *blob = out;
    *len = (size_t)hl + plen;
    return RD_OK;
fail:
    if (st == RD_ERR_NOMEM) rd_err_set(err, RD_ERR_NOMEM, "heatblob: out of memory");
    free(q);
    free(out);
    return st;
}

rd_status rd_heatblob_decode(const uint8_t *blob, size_t len, rd_heatblob *o, rd_err *err)
{
    char head[HEAD_MAX];
    const uint8_t *nl;
    uint8_t *q = NULL;
    png_image im;
    rd_view *v = &o->view;
    rd_heat_params *p = &o->p;
    int used = 0;
    memset(o, 0, sizeof *o);
    if (len < 12 || memcmp(blob, "resadd-map 1", 12) != 0) return rd_err_set(err, RD_ERR_FORMAT, "heatblob: bad magic");
    if (!(nl = memchr(blob, '\n', len < HEAD_MAX ? len : HEAD_MAX)))
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: no header line");
    memcpy(head, blob, (size_t)(nl - blob));
    head[nl - blob] = '\0';
    if (sscanf(head,
               "resadd-map 1 lo=%f hi=%f thr=%f out=%dx%d vimg=%dx%d grid=%dx%d src=%lf,%lf,%lf,%lf dst=%d,%d,%d,%d "
               "insp=%lf left=%lf fitted=%d%n",
               &p->lo, &p->hi, &p->threshold, &p->out_w, &p->out_h, &v->img_w, &v->img_h, &v->work_w, &v->work_h,
               &v->src_x, &v->src_y, &v->src_w, &v->src_h, &v->dst_x, &v->dst_y, &v->dst_w, &v->dst_h,
               &v->inspected_frac, &v->left_out_frac, &v->fitted, &used) != 20 ||
        head[used] != '\0')
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: malformed header");
    if (!(p->hi > p->lo) || p->out_w <= 0 || p->out_h <= 0 || p->out_w > 100000 || p->out_h > 100000 ||
        (uint64_t)p->out_w * (uint64_t)p->out_h > 1000000000u || /* resadd's largest max_megapixels */
        v->work_w <= 0 || v->work_h <= 0 || v->work_w > RD_GEO_MAX_SIDE || v->work_h > RD_GEO_MAX_SIDE ||
        (uint64_t)v->work_w * (uint64_t)v->work_h > RD_GEO_MAX_PIXELS || v->dst_w <= 0 || v->dst_h <= 0 ||
        v->dst_x < 0 || v->dst_y < 0 || v->dst_x + v->dst_w > v->work_w || v->dst_y + v->dst_h > v->work_h)
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: header out of range");
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    size_t off = (size_t)(nl - blob) + 1;
    if (!png_image_begin_read_from_memory(&im, blob + off, len - off))
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: png: %s", im.message);
    if (im.width != (png_uint_32)v->work_w || im.height != (png_uint_32)v->work_h) {
        png_image_free(&im);
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: png is not the grid's size");
    }
    im.format = PNG_FORMAT_GRAY;
    size_t n = (size_t)v->work_w * (size_t)v->work_h;
    if (!(q = malloc(n)) || !(o->map = malloc(n * sizeof *o->map))) {
        png_image_free(&im);
        free(q);
        rd_heatblob_release(o);
        return rd_err_set(err, RD_ERR_NOMEM, "heatblob: out of memory");
    }
    if (!png_image_finish_read(&im, NULL, q, 0, NULL)) {
        rd_err_set(err, RD_ERR_FORMAT, "heatblob: png: %s", im.message);
        png_image_free(&im);
        free(q);
        rd_heatblob_release(o);
        return RD_ERR_FORMAT;
    }
    float span = p->hi - p->lo;
    for (size_t i = 0; i < n; i++) o->map[i] = p->lo + (float)q[i] * (span / 255.0f);
    free(q);
    return RD_OK;
}

void rd_heatblob_release(rd_heatblob *b)
{
    free(b->map);
    b->map = NULL;
}
