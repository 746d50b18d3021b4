/* resad.h — the inspection pipeline: the one interface the CLI and the daemon use.
 *
 *   rd_model   immutable after rd_model_load; shared by all workers.
 *              backbone + options + scorer (+ later the learned constraintor/flow).
 *   rd_worker  per-thread scratch (arena sized at creation); never shared.
 *   rd_feats   one image's backbone features, all levels; what the daemon
 *              stores per reference image (rd_feats_serialize) so pools can be
 *              rebuilt without re-running the backbone.
 *   rd_refset  a class's reference pool + calibration, immutable and
 *              reference-counted: a registration builds a new one and swaps it
 *              in; inspections holding the old one finish undisturbed.
 *   rd_result  one inspection: score, threshold, verdict, map over the working
 *              grid, the view (where the grid lies in the frame), inspected
 *              fraction, timings.
 *
 * Geometry (geometry.h): by default the whole frame is inspected.  A class's
 * geometry is fixed by its first reference (rd_model_geometry: working grid
 * short side S, long side S·aspect on the coarsest level's stride; fit policy;
 * ROI; search tile); features carry the geometry they were extracted at, a
 * reference set carries its class's geometry, and an inspection maps the image
 * onto it (another aspect: refused unless the class has a fit policy).  The
 * model plans its backbone graph and flows once per distinct working grid, on
 * first use (thread-safe, at most RD_MAX_GRIDS grids per model); the worker's
 * arena grows to the largest grid it has run.
 *
 * Scoring path (ResAD, see docs/resad-method.md):
 *   image → rd_preprocess → backbone levels → per level, nearest reference
 *   feature (L2 or cosine, chunked GEMM) → residual → scorer per position
 *   (today "residual-norm": ‖r‖, the residual-only baseline without
 *   constraintor/flow) → per-level calibration (z = (d − μ_l)/σ_l, μ/σ from
 *   leave-one-out scoring of the references) → bilinear upsample
 *   (align_corners) to S×S → mean over levels → Gaussian σ → image score =
 *   max (or top-k mean).  Threshold: from the leave-one-out image scores. */
#ifndef RD_RESAD_H
#define RD_RESAD_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "backbone.h"
#include "geometry.h"
#include "heatmap.h"
#include "image.h"
#include "pool.h"
#include "refblob.h"
#include "team.h"
#include "score.h"
#include "status.h"
#include "tensor.h"


#define RD_MAX_INPUT_PAD 64

typedef struct rd_model_opts {
    const char *backbone_path; /* safetensors backbone (required) */
    const char *model_path;    /* learned ResAD model (constraintor + flows) from
                                  `resad train`; NULL = the residual-norm scorer.
                                  Its levels, size, metric and residual mode win. */
    const char *levels_csv;    /* NULL = backbone default */
    int size;                  /* S; 0 = backbone default (224) */
    rd_pool_metric metric;     /* default RD_POOL_L2 (paper) */
    rd_resid resid;            /* default RD_RESID_X_MINUS_NN (paper) */
    float topk_frac;           /* image score: 0 = map max (default), else mean of the top fraction */
    float sigma;               /* blur; default 4 */
    rd_score_calib calib;      /* level calibration (score.h): global (default), position, neighbour */
    float calib_alpha;         /* its weight against the global statistics, [0, 1]; default 1 */
    float calib_smooth;        /* position: blur of the per-position moments, level cells; default 1 */
    int max_shots;             /* largest reference set a worker must handle (default 16) */
    int input_pad;             /* pixels mirrored around the working image before the
                                  backbone (a multiple of its stride, up to
                                  RD_MAX_INPUT_PAD), cropped off its levels again, so
                                  border features see the surface continued rather
                                  than the convolutions' zero padding; -1 (default) =
                                  the model file's resadd.input_pad, 0 without one */
    int threads;               /* threads one inspection may use: the size of each
                                  worker's team (0 = 1).  OpenBLAS itself is set to one
                                  thread: the team splits every stage's work instead. */
} rd_model_opts;

/* Fills opts with the defaults above (backbone_path NULL). */
void rd_model_opts_default(rd_model_opts *o);

typedef struct rd_model rd_model;

typedef struct rd_model_info {
    const char *arch;       /* backbone arch */
    const char *backbone_sha256;
    const char *scorer;     /* "resad" (learned model) or "residual-norm" */
    const char *model_sha256; /* of the learned model file, "" without one */
    const char *model_file;   /* its file name (no directory), "" without one */
    const char *model_meta;   /* its provenance as JSON object text (training data, epochs,
                                 losses, eval summary), "" without one */
    const char *model_id;   /* hash over backbone sha + levels + S + options: keys stored features */
    int size;               /* S (the default grid is S×S; level_h/w below are at it) */
    int stride;             /* the coarsest level's stride: working grids are multiples of it */
    int input_pad;          /* mirrored input margin in use (rd_model_opts.input_pad) */
    int nlevels;
    int level_h[RD_MAX_LEVELS], level_w[RD_MAX_LEVELS], level_c[RD_MAX_LEVELS];
    const char *level_names[RD_MAX_LEVELS];
    const char *metric, *resid; /* "l2"|"cosine", "x-x*"|"(x-x*)^2" */
    float topk_frac;
} rd_model_info;

rd_model *rd_model_load(const rd_model_opts *o, rd_err *err);
void rd_model_free(rd_model *m);
const rd_model_info *rd_model_get_info(const rd_model *m);
/* Multiply-accumulates of one backbone forward pass (for benchmarks). */
double rd_model_backbone_macs(const rd_model *m);

/* A worker owns its scratch arena and a team of opts.threads threads (see team.h). */
typedef struct rd_worker rd_worker;
rd_worker *rd_worker_new(const rd_model *m, rd_err *err);
void rd_worker_free(rd_worker *w);
/* Workers sharing cores (team.h's rd_cores, NULL = not shared): a worker's
 * team uses its helper threads only while enough cores are free, counting
 * every worker marked busy (rd_worker_busy around each job). */
void rd_worker_share(rd_worker *w, rd_cores *cores);
void rd_worker_busy(rd_worker *w, int busy);

/* Per-stage timings in milliseconds. */
typedef struct rd_timings {
    double decode, preprocess, backbone, nn, score, heatmap, total;
    double learned; /* the part of score spent in the constraintor + flow (learned model) */
} rd_timings;

#define RD_MAX_GRIDS 16 /* distinct working grids one model plans */

/* The default geometry of a frame_w×frame_h frame for this model: o may be
 * NULL (whole frame, short side = the model's size, fit none, default search).
 * Errors: RD_ERR_ARG (ROI outside the frame), RD_ERR_LIMIT (grid too large). */
rd_status rd_model_geometry(const rd_model *m, int frame_w, int frame_h, const rd_geo_opts *o, rd_geometry *g,
                            rd_err *err) RD_WARN_UNUSED;

/* ---- features ---- */
typedef struct rd_feats {
    rd_crop crop;    /* legacy: the S×S square this maps to when the grid is square (s = 0 otherwise) */
    rd_geometry geo; /* the geometry the features were extracted at */
    rd_view view;    /* where the grid lies in the source image */
    int img_w, img_h;
    int nlevels;
    int h[RD_MAX_LEVELS], w[RD_MAX_LEVELS], c[RD_MAX_LEVELS];
    float *data[RD_MAX_LEVELS]; /* owned, h·w·c floats each (HWC) */
} rd_feats;

/* Runs preprocess + backbone on img at its own default geometry (whole frame,
 * rd_model_geometry with o = NULL).  *out is malloc'ed; free with rd_feats_free. */
rd_status rd_extract(const rd_model *m, rd_worker *w, const rd_image *img, rd_feats **out,
                     rd_timings *t, rd_err *err) RD_WARN_UNUSED;
/* Features of the centred square of img's short side at S×S — the geometry of
 * torchvision's Resize(S) + CenterCrop(S), which the learned model is trained
 * on (resad train); not for inspection, which covers the whole frame. */
rd_status rd_extract_center(const rd_model *m, rd_worker *w, const rd_image *img, rd_feats **out, rd_timings *t,
                            rd_err *err) RD_WARN_UNUSED;
/* The same at geometry g (a class's): the image is mapped with rd_view_for_image,
 * so another aspect ratio is RD_ERR_MISMATCH unless g has a fit policy. */
rd_status rd_extract_geo(const rd_model *m, rd_worker *w, const rd_geometry *g, const rd_image *img,
                         rd_feats **out, rd_timings *t, rd_err *err) RD_WARN_UNUSED;
void rd_feats_free(rd_feats *f);
/* Portable little-endian blob (magic, version 2, geometry text, view, shapes,
 * floats) for storage.  Version-1 blobs (square S×S, before whole-frame
 * inspection) still load, as the square geometry they were made at. */
rd_status rd_feats_serialize(const rd_feats *f, uint8_t **blob, size_t *len, rd_err *err) RD_WARN_UNUSED;
/* The same as version 3: values as fp16 (refblob.h; half the bytes), unless a
 * value is outside fp16's range, then version 2.  What it stores is exactly
 * rd_feats_round_f16(f): a set built from rounded features scores the same
 * before and after a store + load. */
rd_status rd_feats_serialize_f16(const rd_feats *f, uint8_t **blob, size_t *len, rd_err *err) RD_WARN_UNUSED;
/* Rounds every value to fp16 precision in place (1), or leaves f unchanged
 * when a value is outside fp16's range (0; rd_feats_serialize_f16 then stores fp32). */
int rd_feats_round_f16(rd_feats *f);
/* 1 if blob is a version-3 (fp16) features blob. */
int rd_feats_blob_f16(const uint8_t *blob, size_t len);
/* Validates the blob (version 1, 2 or 3) against the level shapes the model gives its geometry. */
rd_status rd_feats_deserialize(const rd_model *m, const uint8_t *blob, size_t len, rd_feats **out,
                               rd_err *err) RD_WARN_UNUSED;

/* ---- reference sets ---- */
typedef struct rd_refset rd_refset;

/* Builds pool + leave-one-out calibration from k ≥ 2 reference feature sets
 * (copied; the caller keeps ownership of refs).  Refcount starts at 1.  The
 * set's geometry is refs[0]'s; a reference of another geometry, or one that
 * needed a fit policy (another aspect ratio), is RD_ERR_MISMATCH naming both. */
rd_refset *rd_refset_build(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, rd_err *err);
/* The same for a class with a ROI mask: roi is work_w·work_h bytes on the
 * set's grid (rd_geometry_roi_grid; copied; NULL = rd_refset_build).  Masked-
 * out grid pixels are not inspected: they neither score (leave-one-out
 * calibration included) nor bleed into the map. */
rd_refset *rd_refset_build_roi(const rd_model *m, rd_worker *w, rd_feats *const *refs, int k, const uint8_t *roi,
                               rd_err *err);
/* The same without the leave-one-out search: the calibration is given (one
 * rd_refset_get_calib returned for the same features, e.g. stored with them),
 * only the pools are built; no worker needed.  Same scores as the built set.
 * Only for the global calibration (opts.calib): RD_ERR_UNSUPPORTED otherwise. */
rd_refset *rd_refset_restore(const rd_model *m, rd_feats *const *refs, int k, const rd_calib *calib,
                             const uint8_t *roi, rd_err *err);
void rd_refset_get_calib(const rd_refset *r, rd_calib *out);
/* Heap bytes the set holds (pools, their search layouts, calibration). */
size_t rd_refset_bytes(const rd_refset *r);
/* 1 while a reference other than the caller's one is held (an inspection uses it). */
int rd_refset_in_use(const rd_refset *r);
rd_refset *rd_refset_ref(rd_refset *r);  /* atomic increment; returns r */
void rd_refset_unref(rd_refset *r);      /* atomic; frees at zero; NULL ok */
int rd_refset_shots(const rd_refset *r);
/* Default decision threshold from calibration (same units as scores). */
float rd_refset_threshold(const rd_refset *r);
/* Leave-one-out image scores of the references (k values). */
const float *rd_refset_loo_scores(const rd_refset *r);
const rd_geometry *rd_refset_geometry(const rd_refset *r);
/* The set's ROI mask on its grid (NULL = none). */
const uint8_t *rd_refset_roi(const rd_refset *r);
/* 1 if the nearest-neighbour search is tiled (local) at some level. */
int rd_refset_local_search(const rd_refset *r);

/* ---- inspection ---- */
typedef struct rd_result {
    float score;
    float threshold; /* the one applied: override if given, else the refset's */
    int anomalous;   /* score >= threshold */
    const char *scorer;
    float *map;      /* map_w×map_h anomaly map over the working grid (owned); 0 where not inspected */
    int map_w, map_h;
    rd_view view;    /* where the grid lies in the image; grid pixels outside view.dst are not inspected */
    uint8_t *roi;    /* map_w×map_h, 0 = masked out by the class's ROI mask (owned); NULL = no mask */
    rd_geometry geo; /* the class geometry applied */
    float inspected_frac; /* fraction of the frame's pixels inspected (ROI rectangle and mask, pad bars, crop) */
    int s;           /* legacy: map_w when the grid is square, else 0 */
    rd_crop crop;    /* legacy: valid when s > 0 */
    int img_w, img_h;
    float map_max, map_min; /* over inspected pixels */
    rd_timings t;
} rd_result;

/* threshold_override: NaN = use the refset's.  The image is mapped onto the
 * refset's geometry; the score is over inspected pixels only. */
rd_status rd_inspect(const rd_model *m, rd_worker *w, const rd_refset *r, const rd_image *img,
                     float threshold_override, rd_result *out, rd_err *err) RD_WARN_UNUSED;
/* The same from already extracted features (evaluation scores one test set
 * against many reference draws without re-running the backbone). */
rd_status rd_inspect_feats(const rd_model *m, rd_worker *w, const rd_refset *r, const rd_feats *f,
                           float threshold_override, rd_result *out, rd_err *err) RD_WARN_UNUSED;
void rd_result_release(rd_result *res);

/* Heatmap scale for a result: lo = 0 (the references' typical level), hi =
 * max(2·threshold, map max); threshold = the applied one. */
void rd_result_heat_params(const rd_result *res, rd_heat_params *p);
/* Renders one heatmap of a result over the whole frame (rd_heatmap_render_view
 * with rd_result_heat_params; img needed for the overlay, at any decoded scale:
 * the output is img's size, or the result's img_w×img_h without img). */
rd_status rd_result_render(const rd_result *res, rd_heat_kind kind, const rd_image *img, rd_png_buf *out,
                           rd_err *err) RD_WARN_UNUSED;

#endif
