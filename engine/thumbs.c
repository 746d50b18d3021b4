/* thumbs.c — thumbnails of stored images (see thumbs.h). */
#include "thumbs.h"

#include <stdlib.h>

#include "arena.h"
#include "image.h"
#include "jpegenc.h"

rd_status rd_thumbnail_jpeg(const uint8_t *bytes, size_t len, int max_side, rd_png_buf *out, rd_err *err)
{
    rd_image img = {0}, small = {0};
    rd_arena scratch = {0};
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_decode_opts o = {.min_short = max_side};
    rd_status st = rd_image_decode_opts(bytes, len, &lim, &o, &img, err);
    if (st != RD_OK) goto out;
    int w = img.w, h = img.h, lng = w > h ? w : h;
    if (lng > max_side) { /* fit the long side, keep the aspect */
        w = (int)((long)img.w * max_side / lng);
        h = (int)((long)img.h * max_side / lng);
        if (w < 1) w = 1;
        if (h < 1) h = 1;
    }
    small.w = w;
    small.h = h;
    small.rgb = malloc((size_t)w * (size_t)h * 3);
    if (!small.rgb) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t need = rd_preprocess_scratch(img.w, img.h, w > h ? w : h) * sizeof(float) + 4 * RD_ARENA_ALIGN;
    if ((st = rd_arena_init(&scratch, need, err)) != RD_OK) goto out;
    if ((st = rd_resize_u8(&img, w, h, small.rgb, &scratch, err)) != RD_OK) goto out;
    st = rd_jpeg_encode(&small, 85, out, err);
out:
    rd_arena_release(&scratch);
    rd_image_release(&small);
    rd_image_release(&img);
    return st;
}
