/* store.h — resadd's SQLite store: the one module that owns every query.
 *
 * One connection, opened in WAL mode with synchronous=FULL (a 2xx reply means
 * the write is on disk) and a busy timeout, guarded by a mutex.  Why one
 * guarded connection rather than one per thread: SQLite serializes writers
 * anyway, every statement here is short (no callback ever runs under the
 * lock: rows are copied out into C structs), and a single set of prepared
 * statements keeps ownership simple.
 * Schema: numbered migrations from sql/NNN_*.sql, applied in one transaction
 * each, tracked with PRAGMA user_version.
 *
 * Every fallible function returns an rd_ecode (sql/ecode.h): RD_E_OK,
 * RD_E_NOTFOUND, RD_E_CONFLICT, RD_E_FULL (SQLITE_FULL: the disk is full) or
 * RD_E_DB, with err saying why.  Rows come back as plain structs; arrays are
 * malloc'ed and freed by the caller with free().  Nothing here knows about
 * HTTP or JSON. */
#ifndef RD_STORE_H
#define RD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ecode.h"
#include "status.h"

#define RD_STORE_NAME_MAX 64
#define RD_STORE_DESC_MAX 4096
#define RD_STORE_EXTID_MAX 256

typedef struct rd_store rd_store;

/* Opens (creating) path and applies pending migrations.  ":memory:" gives a
 * private in-memory database (unit tests). */
rd_store *rd_store_open(const char *path, rd_err *err);
void rd_store_close(rd_store *s);
int rd_store_schema_version(rd_store *s);
/* 1 when the database can be written: a write lock can be taken and no write
 * failed for lack of disk since the last successful probe.  After SQLITE_FULL
 * each call probes with a small committed write (and, for a file database,
 * min_free bytes free on its filesystem) and reports writable again once the
 * probe succeeds. */
int rd_store_writable(rd_store *s);
/* Free bytes wanted on the database's filesystem before it counts as writable
 * again after a full disk (default 8 MiB). */
void rd_store_set_min_free(rd_store *s, uint64_t bytes);

/* "2026-01-02T03:04:05.678Z" for now. */
void rd_store_now(char buf[32]);

/* ---- fault injection (unit tests) ----
 * The next `count` statement steps fail with the SQLite result code rc (e.g.
 * SQLITE_FULL = 13, SQLITE_IOERR = 10) as if SQLite had returned it. */
void rd_store_inject(rd_store *s, int rc, int count);
/* PRAGMA max_page_count = n (0 = SQLite's default): a database that is
 * really full after n pages. */
void rd_store_set_max_pages(rd_store *s, long n);

/* ---- classes ---- */
typedef struct rd_class_row {
    int64_t id;
    char name[RD_STORE_NAME_MAX + 8];
    char description[RD_STORE_DESC_MAX + 1];
    int references;
    int threshold_manual; /* 1: threshold holds the manual value */
    double threshold;
    char created_at[32], updated_at[32];
    char geo_opts[256]; /* the user's geometry options ("" = defaults), sql/004_geometry.sql */
    char geometry[256]; /* rd_geometry_format text fixed by the first reference; "" = none yet */
    int roi_mask_w, roi_mask_h; /* the ROI mask image's size (sql/010_roi_mask.sql); 0 = no mask */
} rd_class_row;

rd_ecode rd_store_class_create(rd_store *s, const char *name, const char *desc, rd_err *err);
/* The same with its geometry options text (NULL/"" = defaults) in the one
 * INSERT: a class is never stored without the options it was created with. */
rd_ecode rd_store_class_create_geo(rd_store *s, const char *name, const char *desc, const char *geo_opts,
                                   rd_err *err);
/* desc NULL = unchanged; set_threshold: 0 unchanged, 1 set to threshold, 2 back to auto. */
rd_ecode rd_store_class_update(rd_store *s, const char *name, const char *desc, int set_threshold,
                               double threshold, rd_err *err);
rd_ecode rd_store_class_delete(rd_store *s, const char *name, rd_err *err);
/* The class's geometry options text (NULL/"" = defaults; updates updated_at)
 * and its fixed geometry text (NULL/"" = none yet). */
rd_ecode rd_store_class_set_geo_opts(rd_store *s, const char *name, const char *opts, rd_err *err);
rd_ecode rd_store_class_set_geometry(rd_store *s, const char *name, const char *geometry, rd_err *err);
/* A class's ROI mask (sql/010_roi_mask.sql): the image bytes as uploaded,
 * their content type and decoded size (updates updated_at); _clear removes
 * it.  RD_E_NOTFOUND: no such class.  _get copies the bytes (malloc'ed into
 * *data) and the type into ctype; RD_E_NOTFOUND also when the class has no
 * mask (err says which). */
rd_ecode rd_store_class_set_roi_mask(rd_store *s, const char *name, const uint8_t *data, size_t len,
                                     const char *ctype, int w, int h, rd_err *err);
rd_ecode rd_store_class_clear_roi_mask(rd_store *s, const char *name, rd_err *err);
rd_ecode rd_store_class_roi_mask(rd_store *s, const char *name, uint8_t **data, size_t *len, char ctype[64],
                                 rd_err *err);
rd_ecode rd_store_class_get(rd_store *s, const char *name, rd_class_row *out, rd_err *err);
/* All classes by name; *rows (free()) holds *n rows. */
rd_ecode rd_store_class_list(rd_store *s, rd_class_row **rows, int *n, rd_err *err);

/* ---- references ---- */
typedef struct rd_ref_row {
    int64_t id;
    char sha256[65];
    char content_type[64];
    int64_t size;
    int width, height;
    char created_at[32];
} rd_ref_row;

typedef struct rd_store_ref_new {
    const uint8_t *image;
    size_t len;
    const char *content_type;
    const char *sha256;
    int width, height;
    const uint8_t *feats;
    size_t feats_len;
    int64_t id_out;      /* filled: new id, or the existing one when duplicate */
    int duplicate_out;   /* filled: 1 if the class already had this sha256 */
} rd_store_ref_new;

/* Adds n references in one transaction (duplicates by sha256 are skipped). */
rd_ecode rd_store_refs_add(rd_store *s, const char *cls, rd_store_ref_new *refs, int n, const char *model_id,
                           rd_err *err);
/* 1 if the class already has a reference with this sha256. */
int rd_store_ref_exists(rd_store *s, const char *cls, const char *sha256);
rd_ecode rd_store_ref_list(rd_store *s, const char *cls, rd_ref_row **rows, int *n, rd_err *err);
/* The stored bytes (malloc'ed into *data) of one reference of cls. */
rd_ecode rd_store_ref_image(rd_store *s, const char *cls, int64_t id, uint8_t **data, size_t *len, char ctype[64],
                            rd_err *err);
rd_ecode rd_store_ref_delete(rd_store *s, const char *cls, int64_t id, rd_err *err);
int rd_store_ref_count(rd_store *s, const char *cls); /* -1 on error */

/* The stored features of every reference of a class (id order), copied out:
 * feats[i] (free each and the array with rd_store_feats_free). */
typedef struct rd_ref_feats {
    int64_t id;
    char model_id[80];
    uint8_t *feats;
    size_t feats_len;
} rd_ref_feats;
rd_ecode rd_store_ref_feats(rd_store *s, const char *cls, rd_ref_feats **out, int *n, rd_err *err);
void rd_store_feats_free(rd_ref_feats *f, int n);
rd_ecode rd_store_ref_set_feats(rd_store *s, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                                rd_err *err);
/* A class's stored calibration (sql/008_classes.sql): its key (what it was
 * computed from, 64 hex), the threshold it gives and, when blob is not NULL,
 * the blob (malloc'ed).  RD_E_NOTFOUND when none is stored. */
rd_ecode rd_store_calib_get(rd_store *s, const char *cls, char key[65], double *threshold, uint8_t **blob,
                            size_t *len, rd_err *err);
/* Stores (replaces) it; nothing happens for an unknown class. */
rd_ecode rd_store_calib_put(rd_store *s, const char *cls, const char *key, double threshold, const uint8_t *blob,
                            size_t len, rd_err *err);
/* Threshold override of a class: RD_E_OK with *manual 1 and *t, or *manual 0. */
rd_ecode rd_store_class_threshold(rd_store *s, const char *cls, int *manual, double *t, rd_err *err);

/* ---- inspections ---- */
/* A queued inspection; with image != NULL its bytes are stored in the same
 * transaction (async jobs: re-run after a crash). */
rd_ecode rd_store_insp_queue(rd_store *s, const char *cls, const char *external_id, const uint8_t *image,
                             size_t len, const char *content_type, int64_t *id, rd_err *err);
/* The threshold one request asked for (?threshold= or ?sensitivity=),
 * written with its queued row so a job re-run after a restart applies it. */
typedef struct rd_store_thr_req {
    const char *source;  /* "request" | "sensitivity" */
    double threshold;    /* the threshold to apply, in score units */
    double sensitivity;  /* NaN unless source is "sensitivity" */
} rd_store_thr_req;
/* rd_store_insp_queue with req (NULL = the class's threshold). */
rd_ecode rd_store_insp_queue_req(rd_store *s, const char *cls, const char *external_id, const uint8_t *image,
                                 size_t len, const char *content_type, const rd_store_thr_req *req, int64_t *id,
                                 rd_err *err);
typedef struct rd_store_insp_done {
    double score, threshold;
    int anomalous, shots, width, height;
    const char *scorer;
    const char *model_sha256; /* learned model file, NULL/"" for residual-norm */
    const char *timings_json;
    double total_ms;
    const char *geometry; /* NULL: the geometry columns stay NULL */
    double inspected_fraction, left_out_fraction;
    int fitted;
    /* heatmaps rows (NULL = none): overlay, raw, mask PNGs (before 006_storage),
     * "map" (core/heatblob.h: the compact map the PNGs render from on GET)
     * and "image" (the retained copy of the inspected image, a JPEG) */
    const uint8_t *png[5];
    size_t png_len[5];
    /* verdict fields (sql/005_integrator.sql), written when has_verdict:
     * regions_json a JSON array text; sensitivity NaN = none requested */
    int has_verdict;
    double confidence, anomalous_area, sensitivity;
    const char *regions_json, *threshold_source;
    int regions_total;
} rd_store_insp_done;
/* Records the result (and drops any stored job image) in one transaction. */
rd_ecode rd_store_insp_finish(rd_store *s, int64_t id, const rd_store_insp_done *d, rd_err *err);
rd_ecode rd_store_insp_fail(rd_store *s, int64_t id, const char *code, const char *msg, rd_err *err);
/* Marks failed every queued inspection without stored image bytes (sync
 * requests whose client is gone after a restart); returns how many, or -1. */
int rd_store_insp_fail_orphans(rd_store *s, const char *msg);
/* Queued inspections that have stored bytes, oldest first (restart recovery). */
typedef struct rd_store_job {
    int64_t id;
    char cls[RD_STORE_NAME_MAX + 8];
    uint8_t *image;
    size_t len;
    /* the request's threshold (rd_store_insp_queue_req): thr_source "" = the
     * class's; else "request" | "sensitivity" with threshold (and sensitivity, NaN = none) */
    char thr_source[16];
    double threshold, sensitivity;
} rd_store_job;
rd_ecode rd_store_jobs_pending(rd_store *s, rd_store_job **jobs, int *n, rd_err *err);
void rd_store_jobs_free(rd_store_job *jobs, int n);

/* Columns of an inspection row; bit (1u << RD_INSP_x) of rd_insp_row.present
 * says the column is not NULL. */
enum {
    RD_INSP_ID, RD_INSP_CLASS, RD_INSP_EXTID, RD_INSP_STATUS, RD_INSP_SCORE, RD_INSP_THRESHOLD,
    RD_INSP_ANOMALOUS, RD_INSP_SCORER, RD_INSP_SHOTS, RD_INSP_WIDTH, RD_INSP_HEIGHT, RD_INSP_TIMINGS,
    RD_INSP_ERRCODE, RD_INSP_ERROR, RD_INSP_CREATED, RD_INSP_FINISHED, RD_INSP_MODEL,
    RD_INSP_GEOMETRY, RD_INSP_INSPECTED, RD_INSP_LEFTOUT, RD_INSP_FITTED,
    RD_INSP_CONFIDENCE, RD_INSP_AREA, RD_INSP_REGIONS, RD_INSP_REGIONS_TOTAL, RD_INSP_THRSRC, RD_INSP_SENS,
    RD_INSP_SEQ, RD_INSP_COLS_COUNT
};
typedef struct rd_insp_row {
    unsigned present;
    int64_t id;
    char cls[RD_STORE_NAME_MAX + 8];
    char external_id[RD_STORE_EXTID_MAX + 1];
    char status[8]; /* queued | done | failed */
    double score, threshold;
    int anomalous;
    char scorer[32];
    int shots, width, height;
    char timings[1024]; /* JSON object text of per-stage milliseconds */
    char error_code[32];
    char error[RD_ERR_MSG_MAX];
    char created_at[32], finished_at[32];
    char model_sha256[65];
    char geometry[256];
    double inspected_fraction, left_out_fraction;
    int fitted;
    double confidence, anomalous_area, sensitivity;
    char regions[4096]; /* JSON array text */
    int regions_total;
    char threshold_source[16]; /* class | request | sensitivity */
    int64_t seq;        /* completion sequence (NULL while queued) */
} rd_insp_row;

rd_ecode rd_store_insp_get(rd_store *s, int64_t id, rd_insp_row *out, rd_err *err);
typedef struct rd_insp_query {
    const char *cls;      /* NULL = all */
    int anomalous;        /* -1 any */
    const char *since;    /* ISO time or NULL */
    int64_t after_id, before_id; /* 0 = unset; after_id is a completion sequence (seq) */
    int after_set;        /* after_id was given (also 0): page forward on seq */
    const char *external_id; /* NULL = any */
    int limit;
} rd_insp_query;
typedef struct rd_insp_page {
    rd_insp_row *rows; /* newest first; free() */
    int n;
    int64_t last_id;        /* the largest id seen (after_id when empty) */
    int64_t next_before_id; /* 0 = no older page */
    int64_t next;           /* after_set: the cursor for the next page (the last row's seq, or after_id) */
    int has_more;           /* after_set: more finished rows follow */
} rd_insp_page;
rd_ecode rd_store_insp_list(rd_store *s, const rd_insp_query *q, rd_insp_page *page, rd_err *err);
/* The newest inspection of cls with this external id created at or after
 * since (ISO time; NULL = any age); RD_E_NOTFOUND when none. */
rd_ecode rd_store_insp_by_extid(rd_store *s, const char *cls, const char *external_id, const char *since,
                                rd_insp_row *out, rd_err *err);
rd_ecode rd_store_heatmap(rd_store *s, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err);

typedef struct rd_stats {
    int64_t total, done, failed, queued, anomalous;
    int have_latency;          /* 0: no done inspection, percentiles unset */
    double p50, p90, p99, max; /* total_ms of done inspections */
} rd_stats;
rd_ecode rd_store_stats(rd_store *s, const char *cls, const char *since, rd_stats *out, rd_err *err);
/* Deletes inspections older than max_age_s (0 = no age bound) and beyond the
 * newest max_count (0 = no count bound); returns rows deleted or -1. */
int rd_store_prune(rd_store *s, long max_age_s, long max_count);
/* Retention of the retained image copies (heatmaps rows of kind "image"):
 * keeps the newest keep_last (0 = no count bound) and those younger than
 * max_age_s (0 = no age bound); returns rows deleted or -1. */
int rd_store_prune_images(rd_store *s, long keep_last, long max_age_s);
/* Deletes the oldest finished inspections while the database's pages in use
 * ((page_count - freelist_count) * page_size) exceed max_bytes; freed pages
 * are reused by later writes.  Returns rows deleted or -1. */
int rd_store_prune_bytes(rd_store *s, uint64_t max_bytes);
/* Bytes of the database's pages in use; -1 on error. */
int64_t rd_store_used_bytes(rd_store *s);

/* ---- webhooks (sql/005_integrator.sql) ---- */
#define RD_STORE_URL_MAX 1024
typedef struct rd_webhook_row {
    int64_t id;
    char url[RD_STORE_URL_MAX + 1];
    char events[128];
    char cls[RD_STORE_NAME_MAX + 8]; /* "" = every class */
    char created_at[32];
    int64_t pending, delivered, failed; /* deliveries by status */
    int last_status;                    /* of the newest attempted delivery; 0 = none / no answer */
    char last_error[256];
} rd_webhook_row;
/* cls NULL/"" = every class; events "*" or comma-separated types. */
rd_ecode rd_store_webhook_add(rd_store *s, const char *url, const char *events, const char *cls, const char *secret,
                              int64_t *id, rd_err *err);
rd_ecode rd_store_webhook_list(rd_store *s, rd_webhook_row **rows, int *n, rd_err *err);
rd_ecode rd_store_webhook_get(rd_store *s, int64_t id, rd_webhook_row *out, rd_err *err);
rd_ecode rd_store_webhook_delete(rd_store *s, int64_t id, rd_err *err);
/* One pending delivery (due at next_at, unix seconds) of body per hook whose
 * events and class match; returns how many, or -1. */
int rd_store_delivery_enqueue(rd_store *s, const char *event, const char *cls, const char *body, double next_at);
typedef struct rd_delivery {
    int64_t id, webhook_id;
    char url[RD_STORE_URL_MAX + 1];
    char secret[256];
    char event[16];
    char *body; /* malloc'ed */
    int attempts;
} rd_delivery;
/* Up to max pending deliveries due at or before now, oldest first; *next_at
 * = when the next one not yet due is (0 = none). */
rd_ecode rd_store_delivery_due(rd_store *s, double now, rd_delivery *out, int max, int *n, double *next_at,
                               rd_err *err);
void rd_store_delivery_free(rd_delivery *d, int n);
/* After an attempt: delivered (ok), pending again at next_at, or failed for
 * good (next_at < 0). */
rd_ecode rd_store_delivery_result(rd_store *s, int64_t id, int ok, int http_status, const char *error, double next_at,
                                  rd_err *err);

/* ---- tokens ---- */
typedef struct rd_token_row {
    int64_t id;
    char name[128];
    char scope[16];
    char created_at[32], revoked_at[32]; /* revoked_at "" = live */
    char expires_at[32];                 /* "" = never (sql/007_tokens.sql) */
} rd_token_row;
rd_ecode rd_store_token_add(rd_store *s, const char *name, const char *scope, const char *hash, int64_t *id,
                            rd_err *err);
/* expires_at: ISO 8601 UTC as rd_store_now writes it, or NULL = never. */
rd_ecode rd_store_token_add_exp(rd_store *s, const char *name, const char *scope, const char *hash,
                                const char *expires_at, int64_t *id, rd_err *err);
/* Scope of a live (not revoked, not expired) token with this hash into scope
 * (16 bytes); RD_E_NOTFOUND otherwise.  _lookup also gives its id. */
rd_ecode rd_store_token_scope(rd_store *s, const char *hash, char scope[16]);
rd_ecode rd_store_token_lookup(rd_store *s, const char *hash, char scope[16], int64_t *id);
rd_ecode rd_store_token_list(rd_store *s, rd_token_row **rows, int *n, rd_err *err);
rd_ecode rd_store_token_revoke(rd_store *s, int64_t id, rd_err *err);
int rd_store_token_count(rd_store *s);

/* ---- labels (sql/009_labels.sql; engine/labels.c) ---- */
typedef struct rd_label_row {
    int64_t inspection_id;
    int64_t reference_id; /* the reference it became; 0 = not in the pool */
    char cls[RD_STORE_NAME_MAX + 8];
    char label[8];        /* good | defect */
    double score;         /* as recorded with the inspection; NaN = none */
    char actor[136], at[32];
} rd_label_row;
typedef struct rd_label_event {
    int64_t id, inspection_id, reference_id; /* 0 = none */
    char cls[RD_STORE_NAME_MAX + 8];
    char action[8];  /* label | unlabel | join | leave | policy */
    char value[64];  /* the label (or the one removed), the policy change */
    char actor[136], at[32];
} rd_label_event;
/* RD_E_NOTFOUND: the inspection has no label. */
rd_ecode rd_store_label_get(rd_store *s, int64_t insp, rd_label_row *out, rd_err *err);
/* Sets the label (with the inspection's recorded score) and records the change;
 * *changed = 0 when it already had this label (nothing written). */
rd_ecode rd_store_label_set(rd_store *s, int64_t insp, const char *cls, const char *label, double score,
                            const char *actor, int *changed, rd_err *err);
rd_ecode rd_store_label_delete(rd_store *s, int64_t insp, const char *actor, rd_err *err);
/* Pool membership of a labelled inspection: ref_id > 0 joined, 0 left (recorded). */
rd_ecode rd_store_label_set_ref(rd_store *s, int64_t insp, int64_t ref_id, const char *actor, rd_err *err);
/* Recorded scores of a class's labelled inspections (malloc'ed; the caller frees both).
 * The goods outside the reference pool come first; the last *ng_pool of the
 * *ng goods are those whose inspection joined the pool. */
rd_ecode rd_store_label_scores(rd_store *s, const char *cls, double **goods, int *ng, int *ng_pool, double **defects,
                               int *nd, rd_err *err);
/* A class's label events, oldest first; insp > 0: only that inspection's. */
rd_ecode rd_store_label_events(rd_store *s, const char *cls, int64_t insp, rd_label_event **rows, int *n,
                               rd_err *err);
rd_ecode rd_store_class_policy_get(rd_store *s, const char *cls, char policy[32], int *learn,
                                   double *policy_threshold, rd_err *err);
/* policy NULL / learn < 0: unchanged; policy_threshold NaN = none (loo applies).
 * actor non-NULL records the change as a 'policy' event. */
rd_ecode rd_store_class_policy_set(rd_store *s, const char *cls, const char *policy, int learn,
                                   double policy_threshold, const char *actor, rd_err *err);

#endif
