/* test_heatblob.c — lazy heatmaps' stored form (core/heatblob.h) and the
 * image copy (core/jpegenc.h):
 *  - encode → decode gives the map back within (hi − lo)/510 inside [lo, hi];
 *  - raw, mask and overlay rendered from the decoded map match the ones
 *    rendered from the float map (what resadd stored before issue 13) within
 *    one grey level (raw), a handful of border pixels (mask), a few levels
 *    (overlay), at a camera-shaped view with padding;
 *  - a 224×224 smooth map costs well under 16 KB;
 *  - malformed blobs (every truncation, flipped header fields) fail cleanly;
 *  - the JPEG copy decodes back to the image within JPEG's error;
 *  - a blob as resadd wrote it before the fast PNG writer (libpng's
 *    simplified API, adaptive filters, level 6) still decodes, to the same map;
 *  - with a ROI mask (issue 9) the mask comes back exactly, every rendering
 *    from the blob matches the one from the float map, and masked-out pixels
 *    render as not inspected (raw alpha 0, mask 0, overlay grey) and inspected
 *    ones carry the naive per-pixel reference's value (raw) and verdict (mask):
 *    the renderer's separable taps change no pixel. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "heatblob.h"
#include "heatmap.h"
#include "image.h"
#include "jpegenc.h"
#include "testutil.h"

/* A smooth map: a few Gaussian blobs over a low background, 0 outside dst. */
static void smooth_map(float *m, const rd_view *v, unsigned seed)
{
    float r[12];
    rd_fill_uniform(r, 12, seed, 0.0f, 1.0f);
    for (int y = 0; y < v->work_h; y++)
        for (int x = 0; x < v->work_w; x++) {
            float s = 0.3f + 0.2f * sinf((float)x * 0.05f) * cosf((float)y * 0.07f);
            for (int b = 0; b < 4; b++) {
                float cx = r[3 * b] * (float)v->work_w, cy = r[3 * b + 1] * (float)v->work_h, a = 1 + 3 * r[3 * b + 2];
                float d2 = ((float)x - cx) * ((float)x - cx) + ((float)y - cy) * ((float)y - cy);
                s += a * expf(-d2 / 400.0f);
            }
            m[(size_t)y * v->work_w + x] = rd_view_grid_inspected(v, x, y) ? s : 0.0f;
        }
}

static int decode_png(const rd_png_buf *b, rd_image *img)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_err err;
    return rd_image_decode(b->data, b->len, &lim, img, &err) == RD_OK ? 0 : -1;
}

static void compare_kind(rd_heat_kind k, const float *map, const uint8_t *roi, const rd_heatblob *hb,
                         const rd_view *v, const rd_heat_params *p, const rd_image *img, int maxdiff, double maxfrac)
{
    rd_png_buf a = {0}, b = {0};
    rd_image ia = {0}, ib = {0};
    rd_err err;
    RD_CHECK(rd_heatmap_render_view(k, map, v, roi, img, p, &a, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_heatmap_render_view(k, hb->map, &hb->view, hb->roi, img, &hb->p, &b, &err) == RD_OK, "%s", err.msg);
    if (a.data && b.data && !decode_png(&a, &ia) && !decode_png(&b, &ib)) {
        RD_CHECK(ia.w == ib.w && ia.h == ib.h, "size %dx%d vs %dx%d", ia.w, ia.h, ib.w, ib.h);
        size_t n = (size_t)ia.w * ia.h * 3, off = 0;
        int worst = 0;
        for (size_t i = 0; i < n && ia.w == ib.w && ia.h == ib.h; i++) {
            int d = abs((int)ia.rgb[i] - (int)ib.rgb[i]);
            if (d > worst) worst = d;
            if (d > maxdiff) off++;
        }
        RD_CHECK((double)off / (double)n <= maxfrac, "kind %d: %zu of %zu values differ by more than %d (worst %d)",
                 (int)k, off, n, maxdiff, worst);
        printf("kind %d: worst difference %d, %.4f%% over %d\n", (int)k, worst, 100.0 * (double)off / (double)n,
               maxdiff);
    } else {
        RD_CHECK(0, "rendering or decoding failed");
    }
    rd_image_release(&ia);
    rd_image_release(&ib);
    rd_png_buf_release(&a);
    rd_png_buf_release(&b);
}

/* The blob as heatblob.c wrote it before its own PNG writer: same header,
 * the same levels through libpng's simplified API. */
static void old_writer(const uint8_t *blob, size_t len, const rd_heatblob *now)
{
    const uint8_t *nl = memchr(blob, '\n', len);
    const rd_view *v = &now->view;
    size_t n = (size_t)v->work_w * v->work_h, hl = nl ? (size_t)(nl - blob) + 1 : 0;
    uint8_t *q = malloc(n), *old = NULL;
    png_image im;
    png_alloc_size_t plen = 0;
    rd_heatblob hb;
    rd_err err;
    for (size_t i = 0; i < n; i++) q[i] = (uint8_t)lrintf((now->map[i] - now->p.lo) / (now->p.hi - now->p.lo) * 255.0f);
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)v->work_w;
    im.height = (png_uint_32)v->work_h;
    im.format = PNG_FORMAT_GRAY;
    RD_CHECK(hl && png_image_write_get_memory_size(im, plen, 0, q, 0, NULL), "old writer: %s", im.message);
    if (hl && (old = malloc(hl + plen)) && png_image_write_to_memory(&im, old + hl, &plen, 0, q, 0, NULL)) {
        memcpy(old, blob, hl);
        RD_CHECK(rd_heatblob_decode(old, hl + plen, &hb, &err) == RD_OK, "old blob: %s", err.msg);
        if (hb.map) {
            RD_CHECK(!memcmp(hb.map, now->map, n * sizeof *hb.map), "old blob decodes to another map");
            printf("old-writer blob %zu bytes, this writer's %zu\n", (size_t)(hl + plen), len);
            rd_heatblob_release(&hb);
        }
    }
    free(old);
    free(q);
}

/* A frame pixel (x, y) of an img_w×img_h rendering inside the view and the ROI mask? */
static int pixel_inspected(const rd_view *v, const uint8_t *roi, int img_w, int img_h, int x, int y)
{
    float u, vv;
    if (!rd_view_to_grid(v, img_w, img_h, x, y, &u, &vv)) return 0;
    int gx = (int)lroundf(u), gy = (int)lroundf(vv);
    gx = gx < 0 ? 0 : gx >= v->work_w ? v->work_w - 1 : gx;
    gy = gy < 0 ? 0 : gy >= v->work_h ? v->work_h - 1 : gy;
    return !roi || roi[(size_t)gy * v->work_w + gx];
}

/* The naive reference of an inspected pixel's map value: rd_view_to_grid at
 * that pixel, bilinear in the view's inspected rectangle (edges clamped). */
static float naive_value(const float *map, const rd_view *v, int img_w, int img_h, int x, int y)
{
    float u, vv;
    (void)rd_view_to_grid(v, img_w, img_h, x, y, &u, &vv);
    const int x0 = v->dst_x, y0 = v->dst_y, x1 = x0 + v->dst_w, y1 = y0 + v->dst_h;
    u = u < x0 ? (float)x0 : u > x1 - 1 ? (float)(x1 - 1) : u;
    vv = vv < y0 ? (float)y0 : vv > y1 - 1 ? (float)(y1 - 1) : vv;
    int xa = (int)u, ya = (int)vv, xb = xa + 1 < x1 ? xa + 1 : xa, yb = ya + 1 < y1 ? ya + 1 : ya;
    float wx = u - xa, wy = vv - ya;
    const float *r0 = map + (size_t)ya * v->work_w, *r1 = map + (size_t)yb * v->work_w;
    float top = r0[xa] + (r0[xb] - r0[xa]) * wx, bot = r1[xa] + (r1[xb] - r1[xa]) * wx;
    return top + (bot - top) * wy;
}

/* Masked-out pixels of the renderings: raw alpha 0, mask 0, overlay grey; inspected ones raw alpha 255, and
 * their raw value and mask those of the naive per-pixel reference (naive_value). */
static void check_masked(const float *map, const uint8_t *roi, const rd_view *v, const rd_heat_params *p,
                         const rd_image *img)
{
    rd_png_buf raw = {0}, mk = {0}, ov = {0};
    rd_image im = {0}, io = {0};
    rd_err err;
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_RAW, map, v, roi, NULL, p, &raw, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_MASK, map, v, roi, NULL, p, &mk, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_OVERLAY, map, v, roi, img, p, &ov, &err) == RD_OK, "%s", err.msg);
    if (raw.data && mk.data && ov.data && !decode_png(&mk, &im) && !decode_png(&ov, &io)) {
        /* the raw map's alpha: read it with libpng's simplified API */
        png_image pi;
        memset(&pi, 0, sizeof pi);
        pi.version = PNG_IMAGE_VERSION;
        uint8_t *ga = NULL;
        if (png_image_begin_read_from_memory(&pi, raw.data, raw.len)) {
            pi.format = PNG_FORMAT_GA;
            ga = malloc(PNG_IMAGE_SIZE(pi));
            if (ga && !png_image_finish_read(&pi, NULL, ga, 0, NULL)) free(ga), ga = NULL;
        }
        RD_CHECK(ga != NULL, "raw heatmap does not decode");
        size_t masked = 0, bad = 0, n = (size_t)img->w * img->h;
        for (int y = 0; y < img->h && ga; y++)
            for (int x = 0; x < img->w; x++) {
                size_t i = (size_t)y * img->w + x;
                const uint8_t *o = io.rgb + 3 * i;
                if (pixel_inspected(v, roi, img->w, img->h, x, y)) {
                    float m = naive_value(map, v, img->w, img->h, x, y);
                    float t = (m - p->lo) / (p->hi > p->lo ? p->hi - p->lo : 1.0f);
                    t = t < 0 ? 0 : t > 1 ? 1 : t;
                    bad += ga[2 * i + 1] != 255 || ga[2 * i] != (uint8_t)lroundf(t * 255.0f) ||
                           im.rgb[3 * i] != (m >= p->threshold ? 255 : 0);
                    continue;
                }
                masked++;
                bad += ga[2 * i + 1] != 0 || im.rgb[3 * i] != 0 || o[0] != o[1] || o[1] != o[2];
            }
        RD_CHECK(masked > 0 && masked < n, "masked %zu of %zu pixels", masked, n);
        RD_CHECK(bad == 0, "%zu of %zu pixels rendered against the ROI mask or the naive reference", bad, n);
        printf("roi mask: %zu of %zu frame pixels not inspected, all rendered so\n", masked, n);
        free(ga);
    } else {
        RD_CHECK(0, "rendering or decoding failed");
    }
    rd_image_release(&im);
    rd_image_release(&io);
    rd_png_buf_release(&raw);
    rd_png_buf_release(&mk);
    rd_png_buf_release(&ov);
}

static void round_trip(int img_w, int img_h, const rd_view *v, const uint8_t *roi, size_t max_bytes)
{
    size_t n = (size_t)v->work_w * v->work_h;
    float *map = malloc(n * sizeof *map);
    uint8_t *blob = NULL;
    size_t len = 0;
    rd_err err;
    rd_heatblob hb;
    rd_image img = {img_w, img_h, malloc((size_t)img_w * img_h * 3), 0, 0, 0, 0};
    for (size_t i = 0; i < (size_t)img_w * img_h * 3; i++) img.rgb[i] = (uint8_t)((i * 7919u) >> 5);
    smooth_map(map, v, (unsigned)(img_w * 31 + img_h));
    for (size_t i = 0; roi && i < n; i++)
        if (!roi[i]) map[i] = 0.0f; /* as rd_inspect leaves it */
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, map[i]);
    rd_heat_params p = {0.0f, fmaxf(2.0f * 2.0f, mx), 2.0f, img_w, img_h};
    RD_CHECK(rd_heatblob_encode(map, v, roi, &p, &blob, &len, &err) == RD_OK, "%s", err.msg);
    printf("%dx%d frame, %dx%d grid%s: blob %zu bytes\n", img_w, img_h, v->work_w, v->work_h, roi ? ", ROI mask" : "",
           len);
    RD_CHECK(len <= max_bytes, "blob %zu bytes > %zu", len, max_bytes);
    RD_CHECK(rd_heatblob_decode(blob, len, &hb, &err) == RD_OK, "%s", err.msg);
    if (hb.map) {
        float tol = (p.hi - p.lo) / 510.0f * 1.0001f, worst = 0;
        for (size_t i = 0; i < n; i++) {
            float want = fminf(fmaxf(map[i], p.lo), p.hi);
            worst = fmaxf(worst, fabsf(hb.map[i] - want));
        }
        RD_CHECK(worst <= tol, "decoded map off by %g > %g", worst, tol);
        /* the levels are round-half-even of the scaled map, as lrintf gives */
        size_t offq = 0;
        for (size_t i = 0; i < n; i++) {
            float t = fminf(fmaxf((map[i] - p.lo) / (p.hi - p.lo), 0.0f), 1.0f);
            offq += hb.map[i] != p.lo + (float)lrintf(t * 255.0f) * ((p.hi - p.lo) / 255.0f);
        }
        RD_CHECK(offq == 0, "%zu of %zu levels are not lrintf's", offq, n);
        RD_CHECK(!memcmp(&hb.view.dst_x, &v->dst_x, 4 * sizeof(int)) && hb.view.src_w == v->src_w &&
                     hb.view.src_x == v->src_x && hb.view.work_w == v->work_w && hb.p.out_w == img_w &&
                     hb.p.threshold == p.threshold && hb.p.hi == p.hi,
                 "view/params not restored");
        if (roi) {
            RD_CHECK(hb.roi && !memcmp(hb.roi, roi, n), "ROI mask not restored exactly");
            check_masked(map, roi, v, &p, &img);
        } else {
            RD_CHECK(!hb.roi, "a mask appeared");
            old_writer(blob, len, &hb);
        }
        compare_kind(RD_HEAT_RAW, map, roi, &hb, v, &p, NULL, 1, 0.0);
        compare_kind(RD_HEAT_MASK, map, roi, &hb, v, &p, NULL, 0, 0.003);
        compare_kind(RD_HEAT_OVERLAY, map, roi, &hb, v, &p, &img, 4, 0.0);
        rd_heatblob_release(&hb);
    }
    /* malformed: every truncation of the header, a few of the PNG and its end, and flipped fields */
    for (size_t cut = 0; cut < len; cut += cut < 400 || cut + 16 > len ? 1 : 97) {
        rd_heatblob bad;
        RD_CHECK(rd_heatblob_decode(blob, cut, &bad, &err) != RD_OK, "truncated at %zu accepted", cut);
    }
    const char *flips[] = {"grid=", "dst=", "hi=", "out="};
    for (int f = 0; f < 4; f++) {
        uint8_t *c = malloc(len);
        memcpy(c, blob, len);
        char *at = strstr((char *)c, flips[f]);
        if (at) at[strlen(flips[f])] = 'x';
        rd_heatblob bad;
        rd_status st = rd_heatblob_decode(c, len, &bad, &err);
        RD_CHECK(st != RD_OK, "flipped %s accepted", flips[f]);
        if (st == RD_OK) rd_heatblob_release(&bad);
        free(c);
    }
    free(blob);
    free(map);
    rd_image_release(&img);
}

static void jpeg_copy(void)
{
    int w = 200, h = 120;
    rd_image img = {w, h, malloc((size_t)w * h * 3), 0, 0, 0, 0}, back = {0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = img.rgb + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)(x + y), px[1] = (uint8_t)(2 * x), px[2] = (uint8_t)(255 - y);
        }
    rd_png_buf j = {0};
    rd_err err;
    RD_CHECK(rd_jpeg_encode(&img, 90, &j, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(rd_image_sniff(j.data, j.len) == RD_IMG_JPEG, "not a JPEG");
    if (j.data && decode_png(&j, &back) == 0) {
        double se = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) se += pow((double)back.rgb[i] - img.rgb[i], 2);
        double psnr = 10 * log10(255.0 * 255.0 / (se / (w * h * 3.0)));
        printf("jpeg copy q90: %zu bytes, PSNR %.1f dB\n", j.len, psnr);
        RD_CHECK(back.w == w && back.h == h && psnr > 30, "jpeg round trip PSNR %.1f", psnr);
    } else {
        RD_CHECK(0, "jpeg copy does not decode");
    }
    rd_image_release(&back);
    rd_png_buf_release(&j);
    rd_image_release(&img);
}

/* Levels at and past the ends: below lo, NaN and −0 → 0, above hi → 255,
 * ties to even; a 7×3 grid (rows not a multiple of 4). */
static void clamps(void)
{
    rd_view v = {7, 3, 7, 3, 0, 0, 1, 1, 0, 0, 7, 3, 1, 0, 0};
    rd_heat_params p = {-1.0f, 254.0f, 1.0f, 7, 3};
    const float map[21] = {-5.0f, NAN, -0.0f, -1.0f, 254.0f, 300.0f, INFINITY, -INFINITY, 0.5f, 1.5f,
                           2.5f, 0.49f, 0.51f, 126.5f, 127.5f, 253.4f, 253.6f, 3.0f, -0.5f, 100.0f, 1e30f};
    const int want[21] = {0, 0, 1, 0, 255, 255, 255, 0, 2, 2, 4, 1, 2, 128, 128, 254, 255, 4, 0, 101, 255};
    uint8_t *blob = NULL;
    size_t len = 0;
    rd_heatblob hb;
    rd_err err;
    RD_CHECK(rd_heatblob_encode(map, &v, NULL, &p, &blob, &len, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(blob && rd_heatblob_decode(blob, len, &hb, &err) == RD_OK, "%s", err.msg);
    if (blob && hb.map) {
        for (int i = 0; i < 21; i++) {
            int level = (int)lrintf((hb.map[i] - p.lo) / (p.hi - p.lo) * 255.0f);
            RD_CHECK(level == want[i], "value %g: level %d, want %d", (double)map[i], level, want[i]);
        }
        rd_heatblob_release(&hb);
    }
    free(blob);
}

int main(void)
{
    /* 256² frame, 224² grid, whole frame */
    rd_view sq = {256, 256, 224, 224, 0, 0, 1, 1, 0, 0, 224, 224, 1, 0, 0};
    round_trip(256, 256, &sq, NULL, 16384);
    /* 1920×1080 frame on 400×224, fit pad on a 4:3 ROI-like rectangle: padding bars not inspected */
    rd_view cam = {1920, 1080, 400, 224, 0.1, 0, 0.8, 1, 50, 0, 300, 224, 0.8, 0, 1};
    round_trip(1920, 1080, &cam, NULL, 16384);
    /* the same with a ROI mask: an ellipse of the grid plus a stripe, the rest masked out */
    {
        uint8_t *roi = malloc((size_t)cam.work_w * cam.work_h), *none;
        for (int y = 0; y < cam.work_h; y++)
            for (int x = 0; x < cam.work_w; x++) {
                double dx = (x - 200.0) / 120, dy = (y - 112.0) / 90;
                roi[(size_t)y * cam.work_w + x] = dx * dx + dy * dy < 1 || (y >= 10 && y < 20);
            }
        round_trip(1920, 1080, &cam, roi, 16384);
        /* a mask-bearing blob whose mask is empty is malformed */
        none = calloc((size_t)cam.work_w * cam.work_h, 1);
        float *z = calloc((size_t)cam.work_w * cam.work_h, sizeof *z);
        rd_heat_params p = {0.0f, 4.0f, 2.0f, 1920, 1080};
        uint8_t *blob = NULL;
        size_t len = 0;
        rd_heatblob hb;
        rd_err err;
        RD_CHECK(rd_heatblob_encode(z, &cam, none, &p, &blob, &len, &err) == RD_OK, "%s", err.msg);
        RD_CHECK(blob && rd_heatblob_decode(blob, len, &hb, &err) == RD_ERR_FORMAT, "an empty mask decoded");
        free(blob);
        free(z);
        free(none);
        free(roi);
    }
    clamps();
    jpeg_copy();
    return rd_test_done("test_heatblob");
}
