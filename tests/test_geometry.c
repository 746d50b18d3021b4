/* test_geometry.c — the maths of whole-frame inspection.
 *
 *  - aspect → grid: short side S on the stride, long side round(S·aspect/stride)·stride
 *    (1920×1080 → 400×224, 640×480 → 304×224, 480×640 → 224×304, 2448×2048, line scan);
 *  - limits: a too large working size is RD_ERR_LIMIT, a ROI outside the frame RD_ERR_ARG;
 *  - views: same aspect at another resolution maps the whole image; another aspect is
 *    RD_ERR_MISMATCH with fit none (message names both), and pad / stretch / crop give
 *    the rectangles and fractions worked out by hand; ROI maps to its pixels;
 *  - rd_view_to_grid inverts the mapping at pixel centres; rd_view_mask samples it;
 *  - serialization round-trips and rejects malformed text;
 *  - heatmaps: not-inspected pixels are alpha 0 in the raw map, grey + hatched in
 *    the overlay, 0 in the mask; inspected ones carry the map;
 *  - the flow's positional condition on another grid: rd_flow_pos_scale, and a plan
 *    on a (2h−1)×(2w−1) grid gives at its even positions exactly the trained plan's
 *    values (positions i·(n_t − 1)/(n − 1) = i/2). */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "flow.h"
#include "geometry.h"
#include "heatmap.h"
#include "image.h"
#include "testutil.h"

static void test_grid(void)
{
    rd_geometry g;
    rd_err e;
    rd_geo_opts o = {0};
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, NULL, 224, 16, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(g.work_w == 400 && g.work_h == 224, "16:9 → %dx%d", g.work_w, g.work_h);
    RD_CHECK(g.roi.w == 1920 && g.roi.h == 1080 && g.fit == RD_FIT_NONE && g.search_tile == RD_GEO_SEARCH_TILE, "defaults");
    RD_CHECK(rd_geometry_init(&g, 640, 480, NULL, 224, 16, &e) == RD_OK && g.work_w == 304 && g.work_h == 224,
             "4:3 → %dx%d", g.work_w, g.work_h);
    RD_CHECK(rd_geometry_init(&g, 480, 640, NULL, 224, 16, &e) == RD_OK && g.work_w == 224 && g.work_h == 304,
             "portrait → %dx%d", g.work_w, g.work_h);
    RD_CHECK(rd_geometry_init(&g, 2448, 2048, NULL, 224, 16, &e) == RD_OK && g.work_w == 272 && g.work_h == 224,
             "5:4-ish → %dx%d", g.work_w, g.work_h); /* 224·1.1953 = 267.75 → 17·16 */
    RD_CHECK(rd_geometry_init(&g, 256, 256, NULL, 224, 16, &e) == RD_OK && g.work_w == 224 && g.work_h == 224, "square");
    o.s = 300; /* not on the stride: 304 */
    RD_CHECK(rd_geometry_init(&g, 1000, 1000, &o, 224, 16, &e) == RD_OK && g.work_w == 304, "S rounded: %d", g.work_w);
    o.s = 448;
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK && g.work_w == 800 && g.work_h == 448,
             "448 → %dx%d", g.work_w, g.work_h);
    o.s = 224;
    RD_CHECK(rd_geometry_init(&g, 8192, 64, &o, 224, 16, &e) == RD_ERR_LIMIT, "line scan 128:1 at 224 accepted");
    o.s = 32;
    RD_CHECK(rd_geometry_init(&g, 8192, 64, &o, 224, 16, &e) == RD_OK && g.work_h == 32 && g.work_w == 4096,
             "line scan at 32 → %dx%d", g.work_w, g.work_h);
    RD_CHECK(rd_geometry_long_side(224, 1.0 / 1000, 16) == 16, "long side at least one stride");
    o.s = 4000;
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_ERR_LIMIT && strstr(e.msg, "exceeds"), "limit: %s",
             e.msg);
    memset(&o, 0, sizeof o);
    o.roi = (rd_rect){1800, 0, 200, 100};
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_ERR_ARG && strstr(e.msg, "1920x1080"),
             "ROI outside: %s", e.msg);
    o.roi = (rd_rect){480, 0, 960, 1080}; /* 8:9 ROI */
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK && g.work_w == 224 && g.work_h == 256,
             "ROI grid %dx%d", g.work_w, g.work_h);
    o.roi = (rd_rect){0, 0, 0, 0};
    o.search_tile = 100; /* not a multiple of 16 */
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_ERR_ARG, "bad tile accepted");
}

static void test_views(void)
{
    rd_geometry g;
    rd_view v;
    rd_err e;
    rd_geo_opts o = {0};
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, NULL, 224, 16, &e) == RD_OK, "%s", e.msg);
    /* same aspect, another resolution (a DCT-scaled decode): everything */
    RD_CHECK(rd_view_for_image(&g, 960, 540, &v, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(v.src_x == 0 && v.src_w == 1 && v.src_h == 1 && v.dst_w == 400 && v.dst_h == 224 && !v.fitted &&
                 v.inspected_frac == 1.0,
             "same aspect view");
    /* another aspect, fit none: refused naming both */
    RD_CHECK(rd_view_for_image(&g, 640, 480, &v, &e) == RD_ERR_MISMATCH && strstr(e.msg, "640x480") &&
                 strstr(e.msg, "1920x1080") && strstr(e.msg, "400x224"),
             "mismatch: %s", e.msg);
    /* pad: 640×480 scaled by 1080/480 = 2.25 → 1440×1080, centred: grid columns 50..350 */
    o.fit = RD_FIT_PAD;
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(rd_view_for_image(&g, 640, 480, &v, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(v.fitted && v.dst_x == 50 && v.dst_w == 300 && v.dst_y == 0 && v.dst_h == 224 && v.src_w == 1 &&
                 v.inspected_frac == 1.0 && v.left_out_frac == 0,
             "pad: dst %d+%d", v.dst_x, v.dst_w);
    /* crop: scaled by 1920/640 = 3 → 1920×1440; rows 180..1260 of it = image rows 60..420 */
    o.fit = RD_FIT_CROP;
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(rd_view_for_image(&g, 640, 480, &v, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(v.fitted && v.dst_w == 400 && v.dst_h == 224 && fabs(v.src_y - 60.0 / 480) < 1e-9 &&
                 fabs(v.src_h - 0.75) < 1e-9 && fabs(v.inspected_frac - 0.75) < 1e-9 && fabs(v.left_out_frac - 0.25) < 1e-9,
             "crop: src_y %g src_h %g inspected %g left out %g", v.src_y, v.src_h, v.inspected_frac, v.left_out_frac);
    /* stretch: everything, each axis on its own */
    o.fit = RD_FIT_STRETCH;
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(rd_view_for_image(&g, 640, 480, &v, &e) == RD_OK && v.fitted && v.src_w == 1 && v.src_h == 1 &&
                 v.dst_w == 400 && v.dst_h == 224,
             "stretch");
    /* ROI: the right half of a 16:9 frame, seen on a half-resolution image */
    memset(&o, 0, sizeof o);
    o.roi = (rd_rect){960, 0, 960, 1080};
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK && g.work_w == 224 && g.work_h == 256,
             "ROI grid %dx%d", g.work_w, g.work_h);
    RD_CHECK(rd_view_for_image(&g, 960, 540, &v, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(v.src_x == 0.5 && v.src_w == 0.5 && v.src_h == 1 && fabs(v.inspected_frac - 0.5) < 1e-12 &&
                 v.dst_w == 224 && v.dst_h == 256,
             "ROI view");
    rd_rect r;
    rd_view_src_pixels(&v, 960, 540, &r);
    RD_CHECK(r.x == 480 && r.w == 480 && r.y == 0 && r.h == 540, "ROI pixels %d,%d,%d,%d", r.x, r.y, r.w, r.h);
    /* pixel centre → grid: the ROI's first and last columns, and one outside */
    float u, vv;
    RD_CHECK(rd_view_to_grid(&v, 1920, 1080, 960, 0, &u, &vv) && fabs(u - (0.5f * 224 / 960 - 0.5f)) < 1e-4, "u %g", u);
    RD_CHECK(rd_view_to_grid(&v, 1920, 1080, 1919, 1079, &u, &vv) && fabs(u - (959.5f / 960 * 224 - 0.5f)) < 1e-3,
             "u %g", u);
    RD_CHECK(!rd_view_to_grid(&v, 1920, 1080, 959, 500, &u, &vv), "pixel left of the ROI inspected");
    /* mask sampling: a defect column at frame x 1440..1460 lands at grid columns 112..116 */
    rd_image m = {96, 54, calloc(96 * 54 * 3, 1), 0, 0, 0, 0};
    for (int y = 0; y < 54; y++) m.rgb[(y * 96 + 72) * 3] = 255; /* x 72 of 96 = frame 1440 */
    uint8_t *gm = calloc(224 * 256, 1);
    rd_view_mask(&v, &m, gm);
    int cols = 0, at = -1;
    for (int x = 0; x < 224; x++)
        if (gm[100 * 224 + x]) cols++, at = at < 0 ? x : at;
    RD_CHECK(cols == 5 && at == 112, "mask columns from %d (%d wide)", at, cols);
    free(gm);
    free(m.rgb);
}

static void test_text(void)
{
    rd_geometry g, h;
    rd_err e;
    rd_geo_opts o = {448, RD_FIT_CROP, {10, 20, 1900, 1000}, 1, -1};
    char t[RD_GEO_TEXT_MAX];
    RD_CHECK(rd_geometry_init(&g, 1920, 1080, &o, 224, 16, &e) == RD_OK, "%s", e.msg);
    rd_geometry_format(&g, t, sizeof t);
    RD_CHECK(rd_geometry_parse(t, &h, &e) == RD_OK, "parse %s: %s", t, e.msg);
    RD_CHECK(!memcmp(&g, &h, sizeof g), "round trip of %s", t);
    RD_CHECK(rd_geometry_compatible(&g, &h), "compatible with itself");
    RD_CHECK(h.search_tile == 0 && h.alpha == 1 && h.fit == RD_FIT_CROP, "fields");
    RD_CHECK(rd_geometry_parse("frame=1920x1080 roi=0,0,1920,1080 work=401x224 s=224 stride=16 fit=none "
                               "alpha=composite search=224",
                               &h, &e) == RD_ERR_FORMAT,
             "inconsistent grid accepted");
    RD_CHECK(rd_geometry_parse("frame=1920x1080", &h, &e) == RD_ERR_FORMAT, "short text accepted");
    RD_CHECK(rd_geometry_parse("frame=1920x1080 roi=0,0,1920,1080 work=400x224 s=224 stride=16 fit=wobble "
                               "alpha=composite search=224",
                               &h, &e) == RD_ERR_FORMAT,
             "bad fit accepted");
    RD_CHECK(rd_geometry_parse("frame=1920x1080 roi=0,0,1920,1080 work=400x224 s=224 stride=16 fit=none "
                               "alpha=composite search=224 x",
                               &h, &e) == RD_ERR_FORMAT,
             "trailing bytes accepted");
    rd_geometry a, b;
    RD_CHECK(rd_geometry_init(&a, 1920, 1080, NULL, 224, 16, &e) == RD_OK &&
                 rd_geometry_init(&b, 1280, 720, NULL, 224, 16, &e) == RD_OK && rd_geometry_compatible(&a, &b),
             "16:9 at two resolutions are one class geometry");
    RD_CHECK(rd_geometry_init(&b, 640, 480, NULL, 224, 16, &e) == RD_OK && !rd_geometry_compatible(&a, &b), "4:3 vs 16:9");
}

static void test_heatmap(void)
{
    enum { W = 64, H = 36 };
    rd_geometry g;
    rd_view v;
    rd_err e;
    rd_geo_opts o = {0};
    o.roi = (rd_rect){32, 0, 32, 36}; /* right half */
    RD_CHECK(rd_geometry_init(&g, W, H, &o, 32, 16, &e) == RD_OK && rd_view_for_image(&g, W, H, &v, &e) == RD_OK,
             "%s", e.msg);
    float *map = malloc((size_t)v.work_w * v.work_h * sizeof(float));
    for (int i = 0; i < v.work_w * v.work_h; i++) map[i] = 1.0f; /* all hot */
    rd_image img = {W, H, malloc(W * H * 3), 0, 0, 0, 0};
    for (int i = 0; i < W * H * 3; i++) img.rgb[i] = (uint8_t)(i % 3 == 0 ? 200 : 30); /* reddish */
    rd_heat_params p = {0.0f, 1.0f, 0.5f, W, H};
    rd_png_buf raw, ov, mk;
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_RAW, map, &v, NULL, NULL, &p, &raw, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_OVERLAY, map, &v, NULL, &img, &p, &ov, &e) == RD_OK, "%s", e.msg);
    RD_CHECK(rd_heatmap_render_view(RD_HEAT_MASK, map, &v, NULL, NULL, &p, &mk, &e) == RD_OK, "%s", e.msg);
    /* decode with libpng's simplified API to see the alpha channel */
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    RD_CHECK(png_image_begin_read_from_memory(&pi, raw.data, raw.len), "raw PNG");
    pi.format = PNG_FORMAT_GA;
    uint8_t *ga = malloc(PNG_IMAGE_SIZE(pi));
    RD_CHECK(png_image_finish_read(&pi, NULL, ga, 0, NULL), "raw decode");
    int bad = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *q = ga + 2 * (y * W + x);
            if (x < 32 && (q[0] != 0 || q[1] != 0)) bad++;
            if (x >= 32 && (q[0] != 255 || q[1] != 255)) bad++;
        }
    RD_CHECK(bad == 0, "raw: %d pixels with the wrong value/alpha", bad);
    rd_image oi, mi;
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    RD_CHECK(rd_image_decode(ov.data, ov.len, &lim, &oi, &e) == RD_OK && rd_image_decode(mk.data, mk.len, &lim, &mi, &e) == RD_OK,
             "%s", e.msg);
    int grey = 0, hatch = 0, colour = 0, mask_out = 0, mask_in = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *q = oi.rgb + 3 * (y * W + x);
            if (x < 32) {
                grey += q[0] == q[1] && q[1] == q[2];
                hatch += q[0] == 40;
                mask_out += mi.rgb[3 * (y * W + x)] != 0;
            } else {
                colour += !(q[0] == q[1] && q[1] == q[2]);
                mask_in += mi.rgb[3 * (y * W + x)] == 255;
            }
        }
    RD_CHECK(grey == 32 * H && hatch > 0 && hatch < 32 * H / 2, "overlay outside: %d grey, %d hatch", grey, hatch);
    RD_CHECK(colour == 32 * H, "overlay inside: %d coloured", colour);
    RD_CHECK(mask_out == 0 && mask_in == 32 * H, "mask: %d outside, %d inside", mask_out, mask_in);
    rd_image_release(&oi);
    rd_image_release(&mi);
    rd_png_buf_release(&raw);
    rd_png_buf_release(&ov);
    rd_png_buf_release(&mk);
    free(ga);
    free(map);
    free(img.rgb);
}

static void test_posenc(void)
{
    rd_err e;
    RD_CHECK(rd_flow_pos_scale(56, 56) == 1.0f && rd_flow_pos_scale(111, 56) == 0.5f && rd_flow_pos_scale(1, 56) == 1.0f,
             "pos scale");
    rd_flow_cfg cfg;
    rd_flow_cfg_default(&cfg, 8, 2);
    cfg.p = 16;
    rd_flow *f = rd_flow_new(&cfg, 3, &e);
    RD_CHECK(f != NULL, "%s", e.msg);
    if (!f) return;
    /* non-trivial condition weights */
    for (size_t i = 0; i < f->nparams; i++) f->params[i] += 0.05f * (float)sin((double)i);
    const int h = 5, w = 7, H2 = 2 * h - 1, W2 = 2 * w - 1, c = 8;
    rd_flow_plan *p0 = rd_flow_plan_new(f, h, w, &e), *p1 = rd_flow_plan_new_at(f, H2, W2, h, w, &e);
    rd_flow_plan *pid = rd_flow_plan_new_at(f, h, w, h, w, &e);
    RD_CHECK(p0 && p1 && pid, "%s", e.msg);
    float *x0 = malloc(sizeof(float) * h * w * c), *x1 = calloc((size_t)H2 * W2 * c, sizeof(float));
    float *l0 = malloc(sizeof(float) * h * w), *l1 = malloc(sizeof(float) * H2 * W2), *lid = malloc(sizeof(float) * h * w);
    rd_fill_uniform(x0, (size_t)h * w * c, 5, -1, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memcpy(x1 + ((size_t)(2 * y) * W2 + 2 * x) * c, x0 + ((size_t)y * w + x) * c, c * sizeof(float));
    rd_arena a;
    RD_CHECK(rd_arena_init(&a, rd_flow_plan_scratch(p1) + 4096, &e) == RD_OK, "arena");
    RD_CHECK(rd_flow_plan_lpc(p0, x0, l0, &a, &e) == RD_OK && rd_flow_plan_lpc(p1, x1, l1, &a, &e) == RD_OK &&
                 rd_flow_plan_lpc(pid, x0, lid, &a, &e) == RD_OK,
             "%s", e.msg);
    double worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) worst = fmax(worst, fabs(l0[y * w + x] - l1[(2 * y) * W2 + 2 * x]));
    RD_CHECK(worst < 1e-5, "2x grid at even positions differs by %g", worst);
    RD_CHECK(!memcmp(l0, lid, sizeof(float) * h * w), "plan at the trained size not bit-identical");
    /* positions do matter: an odd-position copy differs */
    float *x2 = calloc((size_t)H2 * W2 * c, sizeof(float));
    memcpy(x2 + ((size_t)1 * W2 + 1) * c, x0, c * sizeof(float));
    memcpy(x1 + ((size_t)1 * W2 + 1) * c, x0, c * sizeof(float));
    RD_CHECK(rd_flow_plan_lpc(p1, x1, l1, &a, &e) == RD_OK && fabs(l1[W2 + 1] - l0[0]) > 1e-6,
             "condition has no effect");
    rd_arena_release(&a);
    rd_flow_plan_free(p0);
    rd_flow_plan_free(p1);
    rd_flow_plan_free(pid);
    rd_flow_free(f);
    free(x0);
    free(x1);
    free(x2);
    free(l0);
    free(l1);
    free(lid);
}

int main(void)
{
    test_grid();
    test_views();
    test_text();
    test_heatmap();
    test_posenc();
    return rd_test_done("test_geometry");
}
