/* test_image_corrupt.c — the decoders survive truncated, corrupted and hostile
 * inputs with a clear error (run under ASan+UBSan in CI).
 *
 * Valid seeds are encoded in the test itself (libjpeg baseline + progressive,
 * libpng via the heatmap writer), then: every truncation point (step 7), single
 * byte flips at every 13th offset, a PNG header claiming 100000×100000 with a
 * correct CRC (must be RD_ERR_LIMIT before any pixel allocation), empty input,
 * garbage, wrong magic.  With reduced-scale decoding asked for (min_short), the
 * full-size limits still hold (65000² and 20000² JPEG headers refused although
 * 1/8 of them would fit).  The EXIF reader: a seed JPEG carrying an APP1 EXIF
 * segment (orientation 6) gets the same truncations and flips, and
 * rd_exif_orientation is run on every prefix of valid blocks and on random
 * bytes (ASan checks it never reads outside them). */
#include <stdio.h> /* before jpeglib.h */

#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "heatmap.h"
#include "image.h"
#include "testutil.h"

/* A little-endian TIFF block with IFD0 = {Orientation = o}. */
static size_t exif_block(unsigned char *b, int o, int big_endian)
{
    static const unsigned char le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 1, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0};
    static const unsigned char be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 1, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,
                                       0, 0, 0, 0};
    memcpy(b, big_endian ? be : le, sizeof le);
    b[big_endian ? 19 : 18] = (unsigned char)o;
    return sizeof le;
}

static unsigned char *make_jpeg_exif(int w, int h, int progressive, int orientation, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned char *row = malloc((size_t)w * 3);
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (orientation) {
        unsigned char app1[64];
        memcpy(app1, "Exif\0\0", 6);
        size_t n = exif_block(app1 + 6, orientation, 0);
        jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)(6 + n));
    }
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            row[3 * x] = (unsigned char)(x * 3 + y);
            row[3 * x + 1] = (unsigned char)(y * 5);
            row[3 * x + 2] = (unsigned char)((x ^ y) * 7);
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

static unsigned char *make_jpeg(int w, int h, int progressive, unsigned long *len)
{
    return make_jpeg_exif(w, h, progressive, 0, len);
}

static unsigned char *make_png(int w, int h, size_t *len)
{
    enum { S = 32 };
    float map[S * S];
    rd_crop crop = {S, w, h, 0, 0, 0, 0, (double)w, (double)h};
    rd_heat_params p = {0, 1, 0.5f, w, h};
    rd_png_buf b;
    rd_err e;
    for (int i = 0; i < S * S; i++) map[i] = (float)((i * 37) % 101) / 100.0f;
    if (rd_heatmap_render(RD_HEAT_RAW, map, &crop, NULL, &p, &b, &e) != RD_OK) return NULL;
    *len = b.len;
    return b.data;
}

static int decode_fails_opts(const unsigned char *buf, size_t len, const rd_decode_opts *o, rd_status *code)
{
    rd_image im = {0};
    rd_err e = {0};
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_status st = rd_image_decode_opts(buf, len, &lim, o, &im, &e);
    if (code) *code = st;
    if (st == RD_OK) {
        RD_CHECK(im.rgb && im.w > 0 && im.h > 0, "ok without pixels");
        rd_image_release(&im);
        return 0;
    }
    RD_CHECK(e.msg[0] != '\0', "error without a message");
    RD_CHECK(im.rgb == NULL, "error left pixels behind");
    return 1;
}

static int decode_fails(const unsigned char *buf, size_t len, rd_status *code)
{
    return decode_fails_opts(buf, len, NULL, code);
}

/* Patches the SOF of a JPEG to claim w×h. */
static void jpeg_claim(unsigned char *b, size_t len, unsigned w, unsigned h)
{
    for (size_t i = 2; i + 9 < len; i++)
        if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2)) {
            b[i + 5] = (unsigned char)(h >> 8), b[i + 6] = (unsigned char)h;
            b[i + 7] = (unsigned char)(w >> 8), b[i + 8] = (unsigned char)w;
            return;
        }
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void hostile_seed(const unsigned char *seed, size_t len, const char *what)
{
    unsigned char *buf = malloc(len);
    int truncated_ok = 0, flips = 0, flip_fail = 0;
    RD_CHECK(!decode_fails(seed, len, NULL), "%s: valid seed does not decode", what);
    for (size_t cut = 0; cut < len; cut += 7)
        if (!decode_fails(seed, cut, NULL)) truncated_ok++;
    RD_CHECK(truncated_ok == 0, "%s: %d truncated inputs decoded as if complete", what, truncated_ok);
    for (size_t i = 0; i < len; i += 13) {
        memcpy(buf, seed, len);
        buf[i] ^= 0x5A;
        flips++;
        flip_fail += decode_fails(buf, len, NULL); /* may decode (entropy data): must not crash */
    }
    fprintf(stderr, "%s: %zu bytes, every truncation rejected, %d/%d byte flips rejected\n", what, len, flip_fail,
            flips);
    free(buf);
}

int main(void)
{
    unsigned long jl = 0, pl2 = 0;
    size_t pl = 0;
    unsigned char *jpg = make_jpeg(67, 45, 0, &jl), *pjpg = make_jpeg(64, 40, 1, &pl2), *png = make_png(50, 30, &pl);
    unsigned long el = 0;
    unsigned char *ejpg = make_jpeg_exif(67, 45, 0, 6, &el);
    RD_CHECK(jpg && pjpg && png && ejpg, "seeds");
    if (ejpg) {
        rd_image im = {0};
        rd_err e = {0};
        rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
        RD_CHECK(rd_image_decode(ejpg, el, &lim, &im, &e) == RD_OK, "EXIF JPEG: %s", e.msg);
        RD_CHECK(im.w == 45 && im.h == 67 && im.orientation == 6 && im.full_w == 45 && im.full_h == 67,
                 "EXIF 6 on 67x45: got %dx%d (full %dx%d) orientation %d", im.w, im.h, im.full_w, im.full_h,
                 im.orientation);
        rd_image_release(&im);
        hostile_seed(ejpg, el, "EXIF JPEG");
    }
    {
        unsigned char b[64];
        int bad = 0;
        for (int be = 0; be < 2; be++)
            for (int o = 1; o <= 8; o++) {
                size_t n = exif_block(b, o, be);
                bad += rd_exif_orientation(b, n) != o;
                for (size_t k = 0; k < n; k++) { /* every prefix: heap copies so ASan sees the end */
                    unsigned char *c = malloc(k ? k : 1);
                    memcpy(c, b, k);
                    int v = rd_exif_orientation(c, k);
                    bad += v < 1 || v > 8 || (k < 20 && v != 1);
                    free(c);
                }
            }
        b[0] = 'I';
        exif_block(b, 9, 0);
        bad += rd_exif_orientation(b, 26) != 1; /* out-of-range value */
        exif_block(b, 3, 0);
        b[4] = 0xF0, b[5] = 0xFF, b[6] = 0xFF, b[7] = 0xFF; /* IFD offset far outside */
        bad += rd_exif_orientation(b, 26) != 1;
        exif_block(b, 3, 0);
        b[8] = 0xFF, b[9] = 0xFF; /* 65535 entries claimed */
        bad += rd_exif_orientation(b, 26) != 3;
        unsigned char *r = malloc(4096);
        for (int t = 0; t < 2000; t++) {
            size_t n = (size_t)(t * 37) % 4096;
            rd_fill_uniform((float *)r, 1024, (unsigned)t + 1, 0, 1);
            if (t % 2) memcpy(r, t % 4 == 1 ? "II*\0" : "MM\0*", 4);
            int v = rd_exif_orientation(r, n);
            bad += v < 1 || v > 8;
        }
        free(r);
        RD_CHECK(bad == 0, "rd_exif_orientation: %d wrong answers", bad);
    }
    if (jpg) hostile_seed(jpg, jl, "baseline JPEG");
    if (pjpg) hostile_seed(pjpg, pl2, "progressive JPEG");
    if (png) hostile_seed(png, pl, "PNG");

    /* a PNG whose IHDR claims 100000×100000, with a valid CRC */
    if (png) {
        unsigned char *big = malloc(pl);
        memcpy(big, png, pl);
        put_be32(big + 16, 100000);
        put_be32(big + 20, 100000);
        put_be32(big + 29, (uint32_t)crc32(0, big + 12, 17));
        rd_status st;
        RD_CHECK(decode_fails(big, pl, &st) && st == RD_ERR_LIMIT, "100k×100k PNG: status %d, want limit", st);
        rd_decode_opts o = {224, RD_ALPHA_IGNORE, 0};
        RD_CHECK(decode_fails_opts(big, pl, &o, &st) && st == RD_ERR_LIMIT, "100k×100k PNG with options: %d", st);
        free(big);
    }
    /* a JPEG whose SOF claims 65000×65000 */
    if (jpg) {
        unsigned char *big = malloc(jl);
        memcpy(big, jpg, jl);
        jpeg_claim(big, jl, 65000, 65000);
        rd_status st;
        RD_CHECK(decode_fails(big, jl, &st) && st == RD_ERR_LIMIT, "65000² JPEG: status %d, want limit", st);
        /* reduced-scale decoding does not lift the full-size limits: 1/8 of
         * 65000² (side limit) or of 20000² (400 MP, pixel limit) would fit */
        rd_decode_opts o = {224, RD_ALPHA_COMPOSITE, 0};
        RD_CHECK(decode_fails_opts(big, jl, &o, &st) && st == RD_ERR_LIMIT, "65000² JPEG at 1/8: status %d", st);
        jpeg_claim(big, jl, 20000, 20000);
        RD_CHECK(decode_fails_opts(big, jl, &o, &st) && st == RD_ERR_LIMIT, "20000² JPEG at 1/8: status %d", st);
        free(big);
    }
    {
        unsigned char garbage[4096];
        rd_status st;
        rd_fill_uniform((float *)garbage, sizeof garbage / 4, 9, 0, 1);
        RD_CHECK(decode_fails(garbage, sizeof garbage, &st) && st == RD_ERR_UNSUPPORTED, "garbage");
        RD_CHECK(decode_fails(garbage, 0, NULL), "empty input");
        RD_CHECK(decode_fails((const unsigned char *)"\xFF\xD8\xFF", 3, NULL), "JPEG magic only");
        RD_CHECK(decode_fails((const unsigned char *)"\x89PNG\r\n\x1a\n", 8, NULL), "PNG magic only");
        memcpy(garbage, "\x89PNG\r\n\x1a\n", 8);
        RD_CHECK(decode_fails(garbage, sizeof garbage, NULL), "PNG magic + garbage");
        garbage[0] = 0xFF, garbage[1] = 0xD8, garbage[2] = 0xFF;
        RD_CHECK(decode_fails(garbage, sizeof garbage, NULL), "JPEG magic + garbage");
    }
    free(jpg);
    free(ejpg);
    free(pjpg);
    free(png);
    return rd_test_done("image_corrupt");
}
