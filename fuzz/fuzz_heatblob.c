/* fuzz_heatblob.c — libFuzzer target for stored anomaly maps (core/heatblob.c:
 * the header line and the PNG after it), read back from the database when a
 * heatmap is requested: a damaged row must be an error with a message, and a
 * blob that decodes must render (raw and mask; small frames only, so the
 * fuzzer stays fast). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "heatblob.h"
#include "heatmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_heatblob hb;
    rd_err e = {0};
    rd_status st = rd_heatblob_decode(data, size, &hb, &e);
    rd_fuzz_note("heatblob", st, &e);
    if (st != RD_OK) {
        if (!e.msg[0]) abort();
        return 0;
    }
    if ((uint64_t)hb.p.out_w * (uint64_t)hb.p.out_h <= 65536) {
        rd_heat_kind kinds[2] = {RD_HEAT_RAW, RD_HEAT_MASK};
        for (int k = 0; k < 2; k++) {
            rd_png_buf out = {0};
            if (rd_heatmap_render_view(kinds[k], hb.map, &hb.view, hb.roi, NULL, &hb.p, &out, &e) == RD_OK && !out.data) abort();
            rd_png_buf_release(&out);
        }
    }
    rd_heatblob_release(&hb);
    return 0;
}
