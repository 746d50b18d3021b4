/* engine.h — resadd's service layer: the model, a fixed pool of worker
 * threads (each owns an rd_worker) fed by a bounded queue, and the one owner
 * of class state: the in-memory rd_refset of each class (swapped atomically
 * after a registration; inspections hold a reference to the one they started
 * with) and every read or write of classes, references, inspections and
 * tokens, which it makes through the store (sql/store.h).
 *
 * Above it, api/ calls these functions from HTTP threads and blocks (sync) or
 * returns (async) while the workers run the pipeline.  Results are plain
 * structs (mostly the store's rows), errors an rd_ecode (sql/ecode.h) plus a
 * message in rd_err; nothing here knows about HTTP or JSON.
 *
 * Start-up: rd_engine_new finds the model files and returns at once (so HTTP
 * can answer liveness); a loader thread loads the model, starts the workers,
 * and async inspections left queued by a crash are run again.  No class is
 * loaded at start: a class's reference set is loaded on its first use from
 * its stored fp16 features and stored calibration (sql/008_classes.sql; the
 * leave-one-out search runs only when those are missing or stale, and
 * features are recomputed from the stored image bytes only when the backbone
 * or geometry changed).  Loaded sets form an LRU bounded by pool_memory_bytes
 * and max_loaded_classes: the least recently used idle class is evicted
 * (never one an inspection holds).  rd_engine_loading() is 0 (for /readyz). */
#ifndef RD_ENGINE_H
#define RD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "resad.h"
#include "sql/ecode.h"
#include "sql/store.h"

typedef struct rd_engine rd_engine;
struct rd_event; /* engine/events.h */

typedef struct rd_engine_opts {
    const char *backbone;      /* "" or NULL = the shipped default */
    const char *learned_model; /* "" or NULL = the shipped one; "none" = residual-norm */
    int workers;               /* inference threads (each owns an rd_worker); 0 = one per core */
    int threads_per_worker;    /* team size of each worker; 0 = cores (teams share the cores: team.h) */
    int queue_size;            /* bounded queue of inference jobs */
    uint64_t max_pixels;       /* per image */
    uint64_t pixel_budget;     /* decoded pixels held by requests and queued jobs; 0 = unbounded */
    int max_side;
    int max_references;        /* per class */
    int request_timeout_s;     /* a sync request waits this long for its result */
    int idempotency_window_s;  /* a repeated external id of a class within this replays (0 = off) */
    int webhook_timeout_s;     /* per delivery attempt */
    int webhook_max_attempts;
    int webhook_backoff_ms;    /* first retry delay; doubles per attempt */
    int webhook_allow_private; /* 1: webhooks may reach loopback/link-local/private hosts (webhooks.h) */
    /* The JSON body of an event for webhooks (malloc'ed; NULL = none):
     * injected by the composition root from api/ (the views live there). */
    char *(*render_event)(rd_engine *e, const struct rd_event *ev);
    int keep_images;           /* 1: store a JPEG copy of each inspected image (overlay heatmaps) */
    int keep_image_quality;    /* its JPEG quality, 1..100 */
    size_t heat_cache_bytes;   /* rendered heatmaps kept in memory (0 = none) */
    /* The stable word of a code, recorded with a failed inspection
     * ("invalid_image"); injected by the composition root from api/'s table. */
    const char *(*code_name)(rd_ecode code);
    size_t pool_memory_bytes;  /* loaded reference sets' memory before the LRU evicts (0 = unbounded) */
    int max_loaded_classes;    /* loaded reference sets before the LRU evicts (0 = unbounded) */
} rd_engine_opts;

typedef struct rd_upload {
    const uint8_t *data;
    size_t len;
    const char *content_type; /* "image/jpeg" | "image/png" */
} rd_upload;

/* A class as the service sees it: the stored row plus its live state. */
typedef struct rd_engine_class {
    rd_class_row row;
    int ready;          /* a reference set is loaded (>= 2 references) */
    int loading;        /* still being loaded after start */
    int loaded;         /* its reference set is in memory (else cold: loaded on first use) */
    double threshold_auto; /* valid when ready; NaN while cold and not known yet */
    rd_geo_opts opts;   /* what the class was created with (zero = defaults) */
    int has_geo;        /* geo is fixed (the class has references) */
    rd_geometry geo;
} rd_engine_class;

typedef struct rd_engine_added {
    int64_t id;
    char sha256[65];
    int duplicate;
} rd_engine_added;

/* The outcome of a registration. */
typedef struct rd_engine_reg {
    rd_engine_added items[64];
    int n;
    int references;
    int ready;
    double threshold_auto; /* valid when ready */
} rd_engine_reg;

/* Inspections counted by class and verdict ("ok", "anomalous", "failed"). */
typedef struct rd_engine_count {
    char cls[RD_STORE_NAME_MAX + 8];
    char verdict[12];
    unsigned long n;
} rd_engine_count;

/* Checks the model files and starts the background loader (model, workers,
 * classes, recovered jobs).
 * opts and store must outlive the engine. */
rd_engine *rd_engine_new(const rd_engine_opts *opts, rd_store *store, rd_err *err);
/* Stops taking work, runs what is queued to completion, joins the threads. */
void rd_engine_stop(rd_engine *e);
void rd_engine_free(rd_engine *e);

/* The model's description; NULL while it is still loading. */
const rd_model_info *rd_engine_info(rd_engine *e);
/* The store the engine was made with (engine/labels.c runs its label queries on it). */
rd_store *rd_engine_store(rd_engine *e);
/* 1 (and err) when the model failed to load in the background. */
int rd_engine_failed(rd_engine *e, rd_err *err);
int rd_engine_queue_depth(rd_engine *e);
int rd_engine_queue_capacity(const rd_engine *e);
int rd_engine_workers(const rd_engine *e);
/* Classes whose reference sets are still being loaded after start. */
int rd_engine_loading(rd_engine *e);
/* 1 when the database takes writes (see rd_store_writable). */
int rd_engine_writable(rd_engine *e);
/* The loaded reference sets (the LRU of cold/hot classes). */
typedef struct rd_engine_mem {
    int loaded;                 /* classes in memory */
    size_t bytes;               /* their reference sets' bytes */
    size_t budget_bytes;        /* pool_memory_bytes (0 = unbounded) */
    int max_loaded;             /* max_loaded_classes (0 = unbounded) */
    unsigned long loads_stored; /* loads from the stored calibration */
    unsigned long loads_built;  /* builds with the leave-one-out search (registration, stale or missing) */
    unsigned long evictions;
} rd_engine_mem;
void rd_engine_memory(rd_engine *e, rd_engine_mem *out);
/* Copies up to max inspection counters into out; returns how many. */
int rd_engine_counts(rd_engine *e, rd_engine_count *out, int max);

/* ---- classes ---- */
rd_ecode rd_engine_class_create(rd_engine *e, const char *name, const char *desc, rd_engine_class *out, rd_err *err);
/* The same with geometry options (NULL = defaults), checked first (bad ones
 * are RD_E_BADGEO) and stored with the class in one statement: a refused
 * geometry leaves nothing behind and sends no event. */
rd_ecode rd_engine_class_create_geo(rd_engine *e, const char *name, const char *desc, const rd_geo_opts *geo,
                                    rd_engine_class *out, rd_err *err);
rd_ecode rd_engine_class_get(rd_engine *e, const char *name, rd_engine_class *out, rd_err *err);
/* The leave-one-out image scores of the class's reference pool as it is now
 * (each reference scored against the others, on the scale every inspection of
 * the pool is scored on); loads a cold class.  *n = 0 while it has no pool. */
rd_ecode rd_engine_class_loo(rd_engine *e, const char *name, double loo[RD_CALIB_MAX_SHOTS], int *n, rd_err *err);
/* *out (free()) holds *n classes by name. */
rd_ecode rd_engine_class_list(rd_engine *e, rd_engine_class **out, int *n, rd_err *err);
/* desc NULL = unchanged; set_threshold: 0 unchanged, 1 set, 2 back to auto. */
rd_ecode rd_engine_class_update(rd_engine *e, const char *name, const char *desc, int set_threshold,
                                double threshold, rd_engine_class *out, rd_err *err);
rd_ecode rd_engine_class_delete(rd_engine *e, const char *name, rd_err *err);
/* Sets the geometry options of a class (engine/geoopts.h), only while it has
 * no references (RD_E_CONFLICT after: the geometry is fixed); bad options are
 * RD_E_BADGEO and change nothing. */
rd_ecode rd_engine_class_set_geo(rd_engine *e, const char *name, const rd_geo_opts *o, rd_engine_class *out,
                                 rd_err *err);
/* Sets (u) or removes (u NULL) the ROI mask image of a class (a PNG or JPEG
 * of the frame's aspect ratio; channel 0 > 127 = inspected, alpha ignored),
 * only while it has no references (RD_E_CONFLICT after, as for the geometry).
 * The bytes are decoded under the daemon's image limits (RD_E_BADIMAGE,
 * RD_E_TOOLARGE, RD_E_BUSY as for any upload) and stored as they came; a mask
 * with no white pixel is RD_E_BADGEO.  The frame is known only at the first
 * reference: rd_engine_register checks the mask then (another aspect ratio:
 * RD_E_GEOMETRY naming both; no working-grid pixel inspected: RD_E_BADGEO;
 * nothing stored) and every reference set of the class is built with it on
 * the working grid (core/geometry.h rd_geometry_roi_grid).  Removing a
 * class's absent mask is RD_E_NOTFOUND. */
rd_ecode rd_engine_class_set_roi_mask(rd_engine *e, const char *name, const rd_upload *u, rd_engine_class *out,
                                      rd_err *err);
/* The stored mask bytes (malloc'ed into *data) and their content type;
 * RD_E_NOTFOUND when the class has none. */
rd_ecode rd_engine_class_roi_mask(rd_engine *e, const char *name, uint8_t **data, size_t *len, char ctype[64],
                                  rd_err *err);
/* Checks options before a class is created with them (RD_E_BADGEO). */
rd_ecode rd_engine_geo_check(rd_engine *e, const rd_geo_opts *o, rd_err *err);

/* ---- references ---- */
/* Registers references (decode, features, pool + calibration rebuilt, stored
 * in one transaction, refset swapped) before returning. */
rd_ecode rd_engine_register(rd_engine *e, const char *cls, const rd_upload *u, int n, rd_engine_reg *out,
                            rd_err *err);
/* Deletes one reference and rebuilds the pool; *remaining = references left. */
rd_ecode rd_engine_ref_delete(rd_engine *e, const char *cls, int64_t id, int *remaining, rd_err *err);
rd_ecode rd_engine_ref_list(rd_engine *e, const char *cls, rd_ref_row **rows, int *n, rd_err *err);
rd_ecode rd_engine_ref_image(rd_engine *e, const char *cls, int64_t id, uint8_t **data, size_t *len,
                             char ctype[64], rd_err *err);

/* ---- inspections ---- */
/* Inspects one image.  async: its bytes are stored with the queued row before
 * this returns (so it survives a crash) and out holds the queued row. */
rd_ecode rd_engine_inspect(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id, int async,
                           rd_insp_row *out, rd_err *err);
/* Per-request options of an inspection (engine/engine.c, sql/005_integrator.sql). */
typedef struct rd_engine_insp_opts {
    double threshold;   /* NaN = none; else overrides the class's (score units) */
    double sensitivity; /* NaN = none; 0..1 scales the class's (rd_sensitivity_threshold) */
    int replayed;       /* out: 1 when external_id repeated one within the idempotency window
                         * and out holds that original inspection (nothing new was run) */
} rd_engine_insp_opts;
/* rd_engine_inspect with options (o may be NULL). */
rd_ecode rd_engine_inspect_opts(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id,
                                int async, rd_engine_insp_opts *o, rd_insp_row *out, rd_err *err);
rd_ecode rd_engine_insp_get(rd_engine *e, int64_t id, rd_insp_row *out, rd_err *err);
rd_ecode rd_engine_insp_list(rd_engine *e, const rd_insp_query *q, rd_insp_page *page, rd_err *err);
rd_ecode rd_engine_heatmap(rd_engine *e, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err);
/* The retained JPEG copy of an inspected image (keep_images).  RD_E_NOTFOUND
 * with err->msg set: no such inspection; with err->msg empty: not retained. */
rd_ecode rd_engine_insp_image(rd_engine *e, int64_t id, uint8_t **data, size_t *len, rd_err *err);
rd_ecode rd_engine_stats(rd_engine *e, const char *cls, const char *since, rd_stats *out, rd_err *err);

/* ---- events (GET /v1/events) ---- */
#define RD_EVENTS_RETAINED 4096 /* events a client can resume within (Last-Event-ID) */
struct rd_events;
/* Inspection results (done/failed) and class changes, in order (engine/events.h);
 * closed by rd_engine_stop. */
struct rd_events *rd_engine_events(rd_engine *e);

/* ---- webhooks (engine/webhooks.h) ---- */
rd_ecode rd_engine_webhook_add(rd_engine *e, const char *url, const char *events, const char *cls,
                               const char *secret, rd_webhook_row *out, rd_err *err);
rd_ecode rd_engine_webhook_list(rd_engine *e, rd_webhook_row **rows, int *n, rd_err *err);
rd_ecode rd_engine_webhook_get(rd_engine *e, int64_t id, rd_webhook_row *out, rd_err *err);
rd_ecode rd_engine_webhook_delete(rd_engine *e, int64_t id, rd_err *err);
/* A copy (free()) of the latency-per-stage and score-per-class histograms
 * (engine/istats.h); NULL on out of memory. */
struct rd_istats_snap;
struct rd_istats_snap *rd_engine_istats(rd_engine *e);
/* Delivery counters since start: delivered, failed attempts, given up, queued. */
void rd_engine_webhook_counts(rd_engine *e, unsigned long out[4]);

/* ---- tokens ---- */
/* Scope ("admin", "inspect", "read") of the live token whose sha256 is hash. */
rd_ecode rd_engine_token_scope(rd_engine *e, const char *hash, char scope[16]);
/* The same, with the token's id (who, for the audit log). */
rd_ecode rd_engine_token_auth(rd_engine *e, const char *hash, char scope[16], int64_t *id);
/* A new token (engine/tokens.h): tok gets the secret, shown once; expires_at
 * ISO 8601 UTC or NULL = never; *row the stored row. */
rd_ecode rd_engine_token_create(rd_engine *e, const char *name, const char *scope, const char *expires_at,
                                char tok[68], rd_token_row *row, rd_err *err);
rd_ecode rd_engine_token_list(rd_engine *e, rd_token_row **rows, int *n, rd_err *err);
rd_ecode rd_engine_token_revoke(rd_engine *e, int64_t id, rd_err *err);

#endif
