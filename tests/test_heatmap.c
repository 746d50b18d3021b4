/* test_heatmap.c — heatmaps land on the original image's pixels.
 *
 * A 400×300 image is cropped to S = 224 (resized 298×224, crop offset 37 px):
 * a hot spot placed in the S×S map must come back, after rendering at the
 * original geometry and decoding the PNG, at the original coordinates the
 * crop geometry predicts; pixels left and right of the crop are not inspected
 * (raw 0, overlay greyed); the raw PNG carries its scale; the mask is 255
 * exactly where the map is over the threshold. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "heatmap.h"
#include "image.h"
#include "testutil.h"

static int has_text(const rd_png_buf *b, const char *key)
{
    png_image img;
    (void)img;
    /* search the raw bytes for the tEXt keyword */
    for (size_t i = 0; i + strlen(key) < b->len; i++)
        if (!memcmp(b->data + i, key, strlen(key))) return 1;
    return 0;
}

int main(void)
{
    enum { W = 400, H = 300, S = 224 };
    rd_image img = {W, H, malloc(W * H * 3), 0, 0, 0, 0};
    rd_arena a;
    rd_err e;
    rd_crop crop;
    uint8_t *u8 = malloc(S * S * 3);
    float *map = calloc(S * S, sizeof(float));
    for (int i = 0; i < W * H * 3; i++) img.rgb[i] = (uint8_t)(i * 7);
    RD_CHECK(rd_arena_init(&a, rd_preprocess_scratch(W, H, S) * sizeof(float), &e) == RD_OK, "arena");
    RD_CHECK(rd_resize_crop_u8(&img, S, u8, &crop, &a, &e) == RD_OK, "crop: %s", e.msg);
    RD_CHECK(crop.resized_w == 298 && crop.resized_h == 224 && crop.off_x == 37 && crop.off_y == 0,
             "geometry %d %d %d %d", crop.resized_w, crop.resized_h, crop.off_x, crop.off_y);
    /* hot spot at crop (u, v) = (150, 60) */
    const int hu = 150, hv = 60;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) map[y * S + x] = expf(-((x - hu) * (x - hu) + (y - hv) * (y - hv)) / 50.0f);
    rd_heat_params p = {0.0f, 1.0f, 0.5f, W, H};
    rd_png_buf raw, mask, over;
    RD_CHECK(rd_heatmap_render(RD_HEAT_RAW, map, &crop, NULL, &p, &raw, &e) == RD_OK, "raw: %s", e.msg);
    RD_CHECK(rd_heatmap_render(RD_HEAT_MASK, map, &crop, NULL, &p, &mask, &e) == RD_OK, "mask: %s", e.msg);
    RD_CHECK(rd_heatmap_render(RD_HEAT_OVERLAY, map, &crop, &img, &p, &over, &e) == RD_OK, "overlay: %s", e.msg);
    RD_CHECK(has_text(&raw, "resadd:scale") && has_text(&raw, "resadd:crop"), "tEXt chunks missing");
    rd_image r, m, o;
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_decode_opts keep = {0, RD_ALPHA_IGNORE, 0}; /* the raw value, not composited */
    RD_CHECK(rd_image_decode_opts(raw.data, raw.len, &lim, &keep, &r, &e) == RD_OK, "decode raw: %s", e.msg);
    RD_CHECK(rd_image_decode(mask.data, mask.len, &lim, &m, &e) == RD_OK, "decode mask: %s", e.msg);
    RD_CHECK(rd_image_decode(over.data, over.len, &lim, &o, &e) == RD_OK, "decode overlay: %s", e.msg);
    RD_CHECK(r.w == W && r.h == H && m.w == W && o.w == W, "sizes");
    int bx = 0, by = 0, best = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (r.rgb[(y * W + x) * 3] > best) best = r.rgb[(y * W + x) * 3], bx = x, by = y;
    double ex = crop.x + (hu + 0.5) * crop.w / S, ey = crop.y + (hv + 0.5) * crop.h / S;
    RD_CHECK(fabs(bx - ex) <= 2 && fabs(by - ey) <= 2, "hot spot at (%d,%d), expected (%.1f,%.1f)", bx, by, ex, ey);
    RD_CHECK(best >= 245, "peak not near full scale: %d", best);
    /* outside the crop (x < 49 or x ≥ 350): not inspected — value 0 (alpha 0, see
     * test_geometry), overlay greyed */
    for (int y = 0; y < H; y += 17) {
        RD_CHECK(r.rgb[(y * W + 10) * 3] == 0 && r.rgb[(y * W + 390) * 3] == 0, "score outside the crop");
        const uint8_t *q = o.rgb + (y * W + 5) * 3;
        RD_CHECK(q[0] == q[1] && q[1] == q[2], "overlay not greyed outside the crop");
    }
    int mism = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int hot = r.rgb[(y * W + x) * 3] >= 128; /* raw ≥ 0.5 ↔ mask on (up to rounding) */
            int on = m.rgb[(y * W + x) * 3] == 255;
            mism += hot != on;
        }
    RD_CHECK(mism < 20, "mask disagrees with threshold at %d pixels", mism);
    rd_heat_params bad = p;
    bad.out_w = 0;
    rd_png_buf z;
    RD_CHECK(rd_heatmap_render(RD_HEAT_RAW, map, &crop, NULL, &bad, &z, &e) != RD_OK, "bad size accepted");
    RD_CHECK(rd_heatmap_render(RD_HEAT_OVERLAY, map, &crop, NULL, &p, &z, &e) != RD_OK, "overlay without image");
    rd_image_release(&r);
    rd_image_release(&m);
    rd_image_release(&o);
    rd_png_buf_release(&raw);
    rd_png_buf_release(&mask);
    rd_png_buf_release(&over);
    rd_image_release(&img);
    rd_arena_release(&a);
    free(u8);
    free(map);
    return rd_test_done("heatmap");
}
