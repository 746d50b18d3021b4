/* heatmap.c — PNG renderings of anomaly maps at the original geometry (see heatmap.h).
 *
 * Each output row is produced on its own: original pixel centres are mapped
 * into the S×S crop (u = (x + 0.5 − crop.x)·S/crop.w − 0.5) and the map is
 * sampled bilinearly there, clamped at the edges; pixels outside the crop have
 * no score.  PNGs are encoded with libpng into a growing memory buffer. */
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

/* Bilinear sample of the s×s map at crop coordinates (u, v), edges clamped. */
static float sample(const float *map, int s, float u, float v)
{
    if (u < 0) u = 0;
    if (v < 0) v = 0;
    if (u > s - 1) u = (float)(s - 1);
    if (v > s - 1) v = (float)(s - 1);
    int x0 = (int)u, y0 = (int)v;
    int x1 = x0 + 1 < s ? x0 + 1 : x0, y1 = y0 + 1 < s ? y0 + 1 : y0;
    float wx = u - (float)x0, wy = v - (float)y0;
    const float *r0 = map + (size_t)y0 * s, *r1 = map + (size_t)y1 * s;
    float top = r0[x0] + (r0[x1] - r0[x0]) * wx, bot = r1[x0] + (r1[x1] - r1[x0]) * wx;
    return top + (bot - top) * wy;
}

rd_status rd_heatmap_render(rd_heat_kind kind, const float *map, const rd_crop *crop, const rd_image *img,
                            const rd_heat_params *p, rd_png_buf *out, rd_err *err)
{
    png_structp png = NULL;
    png_infop info = NULL;
    membuf mb = {0};
    uint8_t *volatile row = NULL;
    volatile rd_status st = RD_OK;
    const int W = p->out_w, H = p->out_h, s = crop->s;
    const int ch = kind == RD_HEAT_OVERLAY ? 3 : 1;

    out->data = NULL;
    out->len = 0;
    if (kind < 0 || kind >= RD_HEAT_COUNT || !map || W < 1 || H < 1 || s < 1 || !(crop->w > 0) || !(crop->h > 0))
        return rd_err_set(err, RD_ERR_ARG, "heatmap: bad arguments");
    if (kind == RD_HEAT_OVERLAY && (!img || !img->rgb || img->w != W || img->h != H))
        return rd_err_set(err, RD_ERR_ARG, "heatmap: the overlay needs the image at the output size");
    if ((uint64_t)W * (uint64_t)H > 400000000ull) return rd_err_set(err, RD_ERR_LIMIT, "heatmap: %dx%d is too large", W, H);
    row = malloc((size_t)W * ch);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!row || !png || !(info = png_create_info_struct(png))) {
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
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    {
        char scale[128], cr[160];
        png_text t[2];
        snprintf(scale, sizeof scale, "lo=%.6g hi=%.6g threshold=%.6g", p->lo, p->hi, p->threshold);
        snprintf(cr, sizeof cr, "x=%.3f y=%.3f w=%.3f h=%.3f s=%d", crop->x, crop->y, crop->w, crop->h, s);
        memset(t, 0, sizeof t);
        t[0].compression = PNG_TEXT_COMPRESSION_NONE;
        t[0].key = (char *)"resadd:scale";
        t[0].text = scale;
        t[1].compression = PNG_TEXT_COMPRESSION_NONE;
        t[1].key = (char *)"resadd:crop";
        t[1].text = cr;
        png_set_text(png, info, t, 2);
    }
    png_write_info(png, info);
    {
        const float range = p->hi > p->lo ? p->hi - p->lo : 1.0f;
        const float sx = (float)s / (float)crop->w, sy = (float)s / (float)crop->h;
        for (int y = 0; y < H; y++) {
            float v = ((float)y + 0.5f - (float)crop->y) * sy - 0.5f;
            int yin = (float)y + 0.5f >= crop->y && (float)y + 0.5f < crop->y + crop->h;
            for (int x = 0; x < W; x++) {
                int in = yin && (float)x + 0.5f >= crop->x && (float)x + 0.5f < crop->x + crop->w;
                float u = ((float)x + 0.5f - (float)crop->x) * sx - 0.5f;
                float m = in ? sample(map, s, u, v) : 0.0f;
                float t = (m - p->lo) / range;
                t = t < 0 ? 0 : t > 1 ? 1 : t;
                if (kind == RD_HEAT_RAW) {
                    row[x] = in ? (uint8_t)lroundf(t * 255.0f) : 0;
                } else if (kind == RD_HEAT_MASK) {
                    row[x] = in && m >= p->threshold ? 255 : 0;
                } else {
                    const uint8_t *px = img->rgb + ((size_t)y * W + x) * 3;
                    uint8_t c[3];
                    if (!in) {
                        memcpy(row + 3 * x, px, 3);
                        continue;
                    }
                    rd_colormap_turbo(t, c);
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
    return st;
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
