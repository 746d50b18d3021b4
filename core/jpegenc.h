/* jpegenc.h — encodes decoded pixels as a baseline JPEG in memory
 * (libjpeg-turbo): the retained copy of an inspected image that the overlay
 * heatmap is rendered over later. */
#ifndef RD_JPEGENC_H
#define RD_JPEGENC_H

#include "heatmap.h" /* rd_png_buf: a malloc'ed byte buffer */
#include "image.h"
#include "status.h"

/* quality 1..100; out->data is malloc'ed (rd_png_buf_release). */
rd_status rd_jpeg_encode(const rd_image *img, int quality, rd_png_buf *out, rd_err *err) RD_WARN_UNUSED;

#endif
