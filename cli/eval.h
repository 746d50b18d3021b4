/* eval.h — `resad eval` (cli/eval.c) and the metric bundle it reports. */
#ifndef RD_CLI_EVAL_H
#define RD_CLI_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* argv[1] == "eval". Returns the process exit status. */
int rd_cli_eval(int argc, char **argv);

/* Monotonic seconds, for progress lines (resad eval and --simulate-line). */
double rd_eval_now_s(void);
/* FNV-1a of a class name: the seed of its per-class random draws. */
uint64_t rd_eval_hash_str(const char *s);

/* All six metrics for one run: out = {image AUROC, pixel AUROC, PRO,
 * image F1-max, pixel F1-max, pixel AP}.  n images; image i's map and mask
 * are h[i]×w[i] (each at its own frame geometry), concatenated in maps/gt. */
rd_status rd_eval_metrics(const float *img_scores, const uint8_t *labels, const float *maps, const uint8_t *gt,
                          int n, const int *h, const int *w, double out[6], rd_err *err) RD_WARN_UNUSED;

/* Where a map over the working grid lies in the frame: grid pixel (i, j) has
 * its centre at grid coordinate (i, j); a frame pixel maps to a continuous
 * grid coordinate and is inspected or not.  Frame fractions fx = (x+0.5)/fw
 * map linearly: u = dst_x + (fx − src_x)/src_w · dst_w − 0.5, inspected iff
 * 0 ≤ (fx − src_x)/src_w < 1 (same for y). */
typedef struct rd_eval_grid {
    int map_w, map_h;
    double src_x, src_y, src_w, src_h; /* fractions of the frame */
    double dst_x, dst_y, dst_w, dst_h; /* grid pixels */
} rd_eval_grid;

/* Projects a map_w×map_h map onto an fw×fh frame (bilinear between grid pixel
 * centres, clamped at the grid's edge).  Frame pixels that were not inspected
 * get the minimum of the projected inspected pixels (never dropped, never
 * "hotter" than any inspected one); all of them the map's minimum if none is
 * inspected.  Returns the inspected fraction of the frame. */
double rd_eval_map_to_frame(const float *map, const rd_eval_grid *g, int fw, int fh, float *out);

#endif
