/* store.h — resadd's SQLite store: the one module that owns every query.
 *
 * One connection, opened in WAL mode with synchronous=FULL (a 2xx reply means
 * the write is on disk) and a busy timeout, guarded by a mutex.  Why one
 * guarded connection rather than one per thread: SQLite serializes writers
 * anyway, every statement here is short (inference never runs under the lock),
 * and a single set of prepared statements keeps ownership simple.
 * Schema: numbered migrations from sql/NNN_*.sql, applied in one transaction
 * each, tracked with PRAGMA user_version.
 *
 * Return values: RD_STORE_OK, RD_STORE_NOTFOUND, RD_STORE_CONFLICT or
 * RD_STORE_ERR (err says why).  Read functions return JSON (jansson) objects
 * shaped as the HTTP API shows them. */
#ifndef RD_STORE_H
#define RD_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { RD_STORE_OK = 0, RD_STORE_NOTFOUND = 1, RD_STORE_CONFLICT = 2, RD_STORE_ERR = -1 };

typedef struct rd_store rd_store;

/* Opens (creating) path and applies pending migrations. */
rd_store *rd_store_open(const char *path, rd_err *err);
void rd_store_close(rd_store *s);
int rd_store_schema_version(rd_store *s);
/* 1 when a write transaction can be started (for /readyz). */
int rd_store_writable(rd_store *s);

/* "2026-01-02T03:04:05.678Z" for now. */
void rd_store_now(char buf[32]);

/* ---- classes ---- */
int rd_store_class_create(rd_store *s, const char *name, const char *desc, rd_err *err);
/* desc NULL = unchanged; set_threshold: 0 unchanged, 1 set to *threshold, 2 back to auto. */
int rd_store_class_update(rd_store *s, const char *name, const char *desc, int set_threshold, double threshold,
                          rd_err *err);
int rd_store_class_delete(rd_store *s, const char *name, rd_err *err);
/* The class row: name, description, references, threshold_manual (or null),
 * created_at, updated_at.  NULL if absent. */
json_t *rd_store_class_get(rd_store *s, const char *name, rd_err *err);
json_t *rd_store_class_list(rd_store *s, rd_err *err); /* array of class rows */

/* ---- references ---- */
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
int rd_store_refs_add(rd_store *s, const char *cls, rd_store_ref_new *refs, int n, const char *model_id,
                      rd_err *err);
/* 1 if the class already has a reference with this sha256. */
int rd_store_ref_exists(rd_store *s, const char *cls, const char *sha256);
json_t *rd_store_ref_list(rd_store *s, const char *cls, rd_err *err);
int rd_store_ref_image(rd_store *s, const char *cls, int64_t id, uint8_t **data, size_t *len, char ctype[64],
                       rd_err *err);
int rd_store_ref_delete(rd_store *s, const char *cls, int64_t id, rd_err *err);
int rd_store_ref_count(rd_store *s, const char *cls);

/* Calls fn for each reference of a class (id order) with its stored features
 * (model_id says for which model) and, when want_image, its bytes.  fn returns
 * 0 to continue. */
typedef int (*rd_store_ref_fn)(void *ctx, int64_t id, const char *model_id, const uint8_t *feats, size_t feats_len,
                               const uint8_t *image, size_t image_len);
int rd_store_ref_each(rd_store *s, const char *cls, int want_image, rd_store_ref_fn fn, void *ctx, rd_err *err);
int rd_store_ref_set_feats(rd_store *s, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                           rd_err *err);
/* Names of all classes (array of strings). */
json_t *rd_store_class_names(rd_store *s, rd_err *err);
/* Threshold override of a class: 1 and *t if manual, 0 if auto, -1 absent. */
int rd_store_class_threshold(rd_store *s, const char *cls, double *t);

/* ---- inspections ---- */
int rd_store_insp_queue(rd_store *s, const char *cls, const char *external_id, int64_t *id, rd_err *err);
typedef struct rd_store_insp_done {
    double score, threshold;
    int anomalous, shots, width, height;
    const char *scorer;
    const char *model_sha256; /* learned model file, NULL/"" for residual-norm */
    const char *timings_json;
    double total_ms;
    const uint8_t *png[3]; /* overlay, raw, mask */
    size_t png_len[3];
} rd_store_insp_done;
int rd_store_insp_finish(rd_store *s, int64_t id, const rd_store_insp_done *d, rd_err *err);
int rd_store_insp_fail(rd_store *s, int64_t id, const char *code, const char *msg, rd_err *err);
/* Marks every queued inspection failed (at start: work lost in a restart). */
int rd_store_insp_fail_queued(rd_store *s, const char *msg);
json_t *rd_store_insp_get(rd_store *s, int64_t id, rd_err *err);
typedef struct rd_store_insp_query {
    const char *cls;      /* NULL = all */
    int anomalous;        /* -1 any */
    const char *since;    /* ISO time or NULL */
    int64_t after_id, before_id; /* 0 = unset */
    int limit;
} rd_store_insp_query;
/* {"inspections": [...newest first], "last_id": N} */
json_t *rd_store_insp_list(rd_store *s, const rd_store_insp_query *q, rd_err *err);
int rd_store_heatmap(rd_store *s, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err);
json_t *rd_store_stats(rd_store *s, const char *cls, const char *since, rd_err *err);
/* Deletes inspections older than max_age_s (0 = no age bound) and beyond the
 * newest max_count (0 = no count bound); returns rows deleted or -1. */
int rd_store_prune(rd_store *s, long max_age_s, long max_count);

/* ---- tokens ---- */
int rd_store_token_add(rd_store *s, const char *name, const char *scope, const char *hash, int64_t *id,
                       rd_err *err);
/* Scope of a live token with this hash into scope (16 bytes); NOTFOUND otherwise. */
int rd_store_token_scope(rd_store *s, const char *hash, char scope[16]);
json_t *rd_store_token_list(rd_store *s, rd_err *err);
int rd_store_token_revoke(rd_store *s, int64_t id, rd_err *err);
int rd_store_token_count(rd_store *s);

#endif
