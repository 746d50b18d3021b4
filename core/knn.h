/* knn.h — the PatchCore-style baseline scorer ("knn"), for evaluation.
 *
 * Not ResAD: the nearest-neighbour distance on *raw* backbone features, the
 * way PatchCore scores (Roth et al., CVPR 2022) but with the same k reference
 * images and no coreset subsampling (a few-shot memory bank is small).  The
 * two deepest levels are used, the deeper one bilinearly upsampled
 * (align_corners) to the other's grid and concatenated; each position is then
 * averaged over its 3×3 neighbourhood ("locally aware" patches, zero padding
 * counted like torch's AvgPool2d(3, 1, 1)); the map is the L2 distance to the
 * nearest memory-bank patch, upsampled to S×S and blurred like ResAD's map,
 * with no per-class calibration.  Every later result is shown against it.
 * The patch grid is the references' own, so any working geometry (square or
 * the whole frame) works; queries must share it. */
#ifndef RD_KNN_H
#define RD_KNN_H

#include "resad.h"

typedef struct rd_knn rd_knn;

/* Memory bank from k reference feature sets (copied). */
rd_knn *rd_knn_new(const rd_model *m, rd_feats *const *refs, int k, rd_err *err);
void rd_knn_free(rd_knn *b);

/* map: map_w×map_h floats (caller's: the working grid, the same the ResAD
 * map covers); returns the image score (max) in *score. */
rd_status rd_knn_score(const rd_model *m, const rd_knn *b, const rd_feats *f, float *map, int map_w, int map_h,
                       float *score, rd_err *err) RD_WARN_UNUSED;

#endif
