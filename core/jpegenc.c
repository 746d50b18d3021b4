/* jpegenc.c — in-memory JPEG encoding with libjpeg-turbo (see jpegenc.h).
 * Errors longjmp back out of libjpeg into the one cleanup path. */
#include "jpegenc.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static void on_error(j_common_ptr c)
{
    jerr *e = (jerr *)c->err;
    longjmp(e->jb, 1);
}

rd_status rd_jpeg_encode(const rd_image *img, int quality, rd_png_buf *out, rd_err *err)
{
    struct jpeg_compress_struct c;
    jerr je;
    /* libjpeg's destination buffer: its address escapes, so it is reread after a longjmp */
    struct {
        unsigned char *p;
        unsigned long n;
    } m = {NULL, 0};
    out->data = NULL;
    out->len = 0;
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0) return rd_err_set(err, RD_ERR_ARG, "jpeg: empty image");
    memset(&c, 0, sizeof c);
    c.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_error;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&c);
        free(m.p);
        return rd_err_set(err, RD_ERR_INTERNAL, "jpeg: encoding failed");
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &m.p, &m.n);
    c.image_width = (JDIMENSION)img->w;
    c.image_height = (JDIMENSION)img->h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(img->rgb + (size_t)c.next_scanline * (size_t)img->w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    out->data = m.p;
    out->len = m.n;
    return RD_OK;
}
