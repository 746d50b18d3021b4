/* fuzz_image.c — libFuzzer target for the image decoders (core/image.c): the
 * bytes of an uploaded JPEG or PNG through the public decode API with explicit
 * limits, then the backbone's resize + crop on whatever decoded.
 *
 * Input: one control byte, then the image.  The control byte picks the decode
 * options (bits 0-1: min_short 0/32/64/224 for DCT-scaled JPEG decoding, bit 2:
 * alpha ignored instead of composited, bit 3: EXIF orientation ignored), so
 * every path the daemon can take is reachable (min_short reduces JPEGs by DCT
 * scaling and PNGs by box averaging as rows are read); bit 5 sets a 64 K-pixel
 * max_decoded (the daemon's decoded-pixel budget); rd_image_probe reads the
 * header first (a result has a size and an orientation 1..8, a failure a
 * message); bit 4 rewrites the CRC of every
 * PNG chunk first, so that mutations reach libpng's chunk handling and our
 * callbacks instead of stopping at its CRC check.  The rest of the input also goes
 * to the EXIF reader on its own.  Limits are smaller than the daemon's defaults
 * (1 MP, 4096 per side) so that one run stays fast; the checks are the same
 * code.  Checks: success means a non-empty image within the limits, failure
 * means a message and no pixels. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "arena.h"
#include "fuzz.h"
#include "image.h"

enum { FUZZ_S = 64 }; /* crop size: small, but every resize path runs */

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Sets each complete chunk's CRC to the right value (buf is a copy). */
static void png_fix_crcs(uint8_t *buf, size_t size)
{
    size_t at = 8;
    while (size >= 12 && at <= size - 12) {
        uint32_t len = be32(buf + at);
        if (len > size - 12 - at) break;
        uint32_t crc = (uint32_t)crc32(0, buf + at + 4, (uInt)len + 4);
        uint8_t *c = buf + at + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int min_short[4] = {0, 32, 64, 224};
    rd_image_limits lim = {4096, 1u << 20, 0};
    rd_decode_opts o = {0};
    rd_image im = {0};
    rd_err e = {0};
    rd_arena a = {0};
    uint8_t out[FUZZ_S * FUZZ_S * 3];
    rd_crop crop;
    uint8_t *copy = NULL;
    int fw, fh, orient;

    if (size < 1) return 0;
    o.min_short = min_short[data[0] & 3];
    o.alpha = (data[0] & 4) ? RD_ALPHA_IGNORE : RD_ALPHA_COMPOSITE;
    o.no_orient = (data[0] >> 3) & 1;
    int fix = data[0] & 16, bit5 = data[0] & 32;
    data++, size--;
    if (fix && rd_image_sniff(data, size) == RD_IMG_PNG && (copy = malloc(size))) {
        memcpy(copy, data, size);
        png_fix_crcs(copy, size);
        data = copy;
    }

    orient = rd_exif_orientation(data, size);
    if (orient < 1 || orient > 8) abort();
    (void)rd_image_sniff(data, size);
    rd_image_info info;
    rd_err pe = {0};
    int probed = rd_image_probe(data, size, &info, &pe) == RD_OK;
    if (probed && (info.w < 1 || info.h < 1 || info.orientation < 1 || info.orientation > 8)) abort();
    if (!probed && !pe.msg[0]) abort();
    if (bit5) lim.max_decoded = 1u << 16; /* the daemon's budget of decoded pixels */
    rd_status st = rd_image_decode_opts(data, size, &lim, &o, &im, &e);
    rd_fuzz_note("decode", st, &e);
    if (st != RD_OK) {
        if (im.rgb || !e.msg[0]) abort(); /* failure: a message and nothing left behind */
        free(copy);
        return 0;
    }
    rd_image_full_size(&im, &fw, &fh);
    if (!im.rgb || im.w < 1 || im.h < 1 || im.w > lim.max_side || im.h > lim.max_side ||
        (uint64_t)im.w * (uint64_t)im.h > lim.max_pixels || fw < im.w || fh < im.h)
        abort();
    if (lim.max_decoded && (uint64_t)im.w * (uint64_t)im.h > lim.max_decoded) abort();
    if (rd_arena_init(&a, rd_preprocess_scratch(im.w, im.h, FUZZ_S) * sizeof(float), &e) == RD_OK) {
        if (rd_resize_crop_u8(&im, FUZZ_S, out, &crop, &a, &e) != RD_OK) abort(); /* scratch is sized for it */
        rd_arena_release(&a);
    }
    rd_image_release(&im);
    free(copy);
    return 0;
}
