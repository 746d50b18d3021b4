/* metrics.h — the standard anomaly-detection metrics (image/pixel AUROC, AP, F1-max, PRO).
 *
 * One accumulator collects a whole evaluation run: per image an anomaly score
 * and a label, and per pixel a score and the ground-truth mask.  Results are
 * exact (no histogram binning): the pixel side keeps 8 bytes per pixel (float
 * score + int32 region id) and sorts once in rd_metrics_compute().  Memory is
 * therefore capped by max_pixels (default RD_METRICS_MAX_PIXELS_DEFAULT,
 * 100 M pixels = 800 MB; the store grows by doubling, so up to twice that
 * while growing, plus 8 bytes per pixel of the largest single map for region
 * labelling); adding beyond the cap fails with RD_ERR_LIMIT and leaves the
 * accumulator unchanged.  13 M pixels (200 maps of 256²) take ~4 s to compute
 * (qsort-bound).
 *
 * Definitions (tested against scikit-learn 1.2 and a numpy/scipy PRO reference):
 *  - AUROC: sklearn.metrics.roc_auc_score (trapezoids over the ROC curve;
 *    exactly tied scores form one threshold).
 *  - AP: sklearn.metrics.average_precision_score — step-wise
 *    sum (R_i − R_{i−1}) P_i over thresholds, not interpolated.
 *  - F1-max: max over the thresholds of precision_recall_curve of 2PR/(P+R).
 *  - PRO: as in the MVTec AD evaluation code (pro_curve_util.compute_pro):
 *    ground-truth regions are the 8-connected components of each mask
 *    (scipy.ndimage.label with structure np.ones((3,3)), not scipy's 4-connected
 *    default); every region weighs the same; at each distinct threshold the mean
 *    per-region overlap is paired with the FPR over all normal pixels; the curve
 *    starts at (0,0) and is integrated with trapezoids up to FPR 0.3,
 *    interpolating linearly at the limit, then divided by 0.3.
 * Degenerate inputs are not errors: a metric whose definition needs both classes
 * (or, for PRO, at least one region and one normal pixel) is NaN when the data
 * lack one.  Scores must be finite (NaN/inf → RD_ERR_ARG).
 * Not thread-safe per accumulator; separate accumulators are independent. */
#ifndef RD_METRICS_H
#define RD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RD_METRICS_MAX_PIXELS_DEFAULT ((size_t)100 * 1000 * 1000)
#define RD_METRICS_MAX_IMAGES ((size_t)10 * 1000 * 1000)

typedef struct rd_metrics_acc rd_metrics_acc;

typedef struct rd_metrics_result {
    double image_auroc, image_ap, image_f1_max;
    double pixel_auroc, pixel_ap, pixel_f1_max;
    double pro;               /* normalized area under the PRO curve to FPR 0.3 */
    size_t n_images, n_anomalous_images;
    size_t n_pixels, n_anomalous_pixels, n_regions;
} rd_metrics_result;

/* Creates an empty accumulator; max_pixels 0 means RD_METRICS_MAX_PIXELS_DEFAULT.
 * Caller frees with rd_metrics_acc_free. */
rd_status rd_metrics_acc_new(size_t max_pixels, rd_metrics_acc **out, rd_err *err) RD_WARN_UNUSED;
void rd_metrics_acc_free(rd_metrics_acc *acc);

/* Adds one image-level score; anomalous is 0 (good) or 1 (defective). */
rd_status rd_metrics_image_add(rd_metrics_acc *acc, float score, int anomalous,
                               rd_err *err) RD_WARN_UNUSED;

/* Adds one w×h anomaly map (row-major) with its mask (nonzero = defect).
 * The mask's 8-connected components become PRO regions of their own. */
rd_status rd_metrics_pixel_add(rd_metrics_acc *acc, const float *scores, const uint8_t *mask,
                               size_t w, size_t h, rd_err *err) RD_WARN_UNUSED;

/* Computes every metric from what was added so far (the accumulator stays
 * usable; the pixel store is sorted in place). */
rd_status rd_metrics_compute(rd_metrics_acc *acc, rd_metrics_result *out,
                             rd_err *err) RD_WARN_UNUSED;

#endif
