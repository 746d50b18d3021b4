/* image_tool.c — test driver exposing image/map operations to the Python parity tests.
 *   image_tool decode IN OUT.raw            → prints "w h", writes RGB8
 *   image_tool resize IN S OUT.raw          → prints crop geometry, writes S×S×3 RGB8
 *   image_tool mapops IN.raw OUT.raw        → upsample 14×11→224² and blur a 60×45 map (σ=4)
 *   image_tool decodeopt IN MINSHORT ALPHA NOORIENT OUT.raw
 *                                           → rd_image_load_opts (ALPHA 0 composite, 1 ignore);
 *                                             prints "w h full_w full_h orientation scale_denom"
 *   image_tool resizewh IN W H OUT.raw      → whole-frame resize to W×H (rd_resize_u8)
 *   image_tool probe IN                     → rd_image_probe: prints "format w h orientation reducible"
 * Exit 1 with the error message on stderr when decoding fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "mapops.h"
#include "testutil.h"

int main(int argc, char **argv)
{
    rd_err e = {0};
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    if (argc >= 4 && !strcmp(argv[1], "decode")) {
        rd_image im;
        if (rd_image_load(argv[2], &lim, &im, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        FILE *f = fopen(argv[3], "wb");
        fwrite(im.rgb, 1, (size_t)im.w * im.h * 3, f);
        fclose(f);
        printf("%d %d\n", im.w, im.h);
        rd_image_release(&im);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "resize")) {
        rd_image im;
        rd_arena a;
        rd_crop c;
        int s = atoi(argv[3]);
        if (rd_image_load(argv[2], &lim, &im, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (rd_arena_init(&a, rd_preprocess_scratch(im.w, im.h, s) * sizeof(float), &e)) return 1;
        unsigned char *o = malloc((size_t)s * s * 3);
        if (rd_resize_crop_u8(&im, s, o, &c, &a, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        FILE *f = fopen(argv[4], "wb");
        fwrite(o, 1, (size_t)s * s * 3, f);
        fclose(f);
        printf("%d %d %d %d %.6f %.6f %.6f %.6f\n", c.resized_w, c.resized_h, c.off_x, c.off_y, c.x, c.y, c.w, c.h);
        free(o);
        rd_arena_release(&a);
        rd_image_release(&im);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "mapops")) {
        enum { SH = 14, SW = 11, D = 224, H = 60, W = 45 };
        size_t len;
        float *in = (float *)rd_read_file(argv[2], &len);
        if (!in || len != sizeof(float) * (SH * SW + H * W)) return 1;
        float *up = malloc(sizeof(float) * D * D), *tmp = malloc(sizeof(float) * H * W);
        rd_upsample_bilinear_ac(in, SH, SW, up, D, D);
        rd_gauss_blur(in + SH * SW, H, W, 4.0f, tmp);
        FILE *f = fopen(argv[3], "wb");
        fwrite(up, sizeof(float), D * D, f);
        fwrite(in + SH * SW, sizeof(float), H * W, f);
        fclose(f);
        free(in);
        free(up);
        free(tmp);
        return 0;
    }
    if (argc >= 7 && !strcmp(argv[1], "decodeopt")) {
        rd_image im;
        rd_decode_opts o = {atoi(argv[3]), atoi(argv[4]) ? RD_ALPHA_IGNORE : RD_ALPHA_COMPOSITE, atoi(argv[5])};
        if (rd_image_load_opts(argv[2], &lim, &o, &im, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        FILE *f = fopen(argv[6], "wb");
        fwrite(im.rgb, 1, (size_t)im.w * im.h * 3, f);
        fclose(f);
        printf("%d %d %d %d %d %d\n", im.w, im.h, im.full_w, im.full_h, im.orientation, im.scale_denom);
        rd_image_release(&im);
        return 0;
    }
    if (argc >= 6 && !strcmp(argv[1], "resizewh")) {
        rd_image im;
        rd_arena a;
        int ow = atoi(argv[3]), oh = atoi(argv[4]);
        if (rd_image_load(argv[2], &lim, &im, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (rd_arena_init(&a, rd_preprocess_scratch(im.w, im.h, ow > oh ? ow : oh) * sizeof(float), &e)) return 1;
        unsigned char *o = malloc((size_t)ow * oh * 3);
        if (rd_resize_u8(&im, ow, oh, o, &a, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        FILE *f = fopen(argv[5], "wb");
        fwrite(o, 1, (size_t)ow * oh * 3, f);
        fclose(f);
        free(o);
        rd_arena_release(&a);
        rd_image_release(&im);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "probe")) {
        size_t len;
        unsigned char *b = rd_read_file(argv[2], &len);
        rd_image_info in;
        if (!b || rd_image_probe(b, len, &in, &e)) {
            fprintf(stderr, "%s\n", b ? e.msg : "cannot read");
            free(b);
            return 1;
        }
        printf("%d %d %d %d %d\n", (int)in.format, in.w, in.h, in.orientation, in.reducible);
        free(b);
        return 0;
    }
    fprintf(stderr, "usage: image_tool decode|resize|mapops|decodeopt|resizewh|probe ...\n");
    return 2;
}
