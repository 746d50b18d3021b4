/* image.c — JPEG/PNG decoding to RGB8 and torchvision-style preprocessing.
 *
 * Decoding: libjpeg-turbo (libjpeg API) and libpng, both with setjmp error
 * handlers so a corrupt file is an error message, never an exit() or a crash.
 * Warnings (truncated data, corrupt segments) are treated as errors: a part
 * image that does not decode completely must not be scored.  Dimensions are
 * checked against rd_image_limits right after the header, before allocation,
 * for the full-size frame and for what is decoded (DCT-scaled JPEGs,
 * box-reduced PNGs: a PNG reduced by d keeps one RGBA row and one row of
 * uint32 sums, so a 20 MP PNG at 1/8 needs ~1 MB, not 80).
 *
 * EXIF: the orientation tag is read by a small bounds-checked TIFF-IFD0
 * reader (rd_exif_orientation; every offset checked against the block's
 * length, nothing followed beyond IFD0) from the first JPEG APP1 "Exif\0\0"
 * segment or the PNG eXIf chunk, and applied to the decoded pixels with one
 * remapping copy (PIL's exif_transpose: 2 mirror, 3 rotate 180, 4 flip,
 * 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise).
 *
 * Resizing reproduces Pillow's Image.resize(BICUBIC) on 8-bit images: a
 * separable convolution with the Keys cubic (a = −0.5) stretched by the
 * downscale factor (antialiasing), coefficients normalized per output pixel
 * and quantized to 22-bit fixed point, horizontal pass first, each pass
 * rounding and clipping to 8 bits — so the result matches PIL's bytes.  Only
 * the rows and columns the centre crop needs are computed. */
#include "image.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

rd_image_format rd_image_sniff(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return RD_IMG_JPEG;
    if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return RD_IMG_PNG;
    return RD_IMG_UNKNOWN;
}

void rd_image_release(rd_image *img)
{
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

static rd_status check_limits(const rd_image_limits *lim, uint64_t w, uint64_t h, const char *what, rd_err *err)
{
    rd_image_limits def = RD_IMAGE_LIMITS_DEFAULT;
    if (!lim) lim = &def;
    if (w == 0 || h == 0) return rd_err_set(err, RD_ERR_FORMAT, "%s image has zero size", what);
    if (w > (uint64_t)lim->max_side || h > (uint64_t)lim->max_side)
        return rd_err_set(err, RD_ERR_LIMIT, "%s image is %llux%llu, over the %d-pixel side limit", what,
                          (unsigned long long)w, (unsigned long long)h, lim->max_side);
    if (w * h > lim->max_pixels)
        return rd_err_set(err, RD_ERR_LIMIT, "%s image is %llux%llu = %.1f MP, over the %.1f MP limit", what,
                          (unsigned long long)w, (unsigned long long)h, (double)(w * h) / 1e6,
                          (double)lim->max_pixels / 1e6);
    return RD_OK;
}

/* What is actually decoded (after any reduction) against max_decoded. */
static rd_status check_decoded(const rd_image_limits *lim, uint64_t w, uint64_t h, const char *what, rd_err *err)
{
    rd_image_limits def = RD_IMAGE_LIMITS_DEFAULT, l;
    if (!lim) lim = &def;
    l = *lim;
    if (l.max_decoded) l.max_pixels = l.max_decoded;
    return check_limits(&l, w, h, what, err);
}

void rd_image_full_size(const rd_image *img, int *w, int *h)
{
    *w = img->full_w > 0 ? img->full_w : img->w;
    *h = img->full_h > 0 ? img->full_h : img->h;
}

/* ---- EXIF ---- */

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1]; }

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int rd_exif_orientation(const uint8_t *p, size_t n)
{
    int le;
    if (!p || n < 8) return 1;
    if (p[0] == 'I' && p[1] == 'I') le = 1;
    else if (p[0] == 'M' && p[1] == 'M') le = 0;
    else return 1;
    if (rd16(p + 2, le) != 42) return 1;
    const uint32_t ifd = rd32(p + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    const unsigned count = rd16(p + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        const size_t e = (size_t)ifd + 2 + (size_t)i * 12; /* ≤ 2^32 + 2 + 65535·12: no overflow */
        if (e > n || n - e < 12) break;
        if (rd16(p + e, le) != 0x0112) continue;
        const unsigned type = rd16(p + e + 2, le);
        const uint32_t cnt = rd32(p + e + 4, le);
        unsigned v = 0;
        if (cnt < 1) return 1;
        if (type == 3) v = rd16(p + e + 8, le);      /* SHORT, inline */
        else if (type == 4) v = rd32(p + e + 8, le); /* LONG, inline */
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Applies orientation o (2..8) to img in a new buffer (w/h swapped for 5..8). */
static rd_status orient(rd_image *img, int o, rd_err *err)
{
    const size_t W = (size_t)img->w, H = (size_t)img->h;
    const int swap = o >= 5;
    const size_t ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *dst = malloc(W * H * 3);
    if (!dst) return rd_err_set(err, RD_ERR_NOMEM, "out of memory orienting a %zux%zu image", W, H);
    for (size_t y = 0; y < oh; y++) {
        uint8_t *d = dst + y * ow * 3;
        for (size_t x = 0; x < ow; x++) {
            size_t sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(d + 3 * x, img->rgb + (sy * W + sx) * 3, 3);
        }
    }
    free(img->rgb);
    img->rgb = dst;
    img->w = (int)ow;
    img->h = (int)oh;
    if (swap) {
        int t = img->full_w;
        img->full_w = img->full_h;
        img->full_h = t;
    }
    img->orientation = o;
    return RD_OK;
}

int rd_image_scale_for(int short_side, int min_short)
{
    int d = 1;
    if (min_short <= 0 || short_side <= 0) return 1;
    /* libjpeg's scaled size is ceil(side / d) */
    while (d < 8 && (short_side + 2 * d - 1) / (2 * d) >= min_short) d *= 2;
    return d;
}

/* ---- JPEG ---- */

typedef struct jerr_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr_mgr;

static void jpeg_fail(j_common_ptr cinfo)
{
    jerr_mgr *e = (jerr_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_message(j_common_ptr cinfo, int level)
{
    /* level −1: a warning (premature end of data, corrupt segment): fatal here */
    if (level < 0) jpeg_fail(cinfo);
}

/* The orientation in the first APP1 "Exif" segment (saved by jpeg_save_markers), 1 without. */
static int jpeg_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr mk = cinfo->marker_list; mk; mk = mk->next)
        if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 6 && !memcmp(mk->data, "Exif\0\0", 6))
            return rd_exif_orientation(mk->data + 6, mk->data_length - 6);
    return 1;
}

/* (the setjmp error set-up is repeated in probe_jpeg: setjmp must run in the
 * frame that libjpeg longjmps back to) */
static rd_status decode_jpeg(const uint8_t *buf, size_t len, const rd_image_limits *lim, const rd_decode_opts *o,
                             rd_image *out, rd_err *err)
{
    struct jpeg_decompress_struct cinfo;
    jerr_mgr je;
    uint8_t *volatile pix = NULL;
    uint8_t *volatile row = NULL;
    volatile rd_status st = RD_OK;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_message;
    if (setjmp(je.jb)) {
        st = rd_err_set(err, RD_ERR_FORMAT, "corrupt or truncated JPEG: %s", je.msg);
        goto out;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    st = check_limits(lim, cinfo.image_width, cinfo.image_height, "JPEG", err);
    if (st != RD_OK) goto out;
    if (!o->no_orient) out->orientation = jpeg_orientation(&cinfo);
    switch (cinfo.jpeg_color_space) {
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default: cinfo.out_color_space = JCS_RGB; break;
    }
    {
        const int sh = cinfo.image_width < cinfo.image_height ? (int)cinfo.image_width : (int)cinfo.image_height;
        out->scale_denom = rd_image_scale_for(sh, o->min_short);
        cinfo.scale_num = 1;
        cinfo.scale_denom = (unsigned)out->scale_denom;
    }
    jpeg_calc_output_dimensions(&cinfo);
    st = check_decoded(lim, cinfo.output_width, cinfo.output_height, "decoded JPEG", err);
    if (st != RD_OK) goto out;
    out->full_w = (int)cinfo.image_width;
    out->full_h = (int)cinfo.image_height;
    jpeg_start_decompress(&cinfo);
    {
        const size_t w = cinfo.output_width, h = cinfo.output_height;
        const int nc = cinfo.output_components;
        pix = malloc(w * h * 3);
        row = malloc(w * (size_t)nc);
        if (!pix || !row) {
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory decoding a %zux%zu JPEG", w, h);
            goto out;
        }
        /* Adobe CMYK JPEGs store inverted values (saw_Adobe_marker) */
        const int inverted = cinfo.saw_Adobe_marker;
        while (cinfo.output_scanline < h) {
            JSAMPROW rp = row;
            size_t y = cinfo.output_scanline;
            if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
                st = rd_err_set(err, RD_ERR_FORMAT, "truncated JPEG");
                goto out;
            }
            uint8_t *o = pix + y * w * 3;
            if (nc == 3) {
                memcpy(o, row, w * 3);
            } else if (nc == 4) {
                for (size_t x = 0; x < w; x++) {
                    int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                    if (!inverted) {
                        c = 255 - c;
                        m = 255 - m;
                        yy = 255 - yy;
                        k = 255 - k;
                    }
                    /* inverted CMYK: value = 255 − ink; RGB = (255 − ink)·(255 − k)/255 */
                    o[3 * x] = (uint8_t)((c * k + 127) / 255);
                    o[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                    o[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
                }
            } else {
                st = rd_err_set(err, RD_ERR_UNSUPPORTED, "JPEG with %d components", nc);
                goto out;
            }
        }
        jpeg_finish_decompress(&cinfo);
        out->w = (int)w;
        out->h = (int)h;
        out->rgb = pix;
        pix = NULL;
    }
out:
    jpeg_destroy_decompress(&cinfo);
    free(pix);
    free(row);
    return st;
}

/* ---- PNG ---- */

/* One channel composited on RD_IMAGE_BG with alpha a (255: the colour as stored). */
static inline uint8_t composite(unsigned v, unsigned a)
{
    return (uint8_t)((v * a + RD_IMAGE_BG * (255 - a) + 127) / 255);
}

typedef struct png_src {
    const uint8_t *buf;
    size_t len, pos;
    char msg[256];
} png_src;

static void png_read_mem(png_structp png, png_bytep data, png_size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "truncated PNG data");
    memcpy(data, s->buf + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* benign ancillary-chunk warnings (bad iCCP, ...) do not affect pixels */
}

/* The PNG eXIf chunk's orientation (libpng keeps the chunk in info). */
static int png_orientation(png_structp png, png_infop info)
{
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 n = 0;
    png_bytep ex = NULL;
    if (png_get_eXIf_1(png, info, &n, &ex) && ex) return rd_exif_orientation(ex, n);
#else
    (void)png;
    (void)info;
#endif
    return 1;
}

/* Whether every chunk up to IEND fits in the buffer.  libpng allocates an
 * eXIf chunk's declared length before reading it, past its chunk size limit
 * (a benign error), so a 170-byte file claiming a 2 GB chunk cost 2 GB of
 * address space; found by fuzz/fuzz_image. */
static int png_chunks_fit(const uint8_t *buf, size_t len)
{
    size_t at = 8;
    while (len - at >= 8) {
        uint32_t n = (uint32_t)buf[at] << 24 | (uint32_t)buf[at + 1] << 16 | (uint32_t)buf[at + 2] << 8 | buf[at + 3];
        if (len - at < 12 || n > len - at - 12) return 0;
        if (!memcmp(buf + at + 4, "IEND", 4)) return 1;
        at += 12 + (size_t)n;
    }
    return 1; /* a cut chunk header: libpng reports it */
}

static rd_status decode_png(const uint8_t *buf, size_t len, const rd_image_limits *lim, const rd_decode_opts *o,
                            rd_image *out, rd_err *err)
{
    png_src src = {buf, len, 0, ""};
    png_structp png = NULL;
    png_infop info = NULL;
    uint8_t *volatile pix = NULL;
    uint8_t *volatile row = NULL;
    uint32_t *volatile acc = NULL;
    volatile rd_status st = RD_OK;

    if (!png_chunks_fit(buf, len))
        return rd_err_set(err, RD_ERR_FORMAT, "corrupt or truncated PNG: a chunk is longer than the file");
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png || !(info = png_create_info_struct(png))) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory starting PNG decoding");
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = rd_err_set(err, RD_ERR_FORMAT, "corrupt or truncated PNG: %s", src.msg);
        goto out;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 1000000, 1000000);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);
    {
        png_uint_32 w, h;
        int depth, ctype, interlace;
        png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
        st = check_limits(lim, w, h, "PNG", err);
        if (st != RD_OK) goto out;
        png_set_expand(png); /* palette → RGB, gray < 8 bit → 8, tRNS → alpha */
        png_set_strip_16(png);
        if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
        /* no alpha and no tRNS: add an opaque one so every row is RGBA
         * (tRNS expands to an alpha channel through png_set_expand) */
        if (!(ctype & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, info, PNG_INFO_tRNS))
            png_set_filler(png, 0xFF, PNG_FILLER_AFTER);
        int passes = png_set_interlace_handling(png);
        png_read_update_info(png, info);
        size_t rb = png_get_rowbytes(png, info);
        if (rb != (size_t)w * 4) {
            st = rd_err_set(err, RD_ERR_UNSUPPORTED, "unexpected PNG row layout");
            goto out;
        }
        /* reduced: non-interlaced rows box-averaged d×d as they are read */
        const int d = passes == 1 ? rd_image_scale_for(w < h ? (int)w : (int)h, o->min_short) : 1;
        const size_t ow = ((size_t)w + (size_t)d - 1) / (size_t)d, oh = ((size_t)h + (size_t)d - 1) / (size_t)d;
        const int ignore = o->alpha == RD_ALPHA_IGNORE;
        st = check_decoded(lim, ow, oh, "decoded PNG", err);
        if (st != RD_OK) goto out;
        if (d > 1) {
            pix = malloc(ow * oh * 3);
            row = malloc((size_t)w * 4);
            acc = calloc(ow * 3, sizeof *acc);
            if (!pix || !row || !acc) {
                st = rd_err_set(err, RD_ERR_NOMEM, "out of memory decoding a %ux%u PNG", (unsigned)w, (unsigned)h);
                goto out;
            }
            for (png_uint_32 y = 0; y < h; y++) {
                png_read_row(png, row, NULL);
                for (size_t x = 0; x < w; x++) {
                    const uint8_t *px = row + 4 * x;
                    uint32_t *a = acc + 3 * (x / (size_t)d);
                    for (int c = 0; c < 3; c++) a[c] += composite(px[c], ignore ? 255 : px[3]);
                }
                if ((y + 1) % (png_uint_32)d && y + 1 < h) continue;
                /* the block row is complete: averages (the last block row or
                 * column has fewer pixels), then start the next */
                const size_t by = y / (size_t)d, nrows = y + 1 - by * (size_t)d;
                uint8_t *op = pix + by * ow * 3;
                for (size_t bx = 0; bx < ow; bx++) {
                    const size_t ncols = (size_t)w - bx * (size_t)d < (size_t)d ? (size_t)w - bx * (size_t)d : (size_t)d;
                    const uint32_t n = (uint32_t)(nrows * ncols);
                    for (int c = 0; c < 3; c++) op[3 * bx + c] = (uint8_t)((acc[3 * bx + c] + n / 2) / n);
                }
                memset(acc, 0, ow * 3 * sizeof *acc);
            }
        } else {
            /* RGBA rows for the whole image (interlaced images need every pass) */
            pix = malloc((size_t)w * h * 4);
            if (!pix) {
                st = rd_err_set(err, RD_ERR_NOMEM, "out of memory decoding a %ux%u PNG", (unsigned)w, (unsigned)h);
                goto out;
            }
            for (int p = 0; p < passes; p++)
                for (png_uint_32 y = 0; y < h; y++) png_read_row(png, pix + (size_t)y * w * 4, NULL);
            /* alpha policy, RGBA → RGB in place: composite on the fixed
             * background or drop the alpha channel */
            uint8_t *dp = pix;
            for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
                const uint8_t *sp = pix + 4 * i;
                for (int c = 0; c < 3; c++) dp[3 * i + c] = composite(sp[c], ignore ? 255 : sp[3]);
            }
            uint8_t *shrunk = realloc(pix, (size_t)w * h * 3);
            if (shrunk) pix = shrunk;
        }
        png_read_end(png, info); /* an eXIf chunk may follow the image data */
        if (!o->no_orient) out->orientation = png_orientation(png, info);
        out->w = (int)ow;
        out->h = (int)oh;
        out->full_w = (int)w;
        out->full_h = (int)h;
        out->scale_denom = d;
        out->rgb = pix;
        pix = NULL;
    }
out:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(pix);
    free(row);
    free(acc);
    return st;
}

/* ---- header probe ---- */

static rd_status probe_jpeg(const uint8_t *buf, size_t len, rd_image_info *out, rd_err *err)
{
    struct jpeg_decompress_struct cinfo;
    jerr_mgr je;
    volatile rd_status st = RD_OK;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_message;
    if (setjmp(je.jb)) {
        st = rd_err_set(err, RD_ERR_FORMAT, "corrupt or truncated JPEG: %s", je.msg);
        goto out;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    out->w = (int)cinfo.image_width;
    out->h = (int)cinfo.image_height;
    out->orientation = jpeg_orientation(&cinfo);
    out->reducible = 1;
out:
    jpeg_destroy_decompress(&cinfo);
    return st;
}

/* IHDR and the first eXIf chunk, walking the chunks (each bounds-checked). */
static rd_status probe_png(const uint8_t *buf, size_t len, rd_image_info *out, rd_err *err)
{
    if (len < 33 || rd32(buf + 8, 0) != 13 || memcmp(buf + 12, "IHDR", 4))
        return rd_err_set(err, RD_ERR_FORMAT, "corrupt or truncated PNG: no IHDR chunk");
    out->w = (int)(rd32(buf + 16, 0) & 0x7fffffff);
    out->h = (int)(rd32(buf + 20, 0) & 0x7fffffff);
    out->reducible = buf[28] == 0; /* not interlaced */
    for (size_t at = 8; len - at >= 12;) {
        const uint32_t n = rd32(buf + at, 0);
        if (n > len - at - 12) break;
        if (!memcmp(buf + at + 4, "eXIf", 4)) {
            out->orientation = rd_exif_orientation(buf + at + 8, n);
            break;
        }
        if (!memcmp(buf + at + 4, "IEND", 4)) break;
        at += 12 + (size_t)n;
    }
    return RD_OK;
}

rd_status rd_image_probe(const void *buf, size_t len, rd_image_info *out, rd_err *err)
{
    rd_status st;
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    out->format = buf && len ? rd_image_sniff(buf, len) : RD_IMG_UNKNOWN;
    switch (out->format) {
    case RD_IMG_JPEG: st = probe_jpeg(buf, len, out, err); break;
    case RD_IMG_PNG: st = probe_png(buf, len, out, err); break;
    default: return rd_err_set(err, RD_ERR_UNSUPPORTED, "not a JPEG or PNG image");
    }
    if (st == RD_OK && out->orientation >= 5) {
        int t = out->w;
        out->w = out->h;
        out->h = t;
    }
    if (st == RD_OK && (out->w < 1 || out->h < 1)) st = rd_err_set(err, RD_ERR_FORMAT, "image has zero size");
    return st;
}

rd_status rd_image_decode_opts(const void *buf, size_t len, const rd_image_limits *lim, const rd_decode_opts *o,
                               rd_image *out, rd_err *err)
{
    const rd_decode_opts def = {0, RD_ALPHA_COMPOSITE, 0};
    rd_status st;
    memset(out, 0, sizeof *out);
    if (!o) o = &def;
    if (!buf || len == 0) return rd_err_set(err, RD_ERR_FORMAT, "empty image");
    out->orientation = 1;
    switch (rd_image_sniff(buf, len)) {
    case RD_IMG_JPEG: st = decode_jpeg(buf, len, lim, o, out, err); break;
    case RD_IMG_PNG: st = decode_png(buf, len, lim, o, out, err); break;
    default: return rd_err_set(err, RD_ERR_UNSUPPORTED, "not a JPEG or PNG image");
    }
    if (st == RD_OK && out->orientation > 1) st = orient(out, out->orientation, err);
    if (st != RD_OK) {
        rd_image_release(out);
        memset(out, 0, sizeof *out);
    }
    return st;
}

rd_status rd_image_decode(const void *buf, size_t len, const rd_image_limits *lim, rd_image *out, rd_err *err)
{
    return rd_image_decode_opts(buf, len, lim, NULL, out, err);
}

rd_status rd_image_load(const char *path, const rd_image_limits *lim, rd_image *out, rd_err *err)
{
    return rd_image_load_opts(path, lim, NULL, out, err);
}

rd_status rd_image_load_opts(const char *path, const rd_image_limits *lim, const rd_decode_opts *o, rd_image *out,
                             rd_err *err)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    rd_status st;
    memset(out, 0, sizeof *out);
    if (!f) return rd_err_set(err, RD_ERR_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return rd_err_set(err, RD_ERR_IO, "%s: cannot read", path);
    }
    if ((unsigned long)n > (1ul << 30)) {
        fclose(f);
        return rd_err_set(err, RD_ERR_LIMIT, "%s: file over 1 GiB", path);
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return rd_err_set(err, buf ? RD_ERR_IO : RD_ERR_NOMEM, "%s: cannot read", path);
    }
    fclose(f);
    st = rd_image_decode_opts(buf, (size_t)n, lim, o, out, err);
    free(buf);
    if (st != RD_OK) rd_err_prefix(err, "%s", path);
    return st;
}

/* ---- resize + crop ---- */

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* Pillow's precompute_coeffs for one axis, for output indices [o0, o1):
 * bounds[2·i] = first input index, bounds[2·i+1] = count; kk = fixed-point
 * coefficients, ksize per output. */
typedef struct axis {
    int ksize;
    int *bounds;
    int32_t *k;
} axis;

static int axis_init(axis *ax, int in, int out, int o0, int o1)
{
    double scale = (double)in / out, filterscale = scale < 1 ? 1 : scale;
    double support = 2.0 * filterscale;
    int n = o1 - o0;
    ax->ksize = (int)ceil(support) * 2 + 1;
    ax->bounds = malloc(sizeof(int) * 2 * (size_t)n);
    ax->k = malloc(sizeof(int32_t) * (size_t)ax->ksize * (size_t)n);
    double *kd = malloc(sizeof(double) * (size_t)ax->ksize);
    if (!ax->bounds || !ax->k || !kd) {
        free(kd);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int o = o0 + i;
        double center = (o + 0.5) * scale, ss = 1.0 / filterscale, ww = 0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            kd[x] = w;
            ww += w;
        }
        int32_t *kk = ax->k + (size_t)i * ax->ksize;
        for (int x = 0; x < ax->ksize; x++) {
            double v = x < xmax && ww != 0 ? kd[x] / ww : 0;
            /* Pillow: (int)(v·2^P + 0.5) for v ≥ 0, (int)(v·2^P − 0.5) otherwise */
            kk[x] = (int32_t)(v < 0 ? v * (1 << PRECISION_BITS) - 0.5 : v * (1 << PRECISION_BITS) + 0.5);
        }
        ax->bounds[2 * i] = xmin;
        ax->bounds[2 * i + 1] = xmax;
    }
    free(kd);
    return 0;
}

static void axis_free(axis *ax)
{
    free(ax->bounds);
    free(ax->k);
}

static inline uint8_t clip8(int64_t v)
{
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* torchvision Resize(S) + CenterCrop(S) geometry. */
static void crop_geometry(int w, int h, int s, rd_crop *c)
{
    int rw, rh;
    if (w <= h) {
        rw = s;
        rh = (int)((double)s * h / w);
    } else {
        rh = s;
        rw = (int)((double)s * w / h);
    }
    c->s = s;
    c->resized_w = rw;
    c->resized_h = rh;
    c->off_y = (int)nearbyint((rh - s) / 2.0); /* Python round(): half to even */
    c->off_x = (int)nearbyint((rw - s) / 2.0);
    double sx = (double)w / rw, sy = (double)h / rh;
    c->x = c->off_x * sx;
    c->y = c->off_y * sy;
    c->w = s * sx;
    c->h = s * sy;
}

size_t rd_preprocess_scratch(int w, int h, int s)
{
    /* u8 output s·s·3 + horizontal-pass rows (≤ h) × s × 3, as floats (rounded up) */
    size_t bytes = (size_t)s * s * 3 + (size_t)(h > 0 ? h : 1) * (size_t)s * 3 + 256;
    (void)w;
    return (bytes + sizeof(float) - 1) / sizeof(float) + 64;
}

/* Resizes img to rw×rh (PIL bicubic) and writes the ow×oh window at
 * (off_x, off_y) of the result; only that window is computed. */
static rd_status resize_window(const rd_image *img, int rw, int rh, int off_x, int off_y, int ow, int oh, uint8_t *out,
                               rd_arena *scratch, rd_err *err)
{
    axis ax = {0}, ay = {0};
    rd_status st = RD_OK;
    if (axis_init(&ax, img->w, rw, off_x, off_x + ow) || axis_init(&ay, img->h, rh, off_y, off_y + oh)) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory resizing");
        goto out;
    }
    /* input rows the vertical pass needs */
    int ymin = ay.bounds[0], ymax = 0;
    for (int i = 0; i < oh; i++) {
        int e = ay.bounds[2 * i] + ay.bounds[2 * i + 1];
        if (ay.bounds[2 * i] < ymin) ymin = ay.bounds[2 * i];
        if (e > ymax) ymax = e;
    }
    size_t mark = rd_arena_mark(scratch);
    uint8_t *tmp = rd_arena_alloc(scratch, (size_t)(ymax - ymin) * ow * 3 + 1);
    if (!tmp) {
        st = rd_err_set(err, RD_ERR_INTERNAL, "preprocess scratch too small");
        goto out;
    }
    const int need_h = rw != img->w, need_v = rh != img->h;
    /* horizontal pass: rows [ymin, ymax) → ow columns */
    for (int y = ymin; y < ymax; y++) {
        const uint8_t *src = img->rgb + (size_t)y * img->w * 3;
        uint8_t *dst = tmp + (size_t)(y - ymin) * ow * 3;
        for (int i = 0; i < ow; i++) {
            if (!need_h) {
                memcpy(dst + 3 * i, src + 3 * (off_x + i), 3);
                continue;
            }
            const int x0 = ax.bounds[2 * i], n = ax.bounds[2 * i + 1];
            const int32_t *k = ax.k + (size_t)i * ax.ksize;
            int64_t r = 1 << (PRECISION_BITS - 1), g = r, b = r;
            for (int x = 0; x < n; x++) {
                const uint8_t *p = src + 3 * (x0 + x);
                r += (int64_t)p[0] * k[x];
                g += (int64_t)p[1] * k[x];
                b += (int64_t)p[2] * k[x];
            }
            dst[3 * i] = clip8(r);
            dst[3 * i + 1] = clip8(g);
            dst[3 * i + 2] = clip8(b);
        }
    }
    /* vertical pass */
    for (int j = 0; j < oh; j++) {
        uint8_t *dst = out + (size_t)j * ow * 3;
        if (!need_v) {
            memcpy(dst, tmp + (size_t)(off_y + j - ymin) * ow * 3, (size_t)ow * 3);
            continue;
        }
        const int y0 = ay.bounds[2 * j], n = ay.bounds[2 * j + 1];
        const int32_t *k = ay.k + (size_t)j * ay.ksize;
        for (int i = 0; i < ow * 3; i++) {
            int64_t acc = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) acc += (int64_t)tmp[(size_t)(y0 + y - ymin) * ow * 3 + i] * k[y];
            dst[i] = clip8(acc);
        }
    }
    rd_arena_rewind(scratch, mark);
out:
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

rd_status rd_resize_crop_u8(const rd_image *img, int s, uint8_t *out, rd_crop *crop, rd_arena *scratch, rd_err *err)
{
    rd_crop c;
    if (!img || !img->rgb || img->w < 1 || img->h < 1 || s < 1) return rd_err_set(err, RD_ERR_ARG, "bad image");
    crop_geometry(img->w, img->h, s, &c);
    rd_status st = resize_window(img, c.resized_w, c.resized_h, c.off_x, c.off_y, s, s, out, scratch, err);
    if (st == RD_OK && crop) *crop = c;
    return st;
}

rd_status rd_resize_u8(const rd_image *img, int ow, int oh, uint8_t *out, rd_arena *scratch, rd_err *err)
{
    if (!img || !img->rgb || img->w < 1 || img->h < 1 || ow < 1 || oh < 1)
        return rd_err_set(err, RD_ERR_ARG, "bad image or size");
    return resize_window(img, ow, oh, 0, 0, ow, oh, out, scratch, err);
}

rd_status rd_preprocess(const rd_image *img, int s, const float mean[3], const float std[3], float *out,
                        rd_crop *crop, rd_arena *scratch, rd_err *err)
{
    size_t mark = rd_arena_mark(scratch);
    uint8_t *u8 = rd_arena_alloc(scratch, (size_t)s * s * 3);
    rd_status st;
    float lut[3][256];
    if (!u8) return rd_err_set(err, RD_ERR_INTERNAL, "preprocess scratch too small");
    st = rd_resize_crop_u8(img, s, u8, crop, scratch, err);
    if (st == RD_OK) {
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
        for (size_t i = 0, n = (size_t)s * s; i < n; i++)
            for (int c = 0; c < 3; c++) out[3 * i + c] = lut[c][u8[3 * i + c]];
    }
    rd_arena_rewind(scratch, mark);
    return st;
}

void rd_mask_to_crop(const rd_image *m, const rd_crop *c, uint8_t *out)
{
    for (int y = 0; y < c->s; y++) {
        int sy = (int)(((double)(y + c->off_y) + 0.5) * m->h / c->resized_h);
        if (sy >= m->h) sy = m->h - 1;
        for (int x = 0; x < c->s; x++) {
            int sx = (int)(((double)(x + c->off_x) + 0.5) * m->w / c->resized_w);
            if (sx >= m->w) sx = m->w - 1;
            out[(size_t)y * c->s + x] = m->rgb[((size_t)sy * m->w + sx) * 3] > 127;
        }
    }
}

rd_status rd_image_save_png(const rd_image *img, const char *path, rd_err *err)
{
    FILE *f = fopen(path, "wb");
    png_structp png = NULL;
    png_infop info = NULL;
    volatile rd_status st = RD_OK;
    if (!f) return rd_err_set(err, RD_ERR_IO, "%s: cannot create", path);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png || !(info = png_create_info_struct(png))) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory writing PNG");
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = rd_err_set(err, RD_ERR_IO, "%s: PNG write failed", path);
        goto out;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++) png_write_row(png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(png, NULL);
out:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    if (fclose(f) != 0 && st == RD_OK) st = rd_err_set(err, RD_ERR_IO, "%s: write failed", path);
    return st;
}
