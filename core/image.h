/* image.h — decoding JPEG/PNG into 8-bit RGB and preprocessing for the backbone.
 *
 * Decoding uses libjpeg-turbo and libpng.  Dimensions are read from the header
 * and checked against rd_image_limits *before* any pixel buffer is allocated,
 * so a 100000×100000 header costs nothing.  Grayscale, palette, 16-bit and
 * alpha inputs are converted to RGB8.  CMYK/YCCK JPEGs are converted (Adobe
 * inverted CMYK handled).  Truncated or corrupt data is RD_ERR_FORMAT with a
 * message, never a crash or a partly-filled image.
 *
 * What cameras send:
 *  - EXIF orientation (JPEG APP1 "Exif", PNG eXIf) is applied before anything
 *    else, like PIL's ImageOps.exif_transpose: w/h are the *displayed* size,
 *    so maps and heatmaps match what an image viewer shows.
 *  - Alpha policy (rd_decode_opts.alpha): RD_ALPHA_COMPOSITE (default)
 *    composites on the fixed background RD_IMAGE_BG (mid-grey 128, the
 *    dataset builder's flattening too); RD_ALPHA_IGNORE drops the alpha
 *    channel and keeps the stored colour.
 *  - Reduced-scale decoding (rd_decode_opts.min_short): an image much larger
 *    than the working size is decoded at 1/2, 1/4 or 1/8 — the largest
 *    reduction whose decoded short side stays ≥ min_short, so the antialiased
 *    resize that follows still has at least as many pixels as it outputs.
 *    JPEGs use libjpeg-turbo's DCT scaling (only the reduced image is ever in
 *    memory); non-interlaced PNGs are box-averaged over d×d blocks as their
 *    rows are read (one RGBA row and one row of sums in memory, never the
 *    full-size frame; the last block of a row or column averages the pixels
 *    it has, like libjpeg's ceil(side / d) output); interlaced PNGs are
 *    decoded at full size.  The limits are checked on the full-size header (a
 *    decompression bomb is refused whatever the scale) and, with
 *    max_decoded, on what is actually decoded.  full_w/full_h keep the
 *    displayed full-size geometry.
 *  - rd_image_probe reads only the header (and the EXIF orientation) so a
 *    caller can choose min_short for the frame before decoding it.
 *
 * Preprocessing follows torchvision's Resize(S) + CenterCrop(S): the shorter
 * side is resized to S with antialiased bicubic (PIL's Image.resize(BICUBIC)
 * filter, support 2·scale, a = -0.5), the long side to floor-like torchvision
 * rounding (int(S·long/short)), then the centre S×S is cropped; values are
 * /255, then (x − mean)/std per channel.  rd_crop records where the crop lies in
 * the original image so maps can be drawn back onto it.  rd_resize_u8 is the
 * same filter to any W×H without a crop (whole-frame inspection). */
#ifndef RD_IMAGE_H
#define RD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "status.h"

#define RD_IMAGE_BG 128 /* background for alpha compositing */

typedef struct rd_image {
    int w, h;     /* displayed size of rgb (after EXIF orientation, at the decoded scale) */
    uint8_t *rgb; /* w*h*3, row-major; owned (malloc), free with rd_image_release */
    /* Filled by the decoder; 0 in hand-built images (read them through
     * rd_image_full_size). */
    int full_w, full_h; /* displayed size at full scale (== w, h unless decoded at reduced scale) */
    int orientation;    /* EXIF orientation that was applied, 1..8 (1 = none) */
    int scale_denom;    /* reduction used: 1 (full size), 2, 4 or 8 (DCT scaling, or PNG box average) */
} rd_image;

/* The frame's displayed full-scale size (w, h for hand-built images). */
void rd_image_full_size(const rd_image *img, int *w, int *h);

typedef enum rd_image_alpha {
    RD_ALPHA_COMPOSITE = 0, /* composite on RD_IMAGE_BG (default) */
    RD_ALPHA_IGNORE = 1     /* drop alpha, keep the stored colour */
} rd_image_alpha;

typedef struct rd_decode_opts {
    int min_short;        /* 0 = full size; else JPEGs (DCT scaling) and
                             non-interlaced PNGs (box average) are reduced by 1/2,
                             1/4 or 1/8 while the decoded short side stays ≥ min_short */
    rd_image_alpha alpha; /* see above */
    int no_orient;        /* 1 = ignore EXIF orientation (stored pixel order) */
} rd_decode_opts;

typedef struct rd_image_limits {
    int max_side;         /* each of width and height (default 30000) */
    uint64_t max_pixels;  /* width × height of the frame (default 40 000 000) */
    uint64_t max_decoded; /* width × height actually decoded (after any reduction);
                             0 = max_pixels.  A caller's budget of pixels in memory. */
} rd_image_limits;

#define RD_IMAGE_LIMITS_DEFAULT {30000, 40000000ull, 0}

typedef enum rd_image_format { RD_IMG_UNKNOWN, RD_IMG_JPEG, RD_IMG_PNG } rd_image_format;

/* Format from magic bytes. */
rd_image_format rd_image_sniff(const void *buf, size_t len);

/* Decodes a complete JPEG or PNG in memory at full size, EXIF orientation
 * applied, alpha composited.  On error *out is left empty. */
rd_status rd_image_decode(const void *buf, size_t len, const rd_image_limits *lim, rd_image *out,
                          rd_err *err) RD_WARN_UNUSED;
/* The same with options (NULL = the defaults above). */
rd_status rd_image_decode_opts(const void *buf, size_t len, const rd_image_limits *lim, const rd_decode_opts *o,
                               rd_image *out, rd_err *err) RD_WARN_UNUSED;
/* The scale denominator (1, 2, 4, 8) rd_image_decode_opts picks for an image
 * whose stored short side is short_side. */
int rd_image_scale_for(int short_side, int min_short);

/* What rd_image_probe reads from a header: the displayed size (EXIF
 * orientation applied, as rd_image_decode would give it at full scale), the
 * orientation and whether rd_image_decode_opts can reduce it (JPEG,
 * non-interlaced PNG). */
typedef struct rd_image_info {
    rd_image_format format;
    int w, h;        /* displayed full-scale size */
    int orientation; /* 1..8 */
    int reducible;
} rd_image_info;

/* Reads the header only (no pixel is decoded, nothing sized by the image is
 * allocated); the limits are not applied.  RD_ERR_FORMAT / RD_ERR_UNSUPPORTED
 * as rd_image_decode for what it cannot read. */
rd_status rd_image_probe(const void *buf, size_t len, rd_image_info *out, rd_err *err) RD_WARN_UNUSED;
/* EXIF orientation (1..8) from a TIFF-structured EXIF block (the bytes after
 * "Exif\0\0" in a JPEG APP1, or a PNG eXIf chunk); 1 when absent or
 * malformed.  Bounds-checked: any bytes are safe. */
int rd_exif_orientation(const uint8_t *tiff, size_t len);
/* Reads a file and decodes it; messages carry the path. */
rd_status rd_image_load(const char *path, const rd_image_limits *lim, rd_image *out,
                        rd_err *err) RD_WARN_UNUSED;
rd_status rd_image_load_opts(const char *path, const rd_image_limits *lim, const rd_decode_opts *o, rd_image *out,
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

/* Resizes the whole frame to ow×oh (no crop) with the same PIL-exact
 * antialiased bicubic filter, into out (ow*oh*3).  Scratch: rd_preprocess_scratch(w, h, max(ow, oh)). */
rd_status rd_resize_u8(const rd_image *img, int ow, int oh, uint8_t *out, rd_arena *scratch,
                       rd_err *err) RD_WARN_UNUSED;

/* A ground-truth mask (decoded image, > 127 = defect) given the geometry of
 * crop: resized with nearest (PIL NEAREST) and centre-cropped like the image,
 * into out (s×s bytes, 0/1).  Evaluation and training use it. */
void rd_mask_to_crop(const rd_image *mask, const rd_crop *crop, uint8_t *out);

/* Writes 8-bit RGB as PNG to a file (fixtures, debugging). */
rd_status rd_image_save_png(const rd_image *img, const char *path, rd_err *err) RD_WARN_UNUSED;

#endif
