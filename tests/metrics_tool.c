/* metrics_tool.c — test driver exposing core/metrics to tests/test_metrics.py.
 *   metrics_tool FIXTURE [MAX_PIXELS]
 * FIXTURE (little-endian): u32 n_images, n_images f32 scores, n_images u8 labels,
 * then u32 n_maps, u32 w, u32 h, and per map w*h f32 scores followed by w*h u8 mask.
 * Prints the metrics as one JSON object (NaN as the bare token NaN, which
 * Python's json module accepts); on an accumulator error prints the message on
 * stderr and exits 2.
 *   metrics_tool --frame FIXTURE OUT
 * FIXTURE: u32 map_w, map_h, 8 f64 (src x y w h, dst x y w h), u32 fw, fh, then
 * map_w*map_h f32: rd_eval_map_to_frame (cli/eval_metrics.c) writes fw*fh f32
 * to OUT and prints the inspected fraction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval.h"
#include "metrics.h"
#include "testutil.h"

static void num(const char *key, double v, const char *sep)
{
    if (v != v) printf("\"%s\": NaN%s", key, sep);
    else printf("\"%s\": %.17g%s", key, v, sep);
}

static int rd_u32(const unsigned char *b, size_t len, size_t *off, uint32_t *v)
{
    if (*off + 4 > len) return 0;
    memcpy(v, b + *off, 4);
    *off += 4;
    return 1;
}

static int frame_mode(const char *in, const char *outp)
{
    size_t len, off = 0;
    unsigned char *b = rd_read_file(in, &len);
    rd_eval_grid g;
    uint32_t mw, mh, fw, fh;
    double d[8];
    if (!b || !rd_u32(b, len, &off, &mw) || !rd_u32(b, len, &off, &mh) || off + sizeof d > len) goto bad;
    memcpy(d, b + off, sizeof d);
    off += sizeof d;
    if (!rd_u32(b, len, &off, &fw) || !rd_u32(b, len, &off, &fh) || off + (size_t)mw * mh * 4 > len) goto bad;
    g.map_w = (int)mw, g.map_h = (int)mh;
    g.src_x = d[0], g.src_y = d[1], g.src_w = d[2], g.src_h = d[3];
    g.dst_x = d[4], g.dst_y = d[5], g.dst_w = d[6], g.dst_h = d[7];
    float *map = malloc((size_t)mw * mh * 4), *out = malloc((size_t)fw * fh * 4);
    memcpy(map, b + off, (size_t)mw * mh * 4);
    double insp = rd_eval_map_to_frame(map, &g, (int)fw, (int)fh, out);
    FILE *f = fopen(outp, "wb");
    fwrite(out, 4, (size_t)fw * fh, f);
    fclose(f);
    printf("%.17g\n", insp);
    free(map);
    free(out);
    free(b);
    return 0;
bad:
    fprintf(stderr, "%s: bad frame fixture\n", in);
    free(b);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--frame")) return frame_mode(argv[2], argv[3]);
    if (argc < 2) {
        fprintf(stderr, "usage: metrics_tool FIXTURE [MAX_PIXELS]\n");
        return 1;
    }
    size_t len, off = 0;
    unsigned char *b = rd_read_file(argv[1], &len);
    if (!b) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    rd_err e = {0};
    rd_metrics_acc *acc = NULL;
    rd_metrics_result r;
    int rc = 1;
    uint32_t ni, nm, w, h;
    if (rd_metrics_acc_new(argc > 2 ? strtoull(argv[2], NULL, 10) : 0, &acc, &e)) goto out;
    if (!rd_u32(b, len, &off, &ni) || off + (size_t)ni * 5 > len) goto bad;
    for (uint32_t i = 0; i < ni; i++) {
        float s;
        memcpy(&s, b + off + (size_t)i * 4, 4);
        if (rd_metrics_image_add(acc, s, b[off + (size_t)ni * 4 + i], &e)) goto fail;
    }
    off += (size_t)ni * 5;
    if (!rd_u32(b, len, &off, &nm) || !rd_u32(b, len, &off, &w) || !rd_u32(b, len, &off, &h))
        goto bad;
    size_t px = (size_t)w * h;
    float *sc = malloc(px * sizeof *sc + 1);
    if (!sc) goto out;
    for (uint32_t m = 0; m < nm; m++) {
        if (off + px * 5 > len) {
            free(sc);
            goto bad;
        }
        memcpy(sc, b + off, px * 4);
        if (rd_metrics_pixel_add(acc, sc, b + off + px * 4, w, h, &e)) {
            free(sc);
            goto fail;
        }
        off += px * 5;
    }
    free(sc);
    if (rd_metrics_compute(acc, &r, &e)) goto fail;
    printf("{");
    num("image_auroc", r.image_auroc, ", ");
    num("image_ap", r.image_ap, ", ");
    num("image_f1_max", r.image_f1_max, ", ");
    num("pixel_auroc", r.pixel_auroc, ", ");
    num("pixel_ap", r.pixel_ap, ", ");
    num("pixel_f1_max", r.pixel_f1_max, ", ");
    num("pro", r.pro, ", ");
    printf("\"n_regions\": %zu, \"n_pixels\": %zu}\n", r.n_regions, r.n_pixels);
    rc = 0;
    goto out;
bad:
    fprintf(stderr, "%s: truncated fixture\n", argv[1]);
    goto out;
fail:
    fprintf(stderr, "%s\n", e.msg);
    rc = 2;
out:
    rd_metrics_acc_free(acc);
    free(b);
    return rc;
}
