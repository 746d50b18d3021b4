/* train.h — training the learned ResAD model (Feature Constraintor + conditional
 * flow per level) on the known classes, from backbone features cached in memory.
 *
 * The caller (cli/train.c) extracts every image's features once (the backbone
 * is frozen) and hands them over with rd_train_add_image; rd_train_run then
 * runs the epochs:
 *   per batch: one class, B images (normal only for the first normal_epochs,
 *   then normal and defective mixed); per image, k references drawn from the
 *   class's train/good images (without replacement, never the image itself),
 *   a pool per level, nearest neighbours and residuals (x − x* or (x − x*)²);
 *   per level: constraintor in BN train mode on the batch's residual maps, OCC
 *   loss, one Adam step; then the flow on the *detached* constraintor output
 *   (as the official code: `rfeatures = [r.detach().clone() ...]`), shuffled
 *   position chunks of at most `chunk` rows, split evenly so every level gets
 *   steps (the official code skips level 3 at batch 32), ML on normal
 *   positions + (after the normal stage) the BGAD boundary loss, one Adam step
 *   per chunk.  Masks are downsampled from S×S to each level with nearest
 *   (torch F.interpolate 'nearest': src = ⌊dst·S/h⌋).
 *   Adam with L2 weight decay; MultiStepLR at 70 % and 90 % of the epochs (γ 0.1).
 *
 * Deterministic for a seed (one splitmix64 stream; OpenBLAS GEMMs and the NN
 * team give the same result for the same thread count).  A checkpoint at an
 * epoch boundary holds parameters, BN running statistics, Adam moments and
 * step counts, BGAD boundaries, the RNG state and the epoch; resuming from it
 * continues bit-exactly.
 *
 * No printing: progress goes through a callback.  Ownership: rd_train_new →
 * rd_train_free; rd_train_add_image takes the rd_feats. */
#ifndef RD_TRAIN_H
#define RD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "constraintor.h"
#include "flow.h"
#include "losses.h"
#include "pool.h"
#include "resad.h"
#include "score.h"
#include "status.h"
#include "synth.h"

typedef struct rd_train_cfg {
    int epochs;          /* default 20 */
    int normal_epochs;   /* first epochs on normal images only (default 2) */
    int shots;           /* k references per image (default 4) */
    int batch;           /* images per batch (default 8) */
    int flow_blocks;     /* K (default 8) */
    int flow_hidden;     /* subnet width, 0 = the code's 2·(cp + P) */
    int cstr_kernel;     /* 1 or 3 (default 3, as the code) */
    int use_cstr;        /* 0 = no constraintor (flow on raw residuals) */
    rd_resid resid;      /* default x − x* (paper) */
    rd_pool_metric metric; /* default L2 (paper) */
    rd_ml_kind ml;       /* default logsigmoid (code) */
    int flow_pos;        /* rd_flow_pos of the flows' condition (default ABS, the paper's) */
    float flow_shift;    /* SHIFT: translation range as a fraction of each level's grid (default 1) */
    float lr;            /* default 2e-4 */
    float wd;            /* default 5e-4 */
    size_t chunk;        /* flow rows per step (default 8192) */
    float gas_share;     /* global anomaly synthesis (synth.h, GLASS's GAS): in the mixed stage, this share of
                          * each flow chunk's normal rows gets a synthetic abnormal twin (0 = off, default) */
    rd_gas_cfg gas;      /* its steps, shell and step length (rd_gas_cfg_default) */
    uint64_t seed;
    int threads;         /* NN-search team (default 1) */
    double max_seconds;  /* 0 = no limit: stops cleanly between batches */
    int stop_after;      /* 0 = no limit: stop after this many epochs in this run (tests) */
    const char *checkpoint_path; /* NULL = none; written at every epoch end */
    const char *data_id; /* identifies the training data; checked on resume (may be NULL) */
} rd_train_cfg;

void rd_train_cfg_default(rd_train_cfg *c);

typedef struct rd_train_losses {
    double occ;  /* mean OCC over (batch, level) steps */
    double ml;   /* mean ML over flow steps */
    double bgad; /* mean BGAD over flow steps of the mixed stage */
    double ml_level[RD_MAX_LEVELS];
    double b_n[RD_MAX_LEVELS];
    long steps;
} rd_train_losses;

typedef struct rd_train_progress {
    int epoch, epochs;   /* epoch is 0-based, the one running */
    int batch, nbatches; /* batches done in this epoch */
    int normal_stage;
    int epoch_done;      /* 1 on the call after an epoch's last batch */
    rd_train_losses cur; /* running means of this epoch */
    double elapsed_s, eta_s;
    double nn_s, cstr_s, flow_s; /* time in NN search + residuals, constraintor, flow (this run) */
} rd_train_progress;

/* Returns nonzero to stop training cleanly (like the time limit). */
typedef int (*rd_train_progress_fn)(void *ctx, const rd_train_progress *p);

typedef struct rd_train rd_train;

/* s: the model's crop size S (masks are S×S); level geometry from the model. */
rd_train *rd_train_new(const rd_train_cfg *cfg, const rd_model_info *mi, rd_err *err);
void rd_train_free(rd_train *t);

/* Adds a class; returns its index (≥ 0) or a negative rd_status. */
int rd_train_add_class(rd_train *t, const char *name, rd_err *err);
/* Adds an image's features (taken, also on error).  is_ref: a train/good image
 * (reference candidate, used as a normal sample too).  mask: S×S, nonzero =
 * anomalous, copied; NULL = all normal (or all anomalous if label is 1). */
rd_status rd_train_add_image(rd_train *t, int cls, rd_feats *f, int is_ref, int label, const uint8_t *mask,
                             rd_err *err) RD_WARN_UNUSED;

/* Changes the time limit (seconds from the start of the next rd_train_run; 0 = none). */
void rd_train_set_max_seconds(rd_train *t, double seconds);

/* Restores a checkpoint (after all images are added, before rd_train_run). */
rd_status rd_train_resume(rd_train *t, const char *path, rd_err *err) RD_WARN_UNUSED;
rd_status rd_train_save_checkpoint(const rd_train *t, const char *path, rd_err *err) RD_WARN_UNUSED;

/* Runs the remaining epochs.  *stopped (may be NULL) = 1 when the time limit,
 * stop_after or the callback ended it early. */
rd_status rd_train_run(rd_train *t, rd_train_progress_fn cb, void *ctx, int *stopped, rd_err *err) RD_WARN_UNUSED;

int rd_train_epochs_done(const rd_train *t);
/* Means of the last complete epoch (or the running one if none completed). */
const rd_train_losses *rd_train_last_losses(const rd_train *t);
const rd_flow *rd_train_flow(const rd_train *t, int level);
const rd_cstr *rd_train_cstr(const rd_train *t, int level); /* NULL without constraintor */

/* Writes the model file: "level<l>.cstr.*" and "level<l>.flow.*" tensors, the
 * training metadata keys (resadd.residual, metric, constraintor, cstr_kernel,
 * flow_blocks, flow_hidden, seed, epochs, final_losses, nlevels) followed by
 * extra_meta (key, value, ..., NULL; may be NULL). */
rd_status rd_train_write_model(const rd_train *t, const char *path, const char *const *extra_meta,
                               rd_err *err) RD_WARN_UNUSED;

#endif
