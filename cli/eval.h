/* eval.h — `resad eval` (cli/eval.c) and the metric bundle it reports. */
#ifndef RD_CLI_EVAL_H
#define RD_CLI_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* argv[1] == "eval". Returns the process exit status. */
int rd_cli_eval(int argc, char **argv);

/* All six metrics for one run: out = {image AUROC, pixel AUROC, PRO,
 * image F1-max, pixel F1-max, pixel AP}.  n images; maps/gt are n·h·w. */
rd_status rd_eval_metrics(const float *img_scores, const uint8_t *labels, const float *maps, const uint8_t *gt,
                          int n, int h, int w, double out[6], rd_err *err) RD_WARN_UNUSED;

#endif
