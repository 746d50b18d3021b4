/* eval_metrics.c — the metric bundle of one evaluation run, via core/metrics. */
#include "eval.h"
#include "metrics.h"

rd_status rd_eval_metrics(const float *img_scores, const uint8_t *labels, const float *maps, const uint8_t *gt,
                          int n, int h, int w, double out[6], rd_err *err)
{
    rd_metrics_acc *acc = NULL;
    rd_metrics_result r;
    const size_t hw = (size_t)h * (size_t)w;
    rd_status st = rd_metrics_acc_new(hw * (size_t)n, &acc, err);
    for (int i = 0; st == RD_OK && i < n; i++) {
        st = rd_metrics_image_add(acc, img_scores[i], labels[i], err);
        if (st == RD_OK) st = rd_metrics_pixel_add(acc, maps + (size_t)i * hw, gt + (size_t)i * hw, (size_t)w, (size_t)h, err);
    }
    if (st == RD_OK) st = rd_metrics_compute(acc, &r, err);
    rd_metrics_acc_free(acc);
    if (st != RD_OK) return st;
    out[0] = r.image_auroc;
    out[1] = r.pixel_auroc;
    out[2] = r.pro;
    out[3] = r.image_f1_max;
    out[4] = r.pixel_f1_max;
    out[5] = r.pixel_ap;
    return RD_OK;
}
