/* image.h — decoding JPEG/PNG into 8-bit RGB and preprocessing for the backbone.
 *
 * Decoding uses libjpeg-turbo and libpng.  Dimensions are read from the header
 * and checked against rd_image_limits *before* any pixel buffer is allocated,
 * so a 100000×100000 header costs nothing.  Grayscale, palette, 16-bit and
 * alpha inputs are converted to RGB8; alpha is composited on RD_IMAGE_BG
 * (mid-gray).  CMYK/YCCK JPEGs are converted (Adobe inverted CMYK handled).
 * Truncated or corrupt data is RD_ERR_FORMAT with a message, never a crash or
 * a partly-filled image.
 *
 * Preprocessing follows torchvision's Resize(S) + CenterCrop(S): the shorter
 * side is resized to S with antialiased bicubic (PIL's Image.resize(BICUBIC)
 * filter, support 2·scale, a = -0.5), the long side to floor-like torchvision
 * rounding (int(S·long/short)), then the centre S×S is cropped; values are
 * /255, then (x − mean)/std per channel.  rd_crop records where the crop lies in
 * the original image so maps can be drawn back onto it. */
#ifndef RD_IMAGE_H
#define RD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "status.h"

#define RD_IMAGE_BG 128 /* background for alpha compositing */

typedef struct rd_image {
    int w, h;
    uint8_t *rgb; /* w*h*3, row-major; owned (malloc), free with rd_image_release */
} rd_image;

typedef struct rd_image_limits {
    int max_side;         /* each of width and height (default 30000) */
    uint64_t max_pixels;  /* width × height (default 40 000 000) */
} rd_image_limits;

#define RD_IMAGE_LIMITS_DEFAULT {30000, 40000000ull}

typedef enum rd_image_format { RD_IMG_UNKNOWN, RD_IMG_JPEG, RD_IMG_PNG } rd_image_format;

/* Format from magic bytes. */
rd_image_format rd_image_sniff(const void *buf, size_t len);

/* Decodes a complete JPEG or PNG in memory.  On error *out is left empty. */
rd_status rd_image_decode(const void *buf, size_t len, const rd_image_limits *lim, rd_image *out,
                          rd_err *err) RD_WARN_UNUSED;
/* Reads a file and decodes it; messages carry the path. */
rd_status rd_image_load(const char *path, const rd_image_limits *lim, rd_image *out,
                        rd_err *err) RD_WARN_UNUSED;
void rd_image_release(rd_image *img);

/* Where the S×S crop lies in original pixel coordinates: the crop covers
 * [x, x + w) × [y, y + h) of the original image (w == h for square pixels up to
 * rounding).  resized_w/h and off_x/off_y are the intermediate geometry. */
typedef struct rd_crop {
    int s;
    int resized_w, resized_h;
    int off_x, off_y;       /* crop offset inside the resized image */
    double x, y, w, h;      /* crop rectangle in original coordinates */
} rd_crop;

/* Scratch floats rd_preprocess needs for an image of w×h at size s. */
size_t rd_preprocess_scratch(int w, int h, int s);

/* Resize + centre crop + normalize into out (s*s*3 floats, HWC). */
rd_status rd_preprocess(const rd_image *img, int s, const float mean[3], const float std[3],
                        float *out, rd_crop *crop, rd_arena *scratch, rd_err *err) RD_WARN_UNUSED;

/* The same resize + crop without normalization, to 8-bit RGB (s*s*3); used to
 * build test fixtures and by tests against PIL. */
rd_status rd_resize_crop_u8(const rd_image *img, int s, uint8_t *out, rd_crop *crop,
                            rd_arena *scratch, rd_err *err) RD_WARN_UNUSED;

/* A ground-truth mask (decoded image, > 127 = defect) given the geometry of
 * crop: resized with nearest (PIL NEAREST) and centre-cropped like the image,
 * into out (s×s bytes, 0/1).  Evaluation and training use it. */
void rd_mask_to_crop(const rd_image *mask, const rd_crop *crop, uint8_t *out);

/* Writes 8-bit RGB as PNG to a file (fixtures, debugging). */
rd_status rd_image_save_png(const rd_image *img, const char *path, rd_err *err) RD_WARN_UNUSED;

#endif
