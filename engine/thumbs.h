/* thumbs.h — a small JPEG of a stored image (GET /v1/inspections/{id}/image
 * ?kind=thumbnail): decoded with DCT scaling, resized with the same
 * antialiased filter as the model's input, re-encoded. */
#ifndef RD_ENGINE_THUMBS_H
#define RD_ENGINE_THUMBS_H

#include <stddef.h>
#include <stdint.h>

#include "heatmap.h" /* rd_png_buf */
#include "status.h"

#define RD_THUMB_SIDE 256 /* the long side of a thumbnail, at most */

/* JPEG or PNG bytes -> a JPEG whose long side is at most max_side (never
 * upscaled); out->data is malloc'ed (rd_png_buf_release). */
rd_status rd_thumbnail_jpeg(const uint8_t *img, size_t len, int max_side, rd_png_buf *out, rd_err *err) RD_WARN_UNUSED;

#endif
