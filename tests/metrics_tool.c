/* metrics_tool.c — test driver exposing core/metrics to tests/test_metrics.py.
 *   metrics_tool FIXTURE [MAX_PIXELS]
 * FIXTURE (little-endian): u32 n_images, n_images f32 scores, n_images u8 labels,
 * then u32 n_maps, u32 w, u32 h, and per map w*h f32 scores followed by w*h u8 mask.
 * Prints the metrics as one JSON object (NaN as the bare token NaN, which
 * Python's json module accepts); on an accumulator error prints the message on
 * stderr and exits 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
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
