/* engine.h — resadd's inference side: the model, a fixed pool of worker
 * threads (each owns an rd_worker) fed by a bounded queue, and the in-memory
 * state of each class (its current rd_refset, swapped atomically after a
 * registration; inspections hold a reference to the one they started with).
 *
 * HTTP threads call these functions and block (sync) or return (async) while
 * the workers run the pipeline; results and errors come back as an
 * rd_ecode the API maps to HTTP statuses, plus JSON and a message. */
#ifndef RD_ENGINE_H
#define RD_ENGINE_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "image.h"
#include "resad.h"
#include "store.h"

typedef enum rd_ecode {
    RD_E_OK,
    RD_E_NOTFOUND,   /* 404 */
    RD_E_CONFLICT,   /* 409 */
    RD_E_NOTREADY,   /* 409 class_not_ready */
    RD_E_BADIMAGE,   /* 422 */
    RD_E_TOOLARGE,   /* 413 image over the pixel limit */
    RD_E_LIMIT,      /* 422 too many references */
    RD_E_BADREQ,     /* 400 */
    RD_E_BUSY,       /* 503 + Retry-After */
    RD_E_TIMEOUT,    /* 504 */
    RD_E_SHUTDOWN,   /* 503 */
    RD_E_INTERNAL    /* 500 */
} rd_ecode;

typedef struct rd_engine rd_engine;

typedef struct rd_upload {
    const uint8_t *data;
    size_t len;
    const char *content_type; /* "image/jpeg" | "image/png" */
} rd_upload;

/* Loads the model, opens workers, loads every class's references (recomputing
 * features stored for another model id) and builds their reference sets. */
rd_engine *rd_engine_new(const rd_config *cfg, rd_store *store, rd_err *err);
/* Stops taking work, runs what is queued to completion, joins the workers. */
void rd_engine_stop(rd_engine *e);
void rd_engine_free(rd_engine *e);

const rd_model_info *rd_engine_info(const rd_engine *e);
int rd_engine_queue_depth(rd_engine *e);
int rd_engine_queue_capacity(const rd_engine *e);
int rd_engine_workers(const rd_engine *e);

/* Image check used before anything is queued or written. */
rd_ecode rd_engine_decode(rd_engine *e, const rd_upload *u, rd_image *img, rd_err *err);

/* Classes: the store row plus ready, threshold and threshold_source. */
rd_ecode rd_engine_class_create(rd_engine *e, const char *name, const char *desc, json_t **out, rd_err *err);
rd_ecode rd_engine_class_get(rd_engine *e, const char *name, json_t **out, rd_err *err);
rd_ecode rd_engine_class_list(rd_engine *e, json_t **out, rd_err *err);
rd_ecode rd_engine_class_delete(rd_engine *e, const char *name, rd_err *err);

/* Registers references (decode, features, pool + calibration rebuilt, stored
 * in one transaction, refset swapped) before returning. */
rd_ecode rd_engine_register(rd_engine *e, const char *cls, const rd_upload *u, int n, json_t **out, rd_err *err);
rd_ecode rd_engine_ref_delete(rd_engine *e, const char *cls, int64_t id, rd_err *err);

/* Inspects one image.  async: returns at once with {"id", "status": "queued"}. */
rd_ecode rd_engine_inspect(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id, int async,
                           json_t **out, rd_err *err);

#endif
