/* heatblob.c — compact stored anomaly maps (see heatblob.h): a text line with
 * the scale and view, then an 8-bit grey PNG (written with libpng's full API
 * for speed, read with its simplified API). */
#include "heatblob.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "v4.h"

#define HEAD_MAX 512


/* The PNG is written with libpng's full API, tuned for these maps (smooth:
 * neighbouring rows differ by 0 or ±1 grey level): the Up filter on every row
 * and deflate's run-length strategy (matches at distance 1 only, no hash
 * chains) in small blocks.  Measured on a 224×224 inspection map: ~0.2 ms
 * and 5.4 KB, where the simplified API's defaults (adaptive filters, level 6)
 * took ~2.7 ms for 6.0 KB.  Any PNG reader reads either. */
typedef struct wbuf {
    uint8_t *d;
    size_t n, cap;
    char msg[128]; /* libpng's error */
} wbuf;

static void on_png_error(png_structp png, png_const_charp msg)
{
    wbuf *b = png_get_error_ptr(png);
    snprintf(b->msg, sizeof b->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_png_write(png_structp png, png_bytep data, size_t n)
{
    wbuf *b = png_get_io_ptr(png);
    if (n > b->cap - b->n) {
        size_t cap = b->cap * 2 > b->n + n ? b->cap * 2 : b->n + n;
        uint8_t *d = realloc(b->d, cap);
        if (!d) png_error(png, "out of memory");
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, data, n);
    b->n += n;
}

static void on_png_flush(png_structp png) { (void)png; }

/* Appends the w×h grey (ch 1) or grey + alpha (ch 2) PNG of q to b; 0 or -1 with b->msg. */
static int write_png(const uint8_t *q, int w, int h, int ch, wbuf *b)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, b, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(b->msg, sizeof b->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, b, on_png_write, on_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ch == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_compression_strategy(png, Z_RLE);
    png_set_compression_level(png, 1);
    png_set_compression_window_bits(png, 9); /* RLE matches only the previous byte */
    png_set_compression_mem_level(png, 4);   /* 1 KB blocks: the Huffman codes follow the map */
    png_set_compression_buffer_size(png, 32768); /* fewer IDAT chunks */
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, q + (size_t)y * (size_t)w * (size_t)ch);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

rd_status rd_heatblob_encode(const float *map, const rd_view *v, const uint8_t *roi, const rd_heat_params *p,
                             uint8_t **blob, size_t *len, rd_err *err)
{
    char head[HEAD_MAX];
    uint8_t *q = NULL;
    wbuf b = {0};
    size_t n = (size_t)v->work_w * (size_t)v->work_h;
    float span = p->hi - p->lo;
    rd_status st = RD_ERR_NOMEM;
    *blob = NULL;
    *len = 0;
    if (v->work_w <= 0 || v->work_h <= 0 || !(span > 0)) return rd_err_set(err, RD_ERR_ARG, "heatblob: empty map");
    int hl = snprintf(head, sizeof head,
                      "resadd-map 1 lo=%.9g hi=%.9g thr=%.9g out=%dx%d vimg=%dx%d grid=%dx%d src=%.17g,%.17g,%.17g,"
                      "%.17g dst=%d,%d,%d,%d insp=%.9g left=%.9g fitted=%d%s\n",
                      p->lo, p->hi, p->threshold, p->out_w, p->out_h, v->img_w, v->img_h, v->work_w, v->work_h,
                      v->src_x, v->src_y, v->src_w, v->src_h, v->dst_x, v->dst_y, v->dst_w, v->dst_h,
                      v->inspected_frac, v->left_out_frac, v->fitted, roi ? " roi=1" : "");
    if (hl <= 0 || hl >= (int)sizeof head) return rd_err_set(err, RD_ERR_INTERNAL, "heatblob: header too long");
    if (!(q = malloc(n))) goto fail;
    /* adding and taking away 1.5·2²³ rounds [0, 255] to the nearest integer,
     * ties to even (what lrintf does, without its call per value) */
    const float rnd = 12582912.0f;
    const rd_v4 vlo = {p->lo, p->lo, p->lo, p->lo}, vspan = {span, span, span, span}, zero = {0}, one = {1, 1, 1, 1};
    const rd_v4 v255 = {255, 255, 255, 255}, vrnd = {rnd, rnd, rnd, rnd};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        rd_v4 t = (rd_v4_ld(map + i) - vlo) / vspan;
        t = (rd_v4)((rd_v4i)t & (t > zero)); /* negative and NaN → 0 */
        t = (rd_v4)(((rd_v4i)t & (t < one)) | ((rd_v4i)one & ~(t < one)));
        rd_v4i l = __builtin_convertvector((t * v255 + vrnd) - vrnd, rd_v4i);
        for (int j = 0; j < 4; j++) q[i + j] = (uint8_t)l[j];
    }
    for (; i < n; i++) {
        float t = (map[i] - p->lo) / span;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        if (t != t) t = 0; /* NaN */
        q[i] = (uint8_t)((t * 255.0f + rnd) - rnd);
    }
    if (roi) { /* grey + alpha: the value, then 255 inspected / 0 masked out */
        uint8_t *qa = malloc(2 * n);
        if (!qa) goto fail;
        for (size_t j = 0; j < n; j++) {
            qa[2 * j] = q[j];
            qa[2 * j + 1] = roi[j] ? 255 : 0;
        }
        free(q);
        q = qa;
    }
    b.cap = (size_t)hl + n / 4 + 1024;
    if (!(b.d = malloc(b.cap))) goto fail;
    memcpy(b.d, head, (size_t)hl);
    b.n = (size_t)hl;
    if (write_png(q, v->work_w, v->work_h, roi ? 2 : 1, &b) != 0) {
        st = rd_err_set(err, RD_ERR_INTERNAL, "heatblob: png: %s", b.msg);
        goto fail;
    }
    free(q);
    *blob = b.d;
    *len = b.n;
    return RD_OK;
fail:
    if (st == RD_ERR_NOMEM) rd_err_set(err, RD_ERR_NOMEM, "heatblob: out of memory");
    free(q);
    free(b.d);
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
    int used = 0, has_roi;
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
        (head[used] != '\0' && strcmp(head + used, " roi=1") != 0))
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: malformed header");
    has_roi = head[used] != '\0';
    if (!(p->hi > p->lo) || p->out_w <= 0 || p->out_h <= 0 || p->out_w > 100000 || p->out_h > 100000 ||
        (uint64_t)p->out_w * (uint64_t)p->out_h > 1000000000u || /* resadd's largest max_megapixels */
        v->work_w <= 0 || v->work_h <= 0 || v->work_w > RD_GEO_MAX_SIDE || v->work_h > RD_GEO_MAX_SIDE ||
        (uint64_t)v->work_w * (uint64_t)v->work_h > RD_GEO_MAX_PIXELS || v->dst_w <= 0 || v->dst_h <= 0 ||
        v->dst_x < 0 || v->dst_y < 0 || v->dst_x + v->dst_w > v->work_w || v->dst_y + v->dst_h > v->work_h)
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: header out of range");
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    size_t off = (size_t)(nl - blob) + 1;
    /* libpng stops reading after the image data: a blob cut inside the IEND chunk would pass */
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    if (len - off < sizeof iend || memcmp(blob + len - sizeof iend, iend, sizeof iend) != 0)
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: png is truncated");
    if (!png_image_begin_read_from_memory(&im, blob + off, len - off))
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: png: %s", im.message);
    if (im.width != (png_uint_32)v->work_w || im.height != (png_uint_32)v->work_h) {
        png_image_free(&im);
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: png is not the grid's size");
    }
    im.format = has_roi ? PNG_FORMAT_GA : PNG_FORMAT_GRAY;
    size_t n = (size_t)v->work_w * (size_t)v->work_h;
    if (!(q = malloc(has_roi ? 2 * n : n)) || !(o->map = malloc(n * sizeof *o->map)) ||
        (has_roi && !(o->roi = malloc(n)))) {
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
    size_t on = 0;
    for (size_t i = 0; i < n; i++) {
        o->map[i] = p->lo + (float)q[has_roi ? 2 * i : i] * (span / 255.0f);
        if (has_roi) on += (o->roi[i] = q[2 * i + 1] > 127);
    }
    free(q);
    if (has_roi && !on) {
        rd_heatblob_release(o);
        return rd_err_set(err, RD_ERR_FORMAT, "heatblob: the ROI mask is empty");
    }
    return RD_OK;
}

void rd_heatblob_release(rd_heatblob *b)
{
    free(b->map);
    free(b->roi);
    b->map = NULL;
    b->roi = NULL;
}
