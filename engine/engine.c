/* engine.c — worker pool, class reference sets, registration and inspection
 * jobs, start-up loading and crash recovery for resadd (see engine.h).
 *
 * Locks, outermost first: a class's reg_mu (serializes its registrations,
 * deletions and loading), then the store's own mutex (inside every
 * rd_store_* call, never held across a call back into here), then the short
 * leaf locks (qmu for the queue, cmu for the class list, rs_mu for a refset
 * pointer, mmu for the counters).  The backbone never runs under the store
 * lock: stored rows are copied out first. */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "defaults.h"
#include "geoopts.h"
#include "heatmap.h"
#include "regions.h"
#include "events.h"
#include "webhooks.h"
#include "istats.h"
#include "heatmaps.h"
#include "isotime.h"
#include "log.h"
#include "sha256.h"
#include "tokens.h"

#define MAX_COUNTS 256

/* ---- in-memory class state ---- */
typedef struct eclass {
    char name[RD_STORE_NAME_MAX + 8];
    pthread_mutex_t rs_mu;   /* guards rs (the pointer swap only) */
    rd_refset *rs;           /* NULL until the class has >= 2 references */
    pthread_mutex_t reg_mu;  /* serializes registrations/deletions/loading of this class */
    int deleted;
    int loading;             /* set until the start-up loader has built rs (under cmu) */
    /* the LRU of loaded reference sets (under cmu): rs is NULL while the class
     * is cold (registered, not in memory); its first inspection loads it */
    uint64_t used;           /* e->clock at its last use */
    size_t bytes;            /* rd_refset_bytes(rs) while loaded */
    int broken;              /* its last load failed: not ready until its references change */
    int thr_known;           /* thr_auto holds its automatic threshold (also while cold) */
    double thr_auto;
    struct eclass *next;
} eclass;

/* ---- jobs ---- */
typedef struct job job;
struct job {
    void (*run)(rd_engine *e, rd_worker *w, job *j);
    rd_engine *e;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int refs;          /* owners: the queue/worker and a waiting caller */
    /* results */
    rd_ecode code;
    rd_err err;
    rd_insp_row row;   /* inspection */
    rd_engine_reg reg; /* registration */
    /* inputs */
    eclass *cls;
    rd_image img;      /* inspection */
    rd_refset *rs;
    double threshold;  /* NaN = auto */
    const char *thr_source; /* "class" | "request" | "sensitivity" (static strings) */
    double sensitivity;     /* NaN = none requested */
    int64_t id;
    double t_submit;
    const rd_upload *ups; /* registration (caller waits, so borrowed) */
    rd_image *imgs;
    int n;
    int64_t del_id;    /* reference deletion */
    double decode_ms;  /* inspection: decoding the upload (on the request's thread) */
    uint8_t *orig;     /* inspection: the uploaded JPEG kept as the image copy (rd_heatmaps_keep_upload) */
    size_t orig_len;
    job *next;
};

struct rd_engine {
    const rd_engine_opts *o;
    rd_store *store;
    rd_heatcache *heat; /* rendered heatmaps (heatmaps.h) */
    rd_model *model;
    const rd_model_info *info;
    rd_image_limits lim;
    int nworkers, ncores;
    rd_worker **workers;
    rd_cores *cores; /* shared by the workers' teams (team.h) */
    pthread_t *threads;
    int started;
    pthread_t loader;
    int loader_started;
    rd_model_opts mo;          /* what the loader loads */
    char bpath[4096], mpath[4096];
    int model_ready;           /* under cmu: model and workers up */
    int failed;                /* under cmu: the model did not load (msg in fail) */
    rd_err fail;
    /* queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    pthread_cond_t pcv; /* pixels were given back */
    job *head, *tail;
    int qlen, running, cap, stopping;
    int reserved; /* slots promised to requests that are writing their row */
    /* classes */
    pthread_mutex_t cmu;
    eclass *classes;
    int nloading;
    /* loaded reference sets (under cmu): budget from pool_memory_mb / max_loaded_classes */
    size_t loaded_bytes;
    int nloaded;
    uint64_t clock;
    unsigned long loads_stored, loads_built, evictions;
    /* counters */
    pthread_mutex_t mmu;
    rd_engine_count counts[MAX_COUNTS];
    int ncounts;
    /* failed inspections whose failure could not be written (disk full):
     * recorded once the database is writable again (under mmu) */
    int64_t unrecorded[64];
    int nunrecorded;
    /* decoded pixels held by requests and queued jobs (under qmu) */
    uint64_t pixels;
    /* serializes the idempotency look-up with the row's insert */
    pthread_mutex_t idmu;
    rd_events *events; /* GET /v1/events (events.h) */
    rd_webhooks *hooks; /* the delivery thread (webhooks.h) */
    rd_istats *istats;  /* latency and score histograms (istats.h) */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *code_name(rd_engine *e, rd_ecode c)
{
    return e->o->code_name ? e->o->code_name(c) : "internal";
}

/* ---- counters ---- */
static void count(rd_engine *e, const char *cls, const char *verdict)
{
    int i;
    pthread_mutex_lock(&e->mmu);
    for (i = 0; i < e->ncounts; i++)
        if (!strcmp(e->counts[i].cls, cls) && !strcmp(e->counts[i].verdict, verdict)) break;
    if (i == e->ncounts && e->ncounts >= MAX_COUNTS - 4) { /* beyond the table: class "_other" */
        cls = "_other";
        for (i = 0; i < e->ncounts; i++)
            if (!strcmp(e->counts[i].cls, cls) && !strcmp(e->counts[i].verdict, verdict)) break;
    }
    if (i == e->ncounts && e->ncounts < MAX_COUNTS) {
        snprintf(e->counts[i].cls, sizeof e->counts[i].cls, "%s", cls);
        snprintf(e->counts[i].verdict, sizeof e->counts[i].verdict, "%s", verdict);
        e->counts[i].n = 0;
        e->ncounts++;
    }
    if (i < e->ncounts) e->counts[i].n++;
    pthread_mutex_unlock(&e->mmu);
}

int rd_engine_counts(rd_engine *e, rd_engine_count *out, int max)
{
    pthread_mutex_lock(&e->mmu);
    int n = e->ncounts < max ? e->ncounts : max;
    memcpy(out, e->counts, (size_t)n * sizeof *out);
    pthread_mutex_unlock(&e->mmu);
    return n;
}

/* ---- jobs and the queue ---- */
static void unpixel(rd_engine *e, rd_image *img);

static void job_unref(job *j)
{
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    if (j->e) unpixel(j->e, &j->img);
    free(j->orig);
    rd_refset_unref(j->rs);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static job *job_new(rd_engine *e, void (*run)(rd_engine *, rd_worker *, job *))
{
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->run = run;
    j->e = e;
    j->refs = 1;
    j->threshold = NAN;
    j->thr_source = "class";
    j->sensitivity = NAN;
    return j;
}

typedef struct { rd_engine *e; int i; } warg;

static void *worker_main(void *arg)
{
    warg *a = arg;
    rd_engine *e = a->e;
    rd_worker *w = e->workers[a->i];
    free(a);
    for (;;) {
        pthread_mutex_lock(&e->qmu);
        while (!e->head && !e->stopping) pthread_cond_wait(&e->qcv, &e->qmu);
        if (!e->head) { /* stopping and drained */
            pthread_mutex_unlock(&e->qmu);
            return NULL;
        }
        job *j = e->head;
        e->head = j->next;
        if (!e->head) e->tail = NULL;
        e->qlen--;
        e->running++;
        pthread_mutex_unlock(&e->qmu);
        rd_worker_busy(w, 1);
        j->run(e, w, j);
        rd_worker_busy(w, 0);
        pthread_mutex_lock(&e->qmu);
        e->running--;
        pthread_mutex_unlock(&e->qmu);
        pthread_mutex_lock(&j->mu);
        j->done = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
    }
}

enum { SLOT_CHECK, SLOT_RESERVED, SLOT_INTERNAL };

/* Queues j (taking the queue's reference); BUSY when full.  slot: CHECK
 * against the capacity, RESERVED (the caller holds a slot from reserve(),
 * given back here whatever happens) or INTERNAL (start-up work, not bounded). */
static rd_ecode submit_r(rd_engine *e, job *j, int slot, rd_err *err)
{
    pthread_mutex_lock(&e->qmu);
    if (slot == SLOT_RESERVED) e->reserved--;
    if (e->stopping) {
        pthread_mutex_unlock(&e->qmu);
        rd_err_set(err, RD_ERR_STATE, "resadd is shutting down");
        return RD_E_SHUTDOWN;
    }
    if (slot == SLOT_CHECK && e->qlen + e->running + e->reserved >= e->cap + e->nworkers) {
        pthread_mutex_unlock(&e->qmu);
        rd_err_set(err, RD_ERR_LIMIT, "the inference queue is full (%d waiting); retry shortly", e->qlen);
        return RD_E_BUSY;
    }
    j->next = NULL;
    if (e->tail) e->tail->next = j;
    else e->head = j;
    e->tail = j;
    e->qlen++;
    pthread_cond_signal(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
    return RD_E_OK;
}

static rd_ecode submit(rd_engine *e, job *j, rd_err *err) { return submit_r(e, j, SLOT_CHECK, err); }

/* Promises a queue slot, so that a request can write its row first and still
 * be sure to be queued (no row is written for a request refused as busy). */
static rd_ecode reserve(rd_engine *e, rd_err *err)
{
    rd_ecode c = RD_E_OK;
    pthread_mutex_lock(&e->qmu);
    if (e->stopping) {
        c = RD_E_SHUTDOWN;
        rd_err_set(err, RD_ERR_STATE, "resadd is shutting down");
    } else if (e->qlen + e->running + e->reserved >= e->cap + e->nworkers) {
        c = RD_E_BUSY;
        rd_err_set(err, RD_ERR_LIMIT, "the inference queue is full (%d waiting); retry shortly", e->qlen);
    } else {
        e->reserved++;
    }
    pthread_mutex_unlock(&e->qmu);
    return c;
}

static void unreserve(rd_engine *e)
{
    pthread_mutex_lock(&e->qmu);
    e->reserved--;
    pthread_mutex_unlock(&e->qmu);
}

/* Waits for j up to timeout_s; returns 0 when done. */
static int wait_job(job *j, int timeout_s)
{
    struct timespec ts;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    pthread_mutex_lock(&j->mu);
    while (!j->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done ? 0 : -1;
}

int rd_engine_queue_depth(rd_engine *e)
{
    pthread_mutex_lock(&e->qmu);
    int n = e->qlen + e->running;
    pthread_mutex_unlock(&e->qmu);
    return n;
}
int rd_engine_queue_capacity(const rd_engine *e) { return e->cap; }
int rd_engine_workers(const rd_engine *e) { return e->nworkers; }
const rd_model_info *rd_engine_info(rd_engine *e)
{
    pthread_mutex_lock(&e->cmu);
    const rd_model_info *in = e->model_ready ? e->info : NULL;
    pthread_mutex_unlock(&e->cmu);
    return in;
}

int rd_engine_failed(rd_engine *e, rd_err *err)
{
    pthread_mutex_lock(&e->cmu);
    int f = e->failed;
    if (f && err) *err = e->fail;
    pthread_mutex_unlock(&e->cmu);
    return f;
}

/* Loads the model and starts the workers (the loader thread's first step). */
static rd_status load_model(rd_engine *e, rd_err *err)
{
    e->model = rd_model_load(&e->mo, err);
    if (!e->model) {
        rd_err_prefix(err, "backbone %s%s%s", e->mo.backbone_path, e->mo.model_path ? " with learned model " : "",
                      e->mo.model_path ? e->mo.model_path : "");
        return err->code ? err->code : RD_ERR_IO;
    }
    e->info = rd_model_get_info(e->model);
    rd_log(RD_LOG_INFO, "model %s: arch %s, scorer %s, size %d, %d levels, model id %.16s…", e->mo.backbone_path,
           e->info->arch, e->info->scorer, e->info->size, e->info->nlevels, e->info->model_id);
    rd_log(RD_LOG_INFO, "%d worker(s) × %d thread(s) sharing %d core(s), queue %d", e->nworkers, e->mo.threads,
           e->ncores, e->cap);
    if (!(e->cores = rd_cores_new(e->ncores, err))) return RD_ERR_NOMEM;
    for (int i = 0; i < e->nworkers; i++) {
        if (!(e->workers[i] = rd_worker_new(e->model, err))) return err->code ? err->code : RD_ERR_NOMEM;
        rd_worker_share(e->workers[i], e->cores);
    }
    for (int k = 0; k < e->nworkers; k++) {
        warg *a = malloc(sizeof *a);
        if (!a) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        a->e = e;
        a->i = k;
        if (pthread_create(&e->threads[k], NULL, worker_main, a) != 0) {
            free(a);
            return rd_err_set(err, RD_ERR_INTERNAL, "cannot start worker thread");
        }
        e->started = k + 1;
    }
    pthread_mutex_lock(&e->cmu);
    e->model_ready = 1;
    pthread_mutex_unlock(&e->cmu);
    return RD_OK;
}
int rd_engine_writable(rd_engine *e)
{
    int w = rd_store_writable(e->store);
    pthread_mutex_lock(&e->mmu);
    for (int i = 0; w && i < e->nunrecorded;) {
        if (rd_store_insp_fail(e->store, e->unrecorded[i], code_name(e, RD_E_FULL),
                               "the disk was full when this inspection finished", NULL) != RD_E_OK) {
            i++;
            continue;
        }
        e->unrecorded[i] = e->unrecorded[--e->nunrecorded];
    }
    pthread_mutex_unlock(&e->mmu);
    return w;
}

void rd_engine_memory(rd_engine *e, rd_engine_mem *out)
{
    pthread_mutex_lock(&e->cmu);
    out->loaded = e->nloaded;
    out->bytes = e->loaded_bytes;
    out->budget_bytes = e->o->pool_memory_bytes;
    out->max_loaded = e->o->max_loaded_classes;
    out->loads_stored = e->loads_stored;
    out->loads_built = e->loads_built;
    out->evictions = e->evictions;
    pthread_mutex_unlock(&e->cmu);
}

int rd_engine_loading(rd_engine *e)
{
    pthread_mutex_lock(&e->cmu);
    int n = e->nloading;
    pthread_mutex_unlock(&e->cmu);
    return n;
}

/* ---- classes ---- */
static eclass *class_find(rd_engine *e, const char *name)
{
    eclass *c;
    pthread_mutex_lock(&e->cmu);
    for (c = e->classes; c; c = c->next)
        if (!c->deleted && !strcmp(c->name, name)) break;
    pthread_mutex_unlock(&e->cmu);
    return c;
}

static eclass *class_add(rd_engine *e, const char *name, int loading)
{
    eclass *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    pthread_mutex_init(&c->rs_mu, NULL);
    pthread_mutex_init(&c->reg_mu, NULL);
    pthread_mutex_lock(&e->cmu);
    c->loading = loading;
    e->nloading += loading;
    c->next = e->classes;
    e->classes = c;
    pthread_mutex_unlock(&e->cmu);
    return c;
}

/* Marks c loaded (once). */
static void class_loaded(rd_engine *e, eclass *c)
{
    pthread_mutex_lock(&e->cmu);
    if (c->loading) {
        c->loading = 0;
        e->nloading--;
    }
    pthread_mutex_unlock(&e->cmu);
}

static rd_refset *class_refset(eclass *c)
{
    pthread_mutex_lock(&c->rs_mu);
    rd_refset *r = c->rs ? rd_refset_ref(c->rs) : NULL;
    pthread_mutex_unlock(&c->rs_mu);
    return r;
}

/* 1 when the loaded reference sets exceed the budget (under cmu). */
static int over_budget(const rd_engine *e)
{
    return (e->o->pool_memory_bytes && e->loaded_bytes > e->o->pool_memory_bytes) ||
           (e->o->max_loaded_classes > 0 && e->nloaded > e->o->max_loaded_classes);
}

/* Evicts least recently used classes, never keep and never one an inspection
 * holds, until the loaded sets fit the budget (or nothing more can go). */
static void evict(rd_engine *e, const eclass *keep)
{
    for (;;) {
        rd_refset *gone = NULL;
        pthread_mutex_lock(&e->cmu);
        eclass *v = NULL;
        if (over_budget(e))
            for (eclass *c = e->classes; c; c = c->next) {
                if (c == keep || !c->bytes || (v && c->used >= v->used)) continue;
                pthread_mutex_lock(&c->rs_mu);
                int idle = c->rs && !rd_refset_in_use(c->rs);
                pthread_mutex_unlock(&c->rs_mu);
                if (idle) v = c;
            }
        if (v) {
            pthread_mutex_lock(&v->rs_mu);
            if (v->rs && !rd_refset_in_use(v->rs)) {
                gone = v->rs;
                v->rs = NULL;
            }
            pthread_mutex_unlock(&v->rs_mu);
            if (gone) {
                e->loaded_bytes -= v->bytes;
                e->nloaded--;
                v->bytes = 0;
                e->evictions++;
            }
        }
        pthread_mutex_unlock(&e->cmu);
        if (!v) return;
        if (gone) rd_log(RD_LOG_DEBUG, "class %s: reference set evicted (least recently used)", v->name);
        rd_refset_unref(gone);
    }
}

/* Sets (r) or drops (NULL) c's reference set, keeping the budget's account;
 * a new set may evict others. */
static void class_swap(rd_engine *e, eclass *c, rd_refset *r)
{
    size_t nb = r ? rd_refset_bytes(r) : 0;
    pthread_mutex_lock(&e->cmu);
    pthread_mutex_lock(&c->rs_mu);
    rd_refset *old = c->rs;
    c->rs = r;
    pthread_mutex_unlock(&c->rs_mu);
    e->loaded_bytes = e->loaded_bytes - c->bytes + nb;
    e->nloaded += (r != NULL) - (old != NULL);
    c->bytes = nb;
    if (r) {
        c->used = ++e->clock;
        c->thr_auto = rd_refset_threshold(r);
        c->thr_known = 1;
        c->broken = 0;
    } else {
        c->thr_known = 0;
    }
    pthread_mutex_unlock(&e->cmu);
    rd_refset_unref(old);
    if (r) evict(e, c);
}

/* Marks c used now (the LRU's clock). */
static void class_touch(rd_engine *e, eclass *c)
{
    pthread_mutex_lock(&e->cmu);
    c->used = ++e->clock;
    pthread_mutex_unlock(&e->cmu);
}

static void class_broken(rd_engine *e, eclass *c)
{
    pthread_mutex_lock(&e->cmu);
    c->broken = 1;
    pthread_mutex_unlock(&e->cmu);
}

static rd_refset *class_acquire(rd_engine *e, eclass *c);

static void class_view(rd_engine *e, const rd_class_row *row, rd_engine_class *out)
{
    eclass *c = class_find(e, row->name);
    rd_refset *r = c ? class_refset(c) : NULL;
    if (&out->row != row) out->row = *row;
    out->has_geo = row->geometry[0] && row->references > 0 && rd_geometry_parse(row->geometry, &out->geo, NULL) == RD_OK;
    if (rd_geoopts_parse(row->geo_opts, &out->opts)) memset(&out->opts, 0, sizeof out->opts);
    out->ready = r != NULL;
    out->loaded = r != NULL;
    out->threshold_auto = r ? rd_refset_threshold(r) : 0;
    pthread_mutex_lock(&e->cmu);
    out->loading = c ? c->loading : 0;
    int cold = c && !r && !c->broken && row->references >= 2, known = c ? c->thr_known : 0;
    double thr = c ? c->thr_auto : 0;
    pthread_mutex_unlock(&e->cmu);
    rd_refset_unref(r);
    if (cold) { /* registered, not in memory: ready; its threshold from the stored calibration */
        char key[65];
        rd_err err = {0};
        out->ready = 1;
        if (!known && rd_store_calib_get(e->store, row->name, key, &thr, NULL, NULL, &err) == RD_E_OK) {
            known = 1;
            pthread_mutex_lock(&e->cmu);
            c->thr_auto = thr;
            c->thr_known = 1;
            pthread_mutex_unlock(&e->cmu);
        }
        out->threshold_auto = known ? thr : NAN; /* NaN: not known until it is loaded */
    }
}

static void class_event(rd_engine *e, const char *name, const char *action);

/* webhooks.h's render callback: the composition root's view of an event */
static char *render_event(void *ctx, const rd_event *ev)
{
    rd_engine *e = ctx;
    return e->o->render_event ? e->o->render_event(e, ev) : NULL;
}

rd_ecode rd_engine_class_create(rd_engine *e, const char *name, const char *desc, rd_engine_class *out, rd_err *err)
{
    return rd_engine_class_create_geo(e, name, desc, NULL, out, err);
}

rd_ecode rd_engine_class_create_geo(rd_engine *e, const char *name, const char *desc, const rd_geo_opts *geo,
                                    rd_engine_class *out, rd_err *err)
{
    char text[RD_GEO_TEXT_MAX] = "";
    rd_ecode rc = geo ? rd_engine_geo_check(e, geo, err) : RD_E_OK;
    if (rc != RD_E_OK) return rc;
    if (geo) rd_geoopts_format(geo, text, sizeof text);
    if ((rc = rd_store_class_create_geo(e->store, name, desc, text, err)) != RD_E_OK) return rc;
    if (!class_find(e, name) && !class_add(e, name, 0)) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return RD_E_INTERNAL;
    }
    class_event(e, name, "created");
    return rd_engine_class_get(e, name, out, err);
}

rd_ecode rd_engine_class_get(rd_engine *e, const char *name, rd_engine_class *out, rd_err *err)
{
    rd_ecode rc = rd_store_class_get(e->store, name, &out->row, err);
    if (rc != RD_E_OK) return rc;
    if (out->row.references > 0 && !out->row.geometry[0]) {
        /* made before whole-frame inspection: loading it records its geometry */
        eclass *c = class_find(e, name);
        rd_refset_unref(c ? class_acquire(e, c) : NULL);
        if ((rc = rd_store_class_get(e->store, name, &out->row, err)) != RD_E_OK) return rc;
    }
    class_view(e, &out->row, out);
    return RD_E_OK;
}

rd_ecode rd_engine_class_list(rd_engine *e, rd_engine_class **out, int *n, rd_err *err)
{
    rd_class_row *rows = NULL;
    rd_ecode rc = rd_store_class_list(e->store, &rows, n, err);
    *out = NULL;
    if (rc != RD_E_OK) return rc;
    *out = calloc((size_t)(*n ? *n : 1), sizeof **out);
    if (!*out) {
        free(rows);
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return RD_E_INTERNAL;
    }
    for (int i = 0; i < *n; i++) class_view(e, &rows[i], &(*out)[i]);
    free(rows);
    return RD_E_OK;
}

rd_ecode rd_engine_class_update(rd_engine *e, const char *name, const char *desc, int set_threshold,
                                double threshold, rd_engine_class *out, rd_err *err)
{
    rd_ecode rc = rd_store_class_update(e->store, name, desc, set_threshold, threshold, err);
    if (rc != RD_E_OK) return rc;
    class_event(e, name, "updated");
    return rd_engine_class_get(e, name, out, err);
}

rd_ecode rd_engine_geo_check(rd_engine *e, const rd_geo_opts *o, rd_err *err)
{
    const rd_model_info *in = rd_engine_info(e);
    if (rd_geoopts_check(o, in && in->stride > 0 ? in->stride : 1, err) != RD_OK) return RD_E_BADGEO;
    if (in && in->stride > 0 && o->search_tile > 0 && o->search_tile % in->stride) {
        rd_err_set(err, RD_ERR_ARG, "geometry tile %d must be a multiple of the model's grid stride %d", o->search_tile,
                   in->stride);
        return RD_E_BADGEO;
    }
    return RD_E_OK;
}

rd_ecode rd_engine_class_set_geo(rd_engine *e, const char *name, const rd_geo_opts *o, rd_engine_class *out,
                                 rd_err *err)
{
    char text[RD_GEO_TEXT_MAX];
    rd_ecode rc = rd_engine_geo_check(e, o, err);
    if (rc != RD_E_OK) return rc;
    eclass *c = class_find(e, name);
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", name);
        return RD_E_NOTFOUND;
    }
    pthread_mutex_lock(&c->reg_mu); /* no registration in between */
    int n = rd_store_ref_count(e->store, name);
    if (n < 0) {
        rd_err_set(err, RD_ERR_IO, "database error counting references");
        rc = RD_E_DB;
    } else if (n > 0) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' has %d reference(s): its geometry is fixed (delete them to change it)",
                   name, n);
        rc = RD_E_CONFLICT;
    } else {
        rd_geoopts_format(o, text, sizeof text);
        rc = rd_store_class_set_geo_opts(e->store, name, text, err);
    }
    pthread_mutex_unlock(&c->reg_mu);
    if (rc != RD_E_OK) return rc;
    return out ? rd_engine_class_get(e, name, out, err) : RD_E_OK;
}

rd_ecode rd_engine_class_delete(rd_engine *e, const char *name, rd_err *err)
{
    eclass *c = class_find(e, name);
    if (c) pthread_mutex_lock(&c->reg_mu);
    rd_ecode rc = rd_store_class_delete(e->store, name, err);
    if (c) {
        if (rc == RD_E_OK) {
            pthread_mutex_lock(&e->cmu);
            c->deleted = 1;
            pthread_mutex_unlock(&e->cmu);
            class_loaded(e, c);
            class_swap(e, c, NULL);
        }
        pthread_mutex_unlock(&c->reg_mu);
    }
    if (rc == RD_E_OK) class_event(e, name, "deleted");
    return rc;
}

/* ---- images ---- */
/* Input pixels per working pixel a reduced decode keeps on each axis (at
 * least): the antialiased resize then still averages >= 2 decoded pixels per
 * output pixel.  Measured on tiled openarena photographs (JPEG q92 + noise),
 * working image after resize vs full decode + resize: 1920x1080 at 1/2 mean
 * 0.29 / max 9 levels, 5000x4000 at 1/8 mean 0.46 / max 10; at ~1.2x
 * (1920x1080 at 1/4) mean 0.93 / max 37 — so 2, not 1. */
#define RD_DECODE_OVERSAMPLE 2.0

/* rd_decode_opts.min_short for a frame of (displayed) size in->w x in->h
 * inspected at geo: the source pixels the view maps onto each working pixel,
 * divided by RD_DECODE_OVERSAMPLE, is the reduction allowed.  0 (full size)
 * without a geometry or when the frame does not fit it (refused after). */
static int decode_min_short(const rd_geometry *geo, const rd_image_info *in)
{
    rd_view v;
    if (!geo || !in->reducible || rd_view_for_image(geo, in->w, in->h, &v, NULL) != RD_OK || v.dst_w < 1 ||
        v.dst_h < 1)
        return 0;
    double rx = v.src_w * in->w / v.dst_w, ry = v.src_h * in->h / v.dst_h;
    double r = (rx < ry ? rx : ry) / RD_DECODE_OVERSAMPLE;
    int sh = in->w < in->h ? in->w : in->h;
    return r < 2 ? 0 : (int)ceil(sh / r);
}

/* Decodes u into img, its pixels counted against the budget of decoded pixels
 * in flight (pixel_budget) until unpixel().  With a geometry (inspections) a
 * frame much larger than the working grid is decoded reduced
 * (decode_min_short: JPEG DCT scaling, PNG rows box-averaged as read), and the
 * budget counts the pixels actually decoded.  The budget is enforced before
 * decoding: the header says what the decode will hold (or, unreadable,
 * max_pixels); a decode reserves that — waiting up to 5 s for room — and the
 * reservation is the decoder's limit on decoded pixels, checked on the header
 * before any allocation; the frame itself is checked against max_pixels.
 * After the decode the reservation shrinks to the image's real size.  So a
 * small PNG that decodes to 36 MP cannot be sent many times over: once the
 * budget is held, the next one waits, then gets 503 busy, without a byte being
 * allocated for it. */
static rd_ecode decode(rd_engine *e, const rd_upload *u, const rd_geometry *geo, int alpha, rd_image *img,
                       rd_err *err)
{
    rd_decode_opts dopts = {.alpha = alpha ? RD_ALPHA_IGNORE : RD_ALPHA_COMPOSITE};
    rd_image_format f = rd_image_sniff(u->data, u->len);
    rd_image_limits lim = e->lim;
    rd_image_info in;
    uint64_t budget = e->o->pixel_budget, take = lim.max_pixels;
    int frame_ok = 0;
    if (f == RD_IMG_UNKNOWN) {
        rd_err_set(err, RD_ERR_FORMAT, "the body is not a JPEG or PNG image");
        return RD_E_BADIMAGE;
    }
    if (rd_image_probe(u->data, u->len, &in, NULL) == RD_OK) {
        dopts.min_short = decode_min_short(geo, &in);
        const int d = in.reducible ? rd_image_scale_for(in.w < in.h ? in.w : in.h, dopts.min_short) : 1;
        const uint64_t n = (uint64_t)((in.w + d - 1) / d) * (uint64_t)((in.h + d - 1) / d);
        frame_ok = in.w <= lim.max_side && in.h <= lim.max_side && (uint64_t)in.w * (uint64_t)in.h <= lim.max_pixels;
        if (frame_ok && n < take) take = n; /* else the decoder refuses the header */
    }
    if (budget) {
        struct timespec dl;
        int rc = 0;
        if (take > budget) take = budget;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        pthread_mutex_lock(&e->qmu);
        while (e->pixels + take > budget && !e->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&e->pcv, &e->qmu, &dl);
        uint64_t left = budget > e->pixels ? budget - e->pixels : 0;
        if (take > left) take = left;
        e->pixels += take;
        pthread_mutex_unlock(&e->qmu);
        if (!take) {
            rd_err_set(err, RD_ERR_LIMIT, "the decoding budget (%.0f megapixels in flight) is taken; retry shortly",
                       (double)budget / 1e6);
            return RD_E_BUSY;
        }
        lim.max_decoded = take;
    }
    rd_status st = rd_image_decode_opts(u->data, u->len, &lim, &dopts, img, err);
    uint64_t real = st == RD_OK ? (uint64_t)img->w * (uint64_t)img->h : 0;
    if (budget) {
        pthread_mutex_lock(&e->qmu);
        e->pixels -= take - (real < take ? real : take);
        pthread_cond_broadcast(&e->pcv);
        pthread_mutex_unlock(&e->qmu);
    }
    if (st == RD_ERR_LIMIT && frame_ok && budget) {
        rd_err_set(err, RD_ERR_LIMIT, "the image is larger than the %.1f megapixels of decoding budget left now "
                   "(other images are in flight); retry shortly", (double)take / 1e6);
        return RD_E_BUSY;
    }
    if (st == RD_ERR_LIMIT) return RD_E_TOOLARGE;
    if (st != RD_OK) return st == RD_ERR_NOMEM ? RD_E_INTERNAL : RD_E_BADIMAGE;
    return RD_E_OK;
}

/* Releases img and gives its pixels back to the budget. */
static void unpixel(rd_engine *e, rd_image *img)
{
    if (!img->rgb) return;
    if (e->o->pixel_budget) {
        pthread_mutex_lock(&e->qmu);
        uint64_t n = (uint64_t)img->w * (uint64_t)img->h;
        e->pixels = e->pixels > n ? e->pixels - n : 0;
        pthread_cond_broadcast(&e->pcv);
        pthread_mutex_unlock(&e->qmu);
    }
    rd_image_release(img);
}

/* ---- ROI mask ---- */
/* 1 if some pixel of a decoded mask is white (channel 0 > 127: inspected). */
static int mask_inspects(const rd_image *m)
{
    size_t n = (size_t)m->w * (size_t)m->h;
    for (size_t i = 0; i < n; i++)
        if (m->rgb[3 * i] > 127) return 1;
    return 0;
}

rd_ecode rd_engine_class_set_roi_mask(rd_engine *e, const char *name, const rd_upload *u, rd_engine_class *out,
                                      rd_err *err)
{
    rd_image img = {0};
    rd_class_row row;
    rd_ecode rc = RD_E_OK;
    int locked = 0, w = 0, h = 0;
    eclass *c = class_find(e, name);
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", name);
        return RD_E_NOTFOUND;
    }
    if (u) { /* decoded as any upload, then only its size is kept: the bytes are stored as they came */
        if ((rc = decode(e, u, NULL, 1, &img, err)) != RD_E_OK) {
            rd_err_prefix(err, "roi mask");
            goto out;
        }
        rd_image_full_size(&img, &w, &h);
        if (!mask_inspects(&img)) {
            rd_err_set(err, RD_ERR_ARG, "roi mask %dx%d inspects nothing: no pixel is white (> 127)", w, h);
            rc = RD_E_BADGEO;
            goto out;
        }
    }
    pthread_mutex_lock(&c->reg_mu); /* no registration in between */
    locked = 1;
    if ((rc = rd_store_class_get(e->store, name, &row, err)) != RD_E_OK) goto out;
    if (row.references > 0) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' has %d reference(s): its geometry and roi mask are fixed (delete "
                   "them to change it)", name, row.references);
        rc = RD_E_CONFLICT;
    } else if (!u && row.roi_mask_w <= 0) {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no roi mask", name);
        rc = RD_E_NOTFOUND;
    } else if (u) {
        const char *ct = rd_image_sniff(u->data, u->len) == RD_IMG_PNG ? "image/png" : "image/jpeg";
        rc = rd_store_class_set_roi_mask(e->store, name, u->data, u->len, ct, w, h, err);
    } else {
        rc = rd_store_class_clear_roi_mask(e->store, name, err);
    }
out:
    if (locked) pthread_mutex_unlock(&c->reg_mu);
    unpixel(e, &img);
    if (rc != RD_E_OK) return rc;
    class_event(e, name, "updated");
    return out ? rd_engine_class_get(e, name, out, err) : RD_E_OK;
}

rd_ecode rd_engine_class_roi_mask(rd_engine *e, const char *name, uint8_t **data, size_t *len, char ctype[64],
                                  rd_err *err)
{
    return rd_store_class_roi_mask(e->store, name, data, len, ctype, err);
}

/* ---- reference sets from stored features ---- */
/* Features of one stored reference recomputed from its stored bytes (the
 * backbone changed): runs outside every store call. */
static rd_status recompute(rd_engine *e, rd_worker *w, const char *cls, const rd_geometry *geo, int64_t id,
                           rd_feats **f, rd_err *err)
{
    rd_decode_opts dopts = {.alpha = geo->alpha ? RD_ALPHA_IGNORE : RD_ALPHA_COMPOSITE};
    uint8_t *bytes = NULL, *blob = NULL;
    size_t len = 0, blen = 0;
    char ct[64];
    rd_image img = {0};
    rd_status st = RD_ERR_IO;
    *f = NULL;
    if (rd_store_ref_image(e->store, cls, id, &bytes, &len, ct, err) != RD_E_OK) goto out;
    rd_image_info in; /* reduced as at registration (rd_engine_register) */
    if (rd_image_probe(bytes, len, &in, NULL) == RD_OK) dopts.min_short = decode_min_short(geo, &in);
    if ((st = rd_image_decode_opts(bytes, len, &e->lim, &dopts, &img, err)) != RD_OK ||
        (st = rd_extract_geo(e->model, w, geo, &img, f, NULL, err)) != RD_OK ||
        (st = rd_feats_serialize_f16(*f, &blob, &blen, err)) != RD_OK)
        goto out;
    rd_feats_round_f16(*f); /* what was stored */
    if (rd_store_ref_set_feats(e->store, id, e->info->model_id, blob, blen, err) != RD_E_OK) st = RD_ERR_IO;
out:
    if (st != RD_OK) {
        rd_feats_free(*f);
        *f = NULL;
    }
    rd_image_release(&img);
    free(bytes);
    free(blob);
    return st;
}

typedef struct geo_buf {
    char s[RD_GEO_TEXT_MAX];
} geo_buf;

static geo_buf geo_text(const rd_geometry *g)
{
    geo_buf b;
    rd_geometry_format(g, b.s, sizeof b.s);
    return b;
}

static int geo_same(const rd_geometry *a, const rd_geometry *b)
{
    return !strcmp(geo_text(a).s, geo_text(b).s);
}

/* RD_E_* of a ROI mask that cannot apply to a class's frame (class_roi). */
static rd_ecode roi_code(rd_status st)
{
    switch (st) {
    case RD_ERR_MISMATCH: return RD_E_GEOMETRY; /* another aspect ratio */
    case RD_ERR_ARG: return RD_E_BADGEO;        /* no working-grid pixel inspected */
    case RD_ERR_LIMIT: return RD_E_TOOLARGE;
    case RD_ERR_NOMEM: return RD_E_INTERNAL;
    case RD_ERR_IO: return RD_E_DB;
    default: return RD_E_BADIMAGE;
    }
}

/* The ROI mask of a class (row) on the working grid of geo: *roi malloc'ed
 * geo->work_w x work_h bytes (rd_geometry_roi_grid), NULL when the class has
 * no mask.  The stored bytes are decoded as at upload (alpha ignored, the
 * daemon's image limits). */
static rd_status class_roi(rd_engine *e, const rd_class_row *row, const rd_geometry *geo, uint8_t **roi,
                           rd_err *err)
{
    rd_decode_opts dopts = {.alpha = RD_ALPHA_IGNORE};
    rd_image img = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    char ct[64];
    rd_status st = RD_OK;
    *roi = NULL;
    if (row->roi_mask_w <= 0) return RD_OK;
    if (rd_store_class_roi_mask(e->store, row->name, &bytes, &len, ct, err) != RD_E_OK) {
        st = RD_ERR_IO;
        goto out;
    }
    if ((st = rd_image_decode_opts(bytes, len, &e->lim, &dopts, &img, err)) != RD_OK ||
        (st = rd_geometry_roi_grid(geo, &img, roi, NULL, err)) != RD_OK)
        goto out;
out:
    if (st != RD_OK) rd_err_prefix(err, "class '%s'", row->name);
    rd_image_release(&img);
    free(bytes);
    return st;
}

/* The geometry of a class: the stored one, or for a class made before
 * whole-frame inspection (references but no geometry; their version-1
 * features are square 224x224 crops) the one its first stored reference
 * gives at the whole frame, recorded now (build_class then re-extracts every
 * reference at it).  *have 0: no references and nothing stored.  With *have,
 * *roi is its ROI mask on the grid (class_roi; NULL = none; the caller frees). */
static rd_status class_geometry(rd_engine *e, const char *cls, rd_geometry *g, int *have, uint8_t **roi,
                                rd_err *err)
{
    rd_class_row row;
    rd_ref_row *refs = NULL;
    rd_geo_opts o;
    rd_image img = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    char ct[64];
    int n = 0, fw, fh;
    rd_status st = RD_ERR_IO;
    *have = 0;
    *roi = NULL;
    if (rd_store_class_get(e->store, cls, &row, err) != RD_E_OK) return RD_ERR_IO;
    if (row.references == 0) return RD_OK;
    if (row.geometry[0]) {
        if (rd_geometry_parse(row.geometry, g, err) != RD_OK) {
            rd_err_prefix(err, "class %s: stored geometry is unreadable", cls);
            return RD_ERR_FORMAT;
        }
        *have = 1;
        return class_roi(e, &row, g, roi, err);
    }
    if (rd_geoopts_parse(row.geo_opts, &o)) return rd_err_set(err, RD_ERR_FORMAT, "class %s: stored geometry options "
                                                              "are unreadable: %.200s", cls, row.geo_opts);
    rd_decode_opts dopts = {.alpha = o.alpha ? RD_ALPHA_IGNORE : RD_ALPHA_COMPOSITE};
    if (rd_store_ref_list(e->store, cls, &refs, &n, err) != RD_E_OK || n < 1) goto out;
    if (rd_store_ref_image(e->store, cls, refs[0].id, &bytes, &len, ct, err) != RD_E_OK) goto out;
    if ((st = rd_image_decode_opts(bytes, len, &e->lim, &dopts, &img, err)) != RD_OK) goto out;
    rd_image_full_size(&img, &fw, &fh);
    if ((st = rd_model_geometry(e->model, fw, fh, &o, g, err)) != RD_OK) goto out;
    if (rd_store_class_set_geometry(e->store, cls, geo_text(g).s, err) != RD_E_OK) {
        st = RD_ERR_IO;
        goto out;
    }
    rd_log(RD_LOG_INFO, "class %s: no geometry recorded (made before whole-frame inspection); fixed at %s from "
           "reference %lld", cls, geo_text(g).s, (long long)refs[0].id);
    *have = 1;
    st = class_roi(e, &row, g, roi, err);
out:
    rd_image_release(&img);
    free(bytes);
    free(refs);
    return st;
}

/* The key of a stored calibration: what it was computed from — the
 * calibration version, the model (backbone + options, learned model, scorer),
 * the geometry, the ROI mask on its grid (when the class has one) and the
 * stored feature blobs' content in id order (so a copied class keeps a valid
 * calibration, and re-encoded or recomputed features invalidate it). */
static void calib_key(rd_engine *e, const rd_geometry *geo, const uint8_t *roi, const rd_ref_feats *rows, int n,
                      char key[RD_SHA256_HEX])
{
    char text[64 * (RD_SHA256_HEX + 1) + 1024], h[RD_SHA256_HEX];
    int len = snprintf(text, sizeof text, "resadd-calib %d|%s|%s|%s|%s", RD_CALIB_VERSION, e->info->model_id,
                       e->info->model_sha256, e->info->scorer, geo_text(geo).s);
    if (roi && len > 0 && (size_t)len < sizeof text) {
        rd_sha256_hex(roi, (size_t)geo->work_w * (size_t)geo->work_h, h);
        /* roi2: since the level statistics are taken over the mask's cells only */
        len += snprintf(text + len, sizeof text - (size_t)len, "|roi2=%s", h);
    }
    for (int i = 0; i < n && len > 0 && (size_t)len < sizeof text; i++) {
        rd_sha256_hex(rows[i].feats, rows[i].feats_len, h);
        len += snprintf(text + len, sizeof text - (size_t)len, "|%s", h);
    }
    if (len < 0 || (size_t)len >= sizeof text) len = (int)strlen(text);
    rd_sha256_hex(text, (size_t)len, key);
}

/* Stores rs's calibration for the class's references as stored now (a
 * failure only costs the next cold load its leave-one-out search). */
static void calib_save(rd_engine *e, const char *cls, const rd_geometry *geo, const rd_refset *rs)
{
    rd_ref_feats *rows = NULL;
    int n = 0;
    rd_calib cal;
    uint8_t *blob = NULL;
    size_t len = 0;
    char key[RD_SHA256_HEX];
    rd_err err = {0};
    if (rd_store_ref_feats(e->store, cls, &rows, &n, &err) != RD_E_OK) goto out;
    if (n != rd_refset_shots(rs) || n > 64) goto out; /* not the set's references */
    calib_key(e, geo, rd_refset_roi(rs), rows, n, key);
    rd_refset_get_calib(rs, &cal);
    if (rd_calib_serialize(&cal, &blob, &len, &err) != RD_OK) goto out;
    rd_store_calib_put(e->store, cls, key, cal.threshold, blob, len, &err);
out:
    if (err.msg[0]) rd_log(RD_LOG_WARN, "class %s: storing its calibration: %s", cls, err.msg);
    rd_store_feats_free(rows, n);
    free(blob);
}

/* The stored calibration of rows' references (under the grid mask roi), if its key matches. */
static int calib_load(rd_engine *e, const char *cls, const rd_geometry *geo, const uint8_t *roi,
                      const rd_ref_feats *rows, int n, rd_calib *cal)
{
    char key[RD_SHA256_HEX], have[65];
    uint8_t *blob = NULL;
    size_t len = 0;
    double thr;
    rd_err err = {0};
    int ok = 0;
    if (n > 64) return 0;
    calib_key(e, geo, roi, rows, n, key);
    if (rd_store_calib_get(e->store, cls, have, &thr, &blob, &len, &err) == RD_E_OK && !strcmp(have, key))
        ok = rd_calib_deserialize(blob, len, cal, &err) == RD_OK && cal->k == n;
    free(blob);
    return ok;
}

/* Loads a class's features and builds its refset (with extra fresh features,
 * a registration's) under its grid mask roi (NULL = none): from the stored
 * calibration when it matches (pools only), else with the leave-one-out
 * search, stored for the next load.
 * Stale features (another model or geometry) are recomputed from the stored
 * image bytes and fp32 ones (from before sql/008) re-encoded as fp16.
 * w NULL: only the first way; anything needing a worker sets *need (and
 * builds nothing).  *out NULL when fewer than 2 references. */
static rd_status load_class(rd_engine *e, rd_worker *w, const char *cls, const rd_geometry *geo, const uint8_t *roi,
                            rd_feats **extra, int nextra, rd_refset **out, int *need, rd_err *err)
{
    rd_ref_feats *rows = NULL;
    rd_feats **f = NULL;
    int n = 0, stale = 0, reenc = 0;
    rd_status st = RD_OK;
    *out = NULL;
    if (need) *need = 0;
    if (rd_store_ref_feats(e->store, cls, &rows, &n, err) != RD_E_OK) return err->code ? err->code : RD_ERR_IO;
    f = calloc((size_t)(n + nextra + 1), sizeof *f);
    if (!f) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!strcmp(rows[i].model_id, e->info->model_id) &&
            rd_feats_deserialize(e->model, rows[i].feats, rows[i].feats_len, &f[i], NULL) == RD_OK &&
            geo_same(&f[i]->geo, geo)) {
            if (rd_feats_blob_f16(rows[i].feats, rows[i].feats_len) || !w) continue;
            /* fp32 from before: stored as fp16 from now on, calibrated on what is stored */
            uint8_t *blob = NULL;
            size_t blen = 0;
            rd_err e2 = {0};
            if (rd_feats_serialize_f16(f[i], &blob, &blen, &e2) == RD_OK && rd_feats_blob_f16(blob, blen) &&
                rd_store_ref_set_feats(e->store, rows[i].id, e->info->model_id, blob, blen, &e2) == RD_E_OK) {
                rd_feats_round_f16(f[i]);
                reenc++;
            }
            free(blob);
            continue;
        }
        rd_feats_free(f[i]);
        f[i] = NULL;
        if (!w) goto needw;
        if (!stale++)
            rd_log(RD_LOG_INFO, "class %s: reference features were computed by another model or at another geometry; "
                   "recomputing for %.16s at %s", cls, e->info->model_id, geo_text(geo).s);
        if ((st = recompute(e, w, cls, geo, rows[i].id, &f[i], err)) != RD_OK) {
            rd_err_prefix(err, "class %s: reference %lld", cls, (long long)rows[i].id);
            goto out;
        }
    }
    if (reenc) rd_log(RD_LOG_INFO, "class %s: %d reference feature blob(s) re-encoded as fp16", cls, reenc);
    for (int i = 0; i < nextra; i++) f[n + i] = extra[i];
    if (n + nextra >= 2) {
        rd_calib cal;
        int fp32 = 0;
        for (int i = 0; i < n; i++) fp32 += !rd_feats_blob_f16(rows[i].feats, rows[i].feats_len);
        if (!nextra && !stale && (!fp32 || !w) && calib_load(e, cls, geo, roi, rows, n, &cal)) {
            if (fp32 && !w) goto needw; /* re-encoded first, on a worker */
            if ((*out = rd_refset_restore(e->model, f, n, &cal, roi, NULL))) {
                pthread_mutex_lock(&e->cmu);
                e->loads_stored++;
                pthread_mutex_unlock(&e->cmu);
                goto out;
            }
        }
        if (!w) goto needw;
        *out = rd_refset_build_roi(e->model, w, f, n + nextra, roi, err);
        if (!*out) st = err->code ? err->code : RD_ERR_INTERNAL;
        else {
            pthread_mutex_lock(&e->cmu);
            e->loads_built++;
            pthread_mutex_unlock(&e->cmu);
            if (!nextra) calib_save(e, cls, geo, *out);
        }
    }
    goto out;
needw:
    if (need) *need = 1;
out:
    for (int i = 0; f && i < n; i++) rd_feats_free(f[i]);
    free(f);
    rd_store_feats_free(rows, n);
    return st;
}

static rd_status build_class(rd_engine *e, rd_worker *w, const char *cls, const rd_geometry *geo, const uint8_t *roi,
                             rd_feats **extra, int nextra, rd_refset **out, rd_err *err)
{
    return load_class(e, w, cls, geo, roi, extra, nextra, out, NULL, err);
}

/* ---- cold classes ---- */
static void run_load(rd_engine *e, rd_worker *w, job *j);

/* c's reference set (a reference for the caller), loaded first when c is
 * cold: here, when its calibration is stored (features + pools only, tens of
 * ms), else on a worker (recomputed features, leave-one-out calibration).
 * NULL: none (fewer than 2 references, or it cannot be built: logged). */
static rd_refset *class_acquire(rd_engine *e, eclass *c)
{
    rd_refset *r = class_refset(c);
    int need = 0, go;
    if (r) {
        class_touch(e, c);
        return r;
    }
    pthread_mutex_lock(&e->cmu);
    go = e->model_ready && !c->deleted && !c->broken;
    pthread_mutex_unlock(&e->cmu);
    if (!go) return NULL;
    pthread_mutex_lock(&c->reg_mu);
    if (!(r = class_refset(c))) {
        rd_err err = {0};
        rd_refset *nr = NULL;
        rd_geometry geo;
        uint8_t *roi = NULL;
        int have = 0;
        double t0 = now_ms();
        if (class_geometry(e, c->name, &geo, &have, &roi, &err) != RD_OK ||
            (have && load_class(e, NULL, c->name, &geo, roi, NULL, 0, &nr, &need, &err) != RD_OK)) {
            rd_log(RD_LOG_ERR, "class %s: cannot load its reference set: %s (class not ready)", c->name, err.msg);
            class_broken(e, c);
        } else if (nr) {
            r = rd_refset_ref(nr); /* held (in use) before it is published: never evicted under us */
            class_swap(e, c, nr);
            rd_log(RD_LOG_DEBUG, "class %s: loaded in %.1f ms (stored calibration)", c->name, now_ms() - t0);
        }
        free(roi);
    }
    pthread_mutex_unlock(&c->reg_mu);
    if (r || !need) return r;
    rd_err err = {0};
    job *j = job_new(e, run_load);
    if (!j) return NULL;
    j->cls = c;
    j->refs = 2;
    if (submit_r(e, j, SLOT_INTERNAL, &err) != RD_E_OK) {
        job_unref(j);
        job_unref(j);
        return NULL;
    }
    wait_job(j, 1 << 30);
    job_unref(j);
    return class_refset(c);
}

rd_ecode rd_engine_class_loo(rd_engine *e, const char *name, double loo[RD_CALIB_MAX_SHOTS], int *n, rd_err *err)
{
    eclass *c = class_find(e, name);
    *n = 0;
    if (!c) return rd_err_set(err, RD_ERR_ARG, "no class '%s'", name), RD_E_NOTFOUND;
    rd_refset *r = class_acquire(e, c);
    if (r) {
        rd_calib cal;
        rd_refset_get_calib(r, &cal);
        for (int i = 0; i < cal.k; i++) loo[(*n)++] = cal.loo[i];
    }
    rd_refset_unref(r);
    return RD_E_OK;
}

/* ---- start-up: re-running stored jobs ---- */
static void run_load(rd_engine *e, rd_worker *w, job *j)
{
    eclass *c = j->cls;
    rd_refset *rs = NULL;
    pthread_mutex_lock(&c->reg_mu);
    pthread_mutex_lock(&e->qmu);
    int stopping = e->stopping; /* a stop does not wait for every class to load */
    pthread_mutex_unlock(&e->qmu);
    pthread_mutex_lock(&e->cmu);
    int todo = !c->deleted && !stopping && !c->bytes;
    pthread_mutex_unlock(&e->cmu);
    if (todo) {
        rd_geometry geo;
        uint8_t *roi = NULL;
        int have = 0;
        if (class_geometry(e, c->name, &geo, &have, &roi, &j->err) != RD_OK ||
            (have && build_class(e, w, c->name, &geo, roi, NULL, 0, &rs, &j->err) != RD_OK)) {
            rd_log(RD_LOG_ERR, "class %s: cannot build its reference set: %s (class not ready)", c->name, j->err.msg);
            class_broken(e, c);
        } else if (rs) {
            class_swap(e, c, rs);
        }
        free(roi);
    }
    class_loaded(e, c);
    pthread_mutex_unlock(&c->reg_mu);
    j->code = RD_E_OK;
}

static void run_inspect(rd_engine *e, rd_worker *w, job *j);

/* decode, waiting while the pixel budget is taken (start-up recovery must
 * not fail a stored job for being busy). */
static rd_ecode decode_wait(rd_engine *e, rd_upload *u, const rd_geometry *geo, rd_image *img, rd_err *err)
{
    for (;;) {
        rd_ecode c = decode(e, u, geo, geo->alpha, img, err);
        pthread_mutex_lock(&e->qmu);
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->qmu);
        if (c != RD_E_BUSY || stopping) return c;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Queues an inspection row left queued by a crash (its bytes were stored). */
static void recover_one(rd_engine *e, rd_store_job *sj)
{
    rd_err err = {0};
    rd_ecode code;
    int manual = 0;
    double t = 0;
    eclass *c = class_find(e, sj->cls);
    rd_upload u = {sj->image, sj->len, NULL};
    job *j = job_new(e, run_inspect);
    if (!j) return;
    j->t_submit = now_ms();
    j->id = sj->id;
    j->cls = c;
    if (!c) {
        code = RD_E_NOTFOUND;
        rd_err_set(&err, RD_ERR_ARG, "class '%s' was deleted", sj->cls);
    } else if (!(j->rs = class_acquire(e, c))) {
        code = RD_E_NOTREADY;
        rd_err_set(&err, RD_ERR_STATE, "class '%s' is not ready", sj->cls);
    } else if ((code = rd_store_class_threshold(e->store, sj->cls, &manual, &t, &err)) == RD_E_OK &&
               (code = decode_wait(e, &u, rd_refset_geometry(j->rs), &j->img, &err)) == RD_E_OK) {
        if (manual) j->threshold = t;
        if (!strcmp(sj->thr_source, "request") || !strcmp(sj->thr_source, "sensitivity")) {
            /* what the request asked for, as it was queued */
            j->thr_source = sj->thr_source[0] == 'r' ? "request" : "sensitivity";
            j->threshold = sj->threshold;
            j->sensitivity = sj->sensitivity;
        }
        code = submit_r(e, j, SLOT_INTERNAL, &err);
        if (code == RD_E_OK) return; /* the queue owns j now */
        if (code == RD_E_SHUTDOWN) { /* left queued: run at the next start */
            job_unref(j);
            return;
        }
    }
    rd_log(RD_LOG_WARN, "inspection %lld (class %s) from before the restart failed: %s", (long long)sj->id, sj->cls,
           err.msg);
    rd_store_insp_fail(e->store, sj->id, code_name(e, code), err.msg, NULL);
    job_unref(j);
}

static void *loader_main(void *arg)
{
    rd_engine *e = arg;
    rd_err err = {0};
    double t0 = now_ms();
    int nclasses = 0;
    if (load_model(e, &err) != RD_OK) {
        rd_log(RD_LOG_ERR, "%s", err.msg);
        pthread_mutex_lock(&e->cmu);
        e->failed = 1;
        e->fail = err;
        for (eclass *c = e->classes; c; c = c->next) c->loading = 0;
        e->nloading = 0;
        pthread_mutex_unlock(&e->cmu);
        return NULL;
    }
    rd_log(RD_LOG_INFO, "model loaded in %.0f ms", now_ms() - t0);
    /* classes load on their first use (class_acquire): nothing is built here */
    pthread_mutex_lock(&e->cmu);
    for (eclass *c = e->classes; c; c = c->next) nclasses++;
    pthread_mutex_unlock(&e->cmu);
    rd_log(RD_LOG_INFO, "%d class(es) registered; each is loaded on its first use", nclasses);
    /* async inspections accepted before a crash */
    rd_store_job *sj = NULL;
    int n = 0;
    if (rd_store_jobs_pending(e->store, &sj, &n, &err) != RD_E_OK) {
        rd_log(RD_LOG_ERR, "cannot read queued inspections: %s", err.msg);
        return NULL;
    }
    if (n) rd_log(RD_LOG_INFO, "%d queued inspection(s) from the previous run: running them again", n);
    for (int i = 0; i < n; i++) recover_one(e, &sj[i]);
    rd_store_jobs_free(sj, n);
    return NULL;
}

/* ---- registration ---- */
static void run_register(rd_engine *e, rd_worker *w, job *j)
{
    rd_feats **feats = calloc((size_t)j->n, sizeof *feats);
    rd_store_ref_new *rows = calloc((size_t)j->n, sizeof *rows);
    uint8_t **blobs = calloc((size_t)j->n, sizeof *blobs);
    char (*sha)[RD_SHA256_HEX] = calloc((size_t)j->n, RD_SHA256_HEX);
    rd_refset *rs = NULL;
    uint8_t *roi = NULL;
    int locked = 0, nnew = 0, fixed = 0;
    eclass *c = j->cls;
    rd_class_row row;
    rd_geo_opts gopts;
    rd_geometry geo;
    char want[160], got[160];
    j->code = RD_E_INTERNAL;
    if (!feats || !rows || !blobs || !sha) {
        rd_err_set(&j->err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&c->reg_mu);
    locked = 1;
    if (c->deleted) {
        rd_err_set(&j->err, RD_ERR_ARG, "no class '%s'", c->name);
        j->code = RD_E_NOTFOUND;
        goto out;
    }
    /* the class's geometry: the stored one once it has references, else the
     * first new image fixes it (with the options the class was created with) */
    if ((j->code = rd_store_class_get(e->store, c->name, &row, &j->err)) != RD_E_OK) goto out;
    j->code = RD_E_INTERNAL;
    if (rd_geoopts_parse(row.geo_opts, &gopts)) {
        rd_err_set(&j->err, RD_ERR_FORMAT, "class '%s': stored geometry options are unreadable", c->name);
        goto out;
    }
    if (row.references > 0 && row.geometry[0]) {
        if (rd_geometry_parse(row.geometry, &geo, &j->err) != RD_OK) {
            rd_err_prefix(&j->err, "class '%s': stored geometry is unreadable", c->name);
            goto out;
        }
        fixed = 1;
    }
    for (int i = 0; i < j->n; i++) {
        int fw, fh;
        rd_image_full_size(&j->imgs[i], &fw, &fh);
        if (!fixed) {
            if (rd_model_geometry(e->model, fw, fh, &gopts, &geo, &j->err) != RD_OK) {
                rd_err_prefix(&j->err, "image %d (%dx%d) cannot fix the geometry of class '%s'", i + 1, fw, fh, c->name);
                j->code = j->err.code == RD_ERR_NOMEM ? RD_E_INTERNAL : RD_E_BADGEO;
                goto out;
            }
            fixed = 2;
        }
        if (!rd_geometry_same_aspect(&geo, fw, fh)) {
            rd_geometry_describe(&geo, want, sizeof want);
            snprintf(got, sizeof got, "%dx%d", fw, fh);
            rd_err_set(&j->err, RD_ERR_MISMATCH, "image %d is %s (aspect %.4g); class '%s' has geometry %s (aspect "
                       "%.4g): references must all have the class's aspect ratio", i + 1, got, (double)fw / fh,
                       c->name, want, (double)geo.frame_w / geo.frame_h);
            j->code = RD_E_GEOMETRY;
            goto out;
        }
    }
    /* its ROI mask on the grid: checked against the frame when the first
     * references fix it (another aspect ratio, nothing inspected: refused) */
    rd_status rst = class_roi(e, &row, &geo, &roi, &j->err);
    if (rst != RD_OK) {
        j->code = roi_code(rst);
        goto out;
    }
    for (int i = 0; i < j->n; i++) {
        int dup = 0;
        rd_sha256_hex(j->ups[i].data, j->ups[i].len, sha[i]);
        for (int k = 0; k < i; k++)
            if (!strcmp(sha[k], sha[i])) dup = 1;
        if (dup || rd_store_ref_exists(e->store, c->name, sha[i])) continue;
        if (rd_extract_geo(e->model, w, &geo, &j->imgs[i], &feats[i], NULL, &j->err) != RD_OK ||
            rd_feats_serialize_f16(feats[i], &blobs[i], &rows[i].feats_len, &j->err) != RD_OK ||
            (rd_feats_round_f16(feats[i]), 0)) { /* the set is built from what is stored */
            rd_err_prefix(&j->err, "image %d", i + 1);
            j->code = j->err.code == RD_ERR_MISMATCH ? RD_E_GEOMETRY : RD_E_BADIMAGE;
            goto out;
        }
        nnew++;
    }
    int have = rd_store_ref_count(e->store, c->name);
    if (have < 0) {
        rd_err_set(&j->err, RD_ERR_IO, "database error counting references");
        j->code = RD_E_DB;
        goto out;
    }
    if (have + nnew > e->o->max_references) {
        rd_err_set(&j->err, RD_ERR_LIMIT, "class '%s' would have %d references; at most %d are allowed", c->name,
                   have + nnew, e->o->max_references);
        j->code = RD_E_LIMIT;
        goto out;
    }
    if (nnew > 0) {
        rd_feats *fresh[64];
        int nf = 0;
        for (int i = 0; i < j->n; i++)
            if (feats[i]) fresh[nf++] = feats[i];
        if (build_class(e, w, c->name, &geo, roi, fresh, nf, &rs, &j->err) != RD_OK) {
            rd_err_prefix(&j->err, "building the reference set");
            j->code = j->err.code == RD_ERR_MISMATCH ? RD_E_GEOMETRY : RD_E_BADIMAGE;
            goto out;
        }
    }
    for (int i = 0; i < j->n; i++) {
        rows[i].image = j->ups[i].data;
        rows[i].len = j->ups[i].len;
        rows[i].content_type = rd_image_sniff(j->ups[i].data, j->ups[i].len) == RD_IMG_PNG ? "image/png" : "image/jpeg";
        rows[i].sha256 = sha[i];
        rd_image_full_size(&j->imgs[i], &rows[i].width, &rows[i].height);
        rows[i].feats = blobs[i] ? blobs[i] : (const uint8_t *)"";
    }
    rd_ecode rc = rd_store_refs_add(e->store, c->name, rows, j->n, e->info->model_id, &j->err);
    if (rc != RD_E_OK) {
        j->code = rc;
        goto out;
    }
    /* the first references fixed the geometry (a failure here is repaired at
     * the next start: class_geometry derives it from the first reference) */
    if (fixed == 2 && nnew > 0 && rd_store_class_set_geometry(e->store, c->name, geo_text(&geo).s, &j->err) != RD_E_OK)
        rd_log(RD_LOG_ERR, "class %s: recording its geometry: %s", c->name, j->err.msg);
    if (nnew > 0) {
        if (rs) calib_save(e, c->name, &geo, rs);
        class_swap(e, c, rs);
        rs = NULL;
    }
    class_loaded(e, c);
    int nadded = 0;
    for (int i = 0; i < j->n; i++) {
        rd_engine_added *a = &j->reg.items[i];
        a->id = rows[i].id_out;
        snprintf(a->sha256, sizeof a->sha256, "%s", sha[i]);
        a->duplicate = rows[i].duplicate_out || !feats[i];
        nadded += !a->duplicate;
    }
    j->reg.n = j->n;
    rd_refset *cur = class_refset(c);
    j->reg.references = rd_store_ref_count(e->store, c->name);
    j->reg.ready = cur != NULL;
    j->reg.threshold_auto = cur ? rd_refset_threshold(cur) : 0;
    rd_refset_unref(cur);
    rd_log(RD_LOG_INFO, "class %s: %d reference(s) added, %d duplicate(s)", c->name, nadded, j->n - nadded);
    j->code = RD_E_OK;
out:
    if (locked) pthread_mutex_unlock(&c->reg_mu);
    rd_refset_unref(rs);
    free(roi);
    for (int i = 0; feats && i < j->n; i++) rd_feats_free(feats[i]);
    for (int i = 0; blobs && i < j->n; i++) free(blobs[i]);
    free(feats);
    free(rows);
    free(blobs);
    free(sha);
}

rd_ecode rd_engine_register(rd_engine *e, const char *cls, const rd_upload *u, int n, rd_engine_reg *out,
                            rd_err *err)
{
    eclass *c = class_find(e, cls);
    rd_image *imgs = NULL;
    rd_ecode code;
    job *j = NULL;
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        return RD_E_NOTFOUND;
    }
    if (n < 1) {
        rd_err_set(err, RD_ERR_ARG, "no image in the request");
        return RD_E_BADREQ;
    }
    if (n > 64) {
        rd_err_set(err, RD_ERR_LIMIT, "%d images in one request; at most 64", n);
        return RD_E_LIMIT;
    }
    rd_class_row row;
    rd_geo_opts go = {0};
    if ((code = rd_store_class_get(e->store, cls, &row, err)) != RD_E_OK) return code;
    if (rd_geoopts_parse(row.geo_opts, &go)) memset(&go, 0, sizeof go); /* run_register reports it */
    imgs = calloc((size_t)n, sizeof *imgs);
    if (!imgs) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    /* References are decoded reduced as inspections are (decode()), for the
     * class's geometry or, for its first references, the one the first image
     * will fix (run_register computes it again from the full size, which a
     * reduced decode keeps).  Without a model yet, or an image of another
     * aspect (refused in run_register), they are decoded full size. */
    rd_geometry rgeo;
    int have_geo = row.references > 0 && row.geometry[0] && rd_geometry_parse(row.geometry, &rgeo, NULL) == RD_OK;
    const rd_model *model = rd_engine_info(e) ? e->model : NULL;
    for (int i = 0; i < n; i++) {
        rd_image_info in;
        if (!have_geo && model && rd_image_probe(u[i].data, u[i].len, &in, NULL) == RD_OK)
            have_geo = rd_model_geometry(model, in.w, in.h, &go, &rgeo, NULL) == RD_OK;
        if ((code = decode(e, &u[i], have_geo ? &rgeo : NULL, go.alpha, &imgs[i], err)) != RD_E_OK) {
            rd_err_prefix(err, "image %d", i + 1);
            goto out;
        }
    }
    j = job_new(e, run_register);
    if (!j) {
        code = RD_E_INTERNAL;
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto out;
    }
    j->cls = c;
    j->ups = u;
    j->imgs = imgs;
    j->n = n;
    j->refs = 2;
    if ((code = submit(e, j, err)) != RD_E_OK) {
        j->refs = 1;
        goto out;
    }
    /* the job borrows u and imgs: wait for it however long it takes */
    wait_job(j, 1 << 30);
    code = j->code;
    if (code == RD_E_OK) *out = j->reg;
    else *err = j->err;
    if (code == RD_E_OK) class_event(e, cls, "references");
out:
    if (j) job_unref(j);
    for (int i = 0; imgs && i < n; i++) unpixel(e, &imgs[i]);
    free(imgs);
    return code;
}

static void run_refdel(rd_engine *e, rd_worker *w, job *j)
{
    eclass *c = j->cls;
    rd_refset *rs = NULL;
    rd_geometry geo;
    uint8_t *roi = NULL;
    int have = 0;
    pthread_mutex_lock(&c->reg_mu);
    rd_ecode rc = rd_store_ref_delete(e->store, c->name, j->del_id, &j->err);
    if (rc != RD_E_OK) {
        j->code = rc;
    } else if (class_geometry(e, c->name, &geo, &have, &roi, &j->err) != RD_OK ||
               (have && build_class(e, w, c->name, &geo, roi, NULL, 0, &rs, &j->err) != RD_OK)) {
        /* the row is gone; the class falls back to not ready rather than a stale pool */
        rd_log(RD_LOG_ERR, "class %s: rebuilding after deletion: %s", c->name, j->err.msg);
        class_swap(e, c, NULL);
        class_broken(e, c);
        j->code = RD_E_OK;
    } else {
        class_swap(e, c, rs);
        j->code = RD_E_OK;
    }
    if (rc == RD_E_OK) class_loaded(e, c);
    j->n = rd_store_ref_count(e->store, c->name);
    pthread_mutex_unlock(&c->reg_mu);
    free(roi);
}

rd_ecode rd_engine_ref_delete(rd_engine *e, const char *cls, int64_t id, int *remaining, rd_err *err)
{
    eclass *c = class_find(e, cls);
    rd_ecode code;
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        return RD_E_NOTFOUND;
    }
    job *j = job_new(e, run_refdel);
    if (!j) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    j->cls = c;
    j->del_id = id;
    j->refs = 2;
    if ((code = submit(e, j, err)) != RD_E_OK) {
        job_unref(j);
        job_unref(j);
        return code;
    }
    wait_job(j, 1 << 30);
    code = j->code;
    if (code != RD_E_OK) *err = j->err;
    else *remaining = j->n;
    if (code == RD_E_OK) class_event(e, cls, "references");
    job_unref(j);
    return code;
}

rd_ecode rd_engine_ref_list(rd_engine *e, const char *cls, rd_ref_row **rows, int *n, rd_err *err)
{
    rd_class_row row;
    rd_ecode rc = rd_store_class_get(e->store, cls, &row, err);
    *rows = NULL;
    *n = 0;
    if (rc != RD_E_OK) return rc;
    return rd_store_ref_list(e->store, cls, rows, n, err);
}

rd_ecode rd_engine_ref_image(rd_engine *e, const char *cls, int64_t id, uint8_t **data, size_t *len, char ctype[64],
                             rd_err *err)
{
    return rd_store_ref_image(e->store, cls, id, data, len, ctype, err);
}

/* ---- inspection ---- */
#define RD_REGIONS_MAX 32
#define RD_REGIONS_JSON_MAX 4096 /* rd_insp_row.regions */
typedef struct verdict {
    double confidence, area;
    int total;
} verdict;

/* confidence, anomalous area and the regions (JSON array text, largest first,
 * at most RD_REGIONS_MAX, in the fw×fh displayed image's pixels) of a result:
 * core/regions.h over the inspected part of the map at the applied threshold. */
static int verdict_fields(const rd_result *res, int fw, int fh, verdict *vd, char *buf, size_t cap)
{
    rd_region r[RD_REGIONS_MAX];
    rd_rect in = {res->view.dst_x, res->view.dst_y, res->view.dst_w, res->view.dst_h};
    long hot, insp;
    int n = rd_regions_find(res->map, res->map_w, res->map_h, &in, res->threshold, r, RD_REGIONS_MAX, &hot, &insp);
    if (n < 0) return -1;
    rd_view v = res->view;
    v.img_w = fw, v.img_h = fh;
    int k = n < RD_REGIONS_MAX ? n : RD_REGIONS_MAX;
    rd_regions_to_image(&v, r, k);
    vd->confidence = rd_confidence(res->score, res->threshold);
    vd->area = insp ? (double)hot / (double)insp : 0;
    vd->total = n;
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < k; i++) /* 32 regions of at most ~110 bytes fit in cap */
        off += (size_t)snprintf(buf + off, cap - off,
                                "%s{\"bbox\":[%d,%d,%d,%d],\"area\":%ld,\"peak\":%.6g,\"peak_at\":[%d,%d]}",
                                i ? "," : "", r[i].x, r[i].y, r[i].w, r[i].h, r[i].area, (double)r[i].peak,
                                r[i].peak_x, r[i].peak_y);
    snprintf(buf + off, cap - off, "]");
    return 0;
}

static void run_inspect(rd_engine *e, rd_worker *w, job *j)
{
    rd_result res = {0};
    rd_png_buf png[3] = {{0}}; /* the compact map and the image copy (heatmaps.h) */
    double t_start = now_ms();
    int fw, fh;
    char timings[512];
    j->code = RD_E_INTERNAL;
    if (rd_inspect(e->model, w, j->rs, &j->img, (float)j->threshold, &res, &j->err) != RD_OK) {
        j->code = j->err.code == RD_ERR_MISMATCH ? RD_E_GEOMETRY : RD_E_BADIMAGE;
        goto fail;
    }
    double th0 = now_ms();
    /* lazy heatmaps: the map compactly (+ the image copy); PNGs render on GET */
    if (rd_heatmaps_encode(&res, &j->img, e->o->keep_images && !j->orig ? e->o->keep_image_quality : 0, &png[0],
                           &png[1], &j->err) != RD_OK)
        goto fail;
    if (j->orig) { /* the upload is the copy as it came (rd_heatmaps_keep_upload): no re-encode */
        png[1].data = j->orig;
        png[1].len = j->orig_len;
        j->orig = NULL;
    }
    res.t.heatmap = now_ms() - th0;
    double queue_ms = t_start - j->t_submit;
    res.t.total = now_ms() - j->t_submit;
    snprintf(timings, sizeof timings,
             "{\"queue\":%.5g,\"decode\":%.5g,\"preprocess\":%.5g,\"backbone\":%.5g,\"nn\":%.5g,\"score\":%.5g,\"heatmap\":%.5g,"
             "\"inference\":%.5g,\"total\":%.5g}",
             queue_ms, j->decode_ms, res.t.preprocess, res.t.backbone, res.t.nn, res.t.score, res.t.heatmap, now_ms() - t_start,
             res.t.total);
    geo_buf gtext = geo_text(&res.geo);
    rd_image_full_size(&j->img, &fw, &fh); /* displayed, after EXIF orientation */
    char regions[RD_REGIONS_JSON_MAX];
    verdict vd;
    if (verdict_fields(&res, fw, fh, &vd, regions, sizeof regions)) {
        rd_err_set(&j->err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    rd_store_insp_done d = {.score = res.score,
                            .threshold = res.threshold,
                            .anomalous = res.anomalous,
                            .shots = rd_refset_shots(j->rs),
                            .width = fw,
                            .height = fh,
                            .geometry = gtext.s,
                            .inspected_fraction = res.inspected_frac,
                            .left_out_fraction = res.view.left_out_frac,
                            .fitted = res.view.fitted,
                            .scorer = res.scorer,
                            .model_sha256 = e->info->model_sha256,
                            .timings_json = timings,
                            .total_ms = res.t.total,
                            .has_verdict = 1,
                            .confidence = vd.confidence,
                            .anomalous_area = vd.area,
                            .regions_json = regions,
                            .regions_total = vd.total,
                            .threshold_source = j->thr_source,
                            .sensitivity = j->sensitivity};
    d.png[3] = png[0].data;
    d.png_len[3] = png[0].len;
    d.png[4] = png[1].data;
    d.png_len[4] = png[1].len;
    rd_ecode rc = rd_store_insp_finish(e->store, j->id, &d, &j->err);
    if (rc == RD_E_OK) rc = rd_store_insp_get(e->store, j->id, &j->row, &j->err);
    if (rc != RD_E_OK) {
        j->code = rc;
        goto fail;
    }
    count(e, j->cls->name, res.anomalous ? "anomalous" : "ok");
    if (e->events) rd_events_publish(e->events, "inspection", j->cls->name, j->id, "done");
    {
        const double ms[RD_ISTATS_STAGES] = {queue_ms, res.t.preprocess, res.t.backbone, res.t.nn, res.t.score,
                                             res.t.heatmap, now_ms() - t_start, res.t.total};
        rd_istats_record(e->istats, j->cls->name, res.score, ms);
    }
    j->code = RD_E_OK;
    goto out;
fail:
    rd_log(RD_LOG_WARN, "inspection %lld (class %s) failed: %s", (long long)j->id, j->cls->name, j->err.msg);
    /* on a full disk this fails too: then it is written when the disk has
     * room again (rd_engine_writable), not left queued */
    if (rd_store_insp_fail(e->store, j->id, code_name(e, j->code), j->err.msg, NULL) != RD_E_OK) {
        pthread_mutex_lock(&e->mmu);
        if (e->nunrecorded < (int)(sizeof e->unrecorded / sizeof *e->unrecorded))
            e->unrecorded[e->nunrecorded++] = j->id;
        pthread_mutex_unlock(&e->mmu);
    }
    count(e, j->cls->name, "failed");
    if (e->events) rd_events_publish(e->events, "inspection", j->cls->name, j->id, "failed");
out:
    for (int k = 0; k < 3; k++) rd_png_buf_release(&png[k]);
    rd_result_release(&res);
    unpixel(e, &j->img); /* free the pixels as soon as possible */
}

rd_ecode rd_engine_inspect(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id, int async,
                           rd_insp_row *out, rd_err *err)
{
    return rd_engine_inspect_opts(e, cls, u, external_id, async, NULL, out, err);
}

/* The original of a repeated external id within the window: 1 (and *out), 0, or -1 (err). */
static int idem_find(rd_engine *e, const char *cls, const char *external_id, rd_insp_row *out, rd_err *err)
{
    char since[RD_ISOTIME_LEN];
    rd_isotime((int64_t)time(NULL) - e->o->idempotency_window_s, 0, since);
    rd_ecode rc = rd_store_insp_by_extid(e->store, cls, external_id, since, out, err);
    return rc == RD_E_OK ? 1 : rc == RD_E_NOTFOUND ? 0 : -1;
}

rd_ecode rd_engine_inspect_opts(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id,
                                int async, rd_engine_insp_opts *o, rd_insp_row *out, rd_err *err)
{
    int idem = external_id && e->o->idempotency_window_s > 0, idem_locked = 0;
    if (o) o->replayed = 0;
    eclass *c = class_find(e, cls);
    rd_ecode code;
    double t = 0;
    int manual = 0, loading;
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        return RD_E_NOTFOUND;
    }
    job *j = job_new(e, run_inspect);
    if (!j) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    j->t_submit = now_ms();
    j->cls = c;
    j->rs = class_acquire(e, c);
    pthread_mutex_lock(&e->cmu);
    loading = c->loading;
    pthread_mutex_unlock(&e->cmu);
    if (!j->rs && loading) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' is still loading after the start; retry shortly", cls);
        code = RD_E_BUSY;
        goto out;
    }
    if (!j->rs) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' is not ready: register at least 2 reference images first", cls);
        code = RD_E_NOTREADY;
        goto out;
    }
    if ((code = rd_store_class_threshold(e->store, cls, &manual, &t, err)) != RD_E_OK) goto out;
    if (manual) j->threshold = t;
    if (o && !isnan(o->threshold)) {
        j->threshold = o->threshold;
        j->thr_source = "request";
    } else if (o && !isnan(o->sensitivity)) {
        j->threshold = rd_sensitivity_threshold(manual ? t : rd_refset_threshold(j->rs), o->sensitivity);
        j->thr_source = "sensitivity";
        j->sensitivity = o->sensitivity;
    }
    const rd_geometry *geo = rd_refset_geometry(j->rs);
    double td = now_ms();
    if ((code = decode(e, u, geo, geo->alpha, &j->img, err)) != RD_E_OK) goto out;
    j->decode_ms = now_ms() - td;
    /* a JPEG decoded reduced or no bigger than a re-encode is the image copy as sent (heatmaps.h) */
    if (e->o->keep_images && rd_heatmaps_keep_upload(u->data, u->len, &j->img) && (j->orig = malloc(u->len))) {
        memcpy(j->orig, u->data, u->len);
        j->orig_len = u->len;
    }
    {
        /* an image the class's geometry cannot take is refused before anything is stored */
        rd_view v;
        int fw, fh;
        rd_image_full_size(&j->img, &fw, &fh);
        if (rd_view_for_image(geo, fw, fh, &v, err) != RD_OK) {
            code = err->code == RD_ERR_MISMATCH ? RD_E_GEOMETRY : RD_E_BADGEO;
            goto out;
        }
    }
    if (idem) { /* a repeat within the window replays the original; held until its row exists */
        pthread_mutex_lock(&e->idmu);
        idem_locked = 1;
        int f = idem_find(e, cls, external_id, out, err);
        if (f != 0) {
            code = f < 0 ? RD_E_DB : RD_E_OK;
            if (f > 0 && o) o->replayed = 1;
            goto out;
        }
    }
    /* reserve the queue slot before writing anything */
    if ((code = reserve(e, err)) != RD_E_OK) goto out;
    /* a request's own threshold goes with the row: a re-run after a restart applies it (recover_one) */
    rd_store_thr_req treq = {j->thr_source, j->threshold, j->sensitivity};
    if ((code = rd_store_insp_queue_req(e->store, cls, external_id, async ? u->data : NULL, u->len, u->content_type,
                                        strcmp(j->thr_source, "class") ? &treq : NULL, &j->id, err)) != RD_E_OK) {
        unreserve(e);
        goto out;
    }
    if (idem_locked) {
        pthread_mutex_unlock(&e->idmu);
        idem_locked = 0;
    }
    j->refs = 2;
    if ((code = submit_r(e, j, SLOT_RESERVED, err)) != RD_E_OK) {
        j->refs = 1;
        rd_store_insp_fail(e->store, j->id, code_name(e, code), err->msg, NULL);
        goto out;
    }
    if (async) {
        memset(out, 0, sizeof *out);
        out->present = 1u << RD_INSP_ID | 1u << RD_INSP_CLASS | 1u << RD_INSP_STATUS |
                       (external_id ? 1u << RD_INSP_EXTID : 0);
        out->id = j->id;
        snprintf(out->cls, sizeof out->cls, "%s", cls);
        snprintf(out->status, sizeof out->status, "queued");
        snprintf(out->external_id, sizeof out->external_id, "%s", external_id ? external_id : "");
        code = RD_E_OK;
        goto out;
    }
    if (wait_job(j, e->o->request_timeout_s) != 0) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld did not finish within %d s; it is still queued: GET "
                   "/v1/inspections/%lld", (long long)j->id, e->o->request_timeout_s, (long long)j->id);
        code = RD_E_TIMEOUT;
        goto out;
    }
    code = j->code;
    if (code == RD_E_OK) *out = j->row;
    else *err = j->err;
out:
    if (idem_locked) pthread_mutex_unlock(&e->idmu);
    job_unref(j);
    return code;
}

rd_ecode rd_engine_insp_get(rd_engine *e, int64_t id, rd_insp_row *out, rd_err *err)
{
    return rd_store_insp_get(e->store, id, out, err);
}

rd_ecode rd_engine_insp_list(rd_engine *e, const rd_insp_query *q, rd_insp_page *page, rd_err *err)
{
    return rd_store_insp_list(e->store, q, page, err);
}

rd_ecode rd_engine_insp_image(rd_engine *e, int64_t id, uint8_t **data, size_t *len, rd_err *err)
{
    rd_insp_row *row = malloc(sizeof *row);
    if (!row) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return RD_E_INTERNAL;
    }
    rd_ecode rc = rd_store_insp_get(e->store, id, row, err);
    free(row);
    if (rc != RD_E_OK) return rc;
    rc = rd_store_heatmap(e->store, id, "image", data, len, err);
    if (rc == RD_E_NOTFOUND) err->msg[0] = '\0'; /* the inspection exists; its image was not kept */
    return rc;
}

rd_ecode rd_engine_heatmap(rd_engine *e, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err)
{
    return rd_heatmaps_get(e->store, e->heat, id, kind, png, len, NULL, err);
}

rd_ecode rd_engine_stats(rd_engine *e, const char *cls, const char *since, rd_stats *out, rd_err *err)
{
    return rd_store_stats(e->store, cls, since, out, err);
}

rd_ecode rd_engine_token_scope(rd_engine *e, const char *hash, char scope[16])
{
    return rd_store_token_scope(e->store, hash, scope);
}

rd_ecode rd_engine_token_auth(rd_engine *e, const char *hash, char scope[16], int64_t *id)
{
    return rd_store_token_lookup(e->store, hash, scope, id);
}

rd_ecode rd_engine_token_create(rd_engine *e, const char *name, const char *scope, const char *expires_at,
                                char tok[68], rd_token_row *row, rd_err *err)
{
    char hash[65];
    rd_token_row *rows = NULL;
    int n = 0;
    int64_t id;
    if (rd_token_generate(tok, hash)) {
        rd_err_set(err, RD_ERR_INTERNAL, "cannot make a token: no randomness");
        return RD_E_INTERNAL;
    }
    rd_ecode rc = rd_store_token_add_exp(e->store, name, scope, hash, expires_at, &id, err);
    if (rc == RD_E_OK) rc = rd_store_token_list(e->store, &rows, &n, err);
    memset(row, 0, sizeof *row);
    for (int i = 0; rc == RD_E_OK && i < n; i++)
        if (rows[i].id == id) *row = rows[i];
    free(rows);
    return rc;
}

rd_ecode rd_engine_token_list(rd_engine *e, rd_token_row **rows, int *n, rd_err *err)
{
    return rd_store_token_list(e->store, rows, n, err);
}

rd_ecode rd_engine_token_revoke(rd_engine *e, int64_t id, rd_err *err)
{
    return rd_store_token_revoke(e->store, id, err);
}

/* ---- lifecycle ---- */
rd_engine *rd_engine_new(const rd_engine_opts *o, rd_store *store, rd_err *err)
{
    rd_engine *e = calloc(1, sizeof *e);
    rd_class_row *rows = NULL;
    int nrows = 0;
    if (!e) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->o = o;
    e->store = store;
    e->cap = o->queue_size;
    e->lim.max_pixels = o->max_pixels;
    e->lim.max_side = o->max_side;
    pthread_mutex_init(&e->qmu, NULL);
    pthread_cond_init(&e->qcv, NULL);
    pthread_cond_init(&e->pcv, NULL);
    pthread_mutex_init(&e->cmu, NULL);
    pthread_mutex_init(&e->mmu, NULL);
    pthread_mutex_init(&e->idmu, NULL);
    e->events = rd_events_new(RD_EVENTS_RETAINED);
    e->istats = rd_istats_new();
    if (e->events) {
        rd_webhook_opts wo = {.timeout_s = o->webhook_timeout_s > 0 ? o->webhook_timeout_s : 5,
                              .max_attempts = o->webhook_max_attempts > 0 ? o->webhook_max_attempts : 8,
                              .backoff_s = (o->webhook_backoff_ms > 0 ? o->webhook_backoff_ms : 1000) / 1000.0,
                              .allow_private = o->webhook_allow_private};
        rd_err werr = {0};
        if (!(e->hooks = rd_webhooks_start(store, e->events, &wo, render_event, e, &werr)))
            rd_log(RD_LOG_ERR, "webhooks disabled: %s", werr.msg);
    }
    e->heat = rd_heatcache_new(o->heat_cache_bytes);
    /* the files are found now (a clear error at once); loaded in the background */
    rd_model_opts_default(&e->mo);
    int default_backbone = !o->backbone || !o->backbone[0];
    if (!default_backbone) {
        snprintf(e->bpath, sizeof e->bpath, "%s", o->backbone);
    } else if (!rd_default_backbone(e->bpath, sizeof e->bpath)) {
        rd_err_set(err, RD_ERR_IO, "the default backbone %s is missing (install resadd with `make install`, or set "
                   "model = PATH)", e->bpath);
        goto fail;
    }
    e->mo.backbone_path = e->bpath;
    /* the learned model: configured, "none" (residual-norm), or the shipped one
     * (only beside the default backbone, which it was trained on) */
    if (rd_choose_model(o->learned_model && o->learned_model[0] ? o->learned_model : NULL, default_backbone, e->mpath,
                        sizeof e->mpath, &e->mo.model_path)) {
        rd_err_set(err, RD_ERR_IO, "the shipped learned model %s is missing (install resadd with `make install`, "
                   "or set learned_model = none to score with residual-norm)", e->mpath);
        goto fail;
    }
    if (e->mo.model_path && access(e->mo.model_path, R_OK) != 0) {
        rd_err_set(err, RD_ERR_IO, "learned model %s: %s", e->mo.model_path, strerror(errno));
        goto fail;
    }
    if (access(e->bpath, R_OK) != 0) {
        rd_err_set(err, RD_ERR_IO, "backbone %s: %s", e->bpath, strerror(errno));
        goto fail;
    }
    e->mo.max_shots = o->max_references;
    {
        /* workers share the cores (team.h): by default one worker per core,
         * each able to use every core while the others are idle */
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        e->ncores = nc > 0 ? (int)nc : 1;
        e->nworkers = o->workers > 0 ? o->workers : e->ncores;
        e->mo.threads = o->threads_per_worker > 0 ? o->threads_per_worker : e->ncores;
    }
    e->workers = calloc((size_t)e->nworkers, sizeof *e->workers);
    e->threads = calloc((size_t)e->nworkers, sizeof *e->threads);
    if (!e->workers || !e->threads) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* the classes exist at once, cold: each reference set is loaded on first use */
    if (rd_store_class_list(store, &rows, &nrows, err) != RD_E_OK) goto fail;
    for (int i = nrows - 1; i >= 0; i--)
        if (!class_add(e, rows[i].name, 0)) { /* cold: loaded on first use */
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto fail;
        }
    free(rows);
    rows = NULL;
    int failed = rd_store_insp_fail_orphans(store, "resadd stopped before this inspection ran");
    if (failed > 0) rd_log(RD_LOG_WARN, "%d queued inspection(s) from the previous run marked failed", failed);
    if (pthread_create(&e->loader, NULL, loader_main, e) != 0) {
        rd_err_set(err, RD_ERR_INTERNAL, "cannot start the loader thread");
        goto fail;
    }
    e->loader_started = 1;
    return e;
fail:
    free(rows);
    rd_engine_stop(e);
    rd_engine_free(e);
    return NULL;
}

void rd_engine_stop(rd_engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->qmu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->qcv);
    pthread_cond_broadcast(&e->pcv);
    pthread_mutex_unlock(&e->qmu);
    if (e->loader_started) pthread_join(e->loader, NULL);
    e->loader_started = 0;
    for (int i = 0; i < e->started; i++) pthread_join(e->threads[i], NULL);
    e->started = 0;
    /* no worker ever ran (the model failed to load): answer what is queued */
    pthread_mutex_lock(&e->qmu);
    job *j = e->head;
    e->head = e->tail = NULL;
    e->qlen = 0;
    pthread_mutex_unlock(&e->qmu);
    while (j) {
        job *next = j->next;
        pthread_mutex_lock(&j->mu);
        j->code = RD_E_SHUTDOWN;
        rd_err_set(&j->err, RD_ERR_STATE, "resadd is shutting down");
        j->done = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
        j = next;
    }
    rd_webhooks_stop(e->hooks); /* after the workers: their last events are queued */
    e->hooks = NULL;
    if (e->events) rd_events_close(e->events); /* event streams end */
}

rd_ecode rd_engine_webhook_add(rd_engine *e, const char *url, const char *events, const char *cls,
                               const char *secret, rd_webhook_row *out, rd_err *err)
{
    int64_t id;
    rd_ecode rc = rd_webhooks_url_check(url, e->o->webhook_allow_private, err);
    if (rc != RD_E_OK) return rc;
    if ((rc = rd_store_webhook_add(e->store, url, events, cls, secret, &id, err)) != RD_E_OK) return rc;
    rd_webhooks_kick(e->hooks);
    return rd_store_webhook_get(e->store, id, out, err);
}

rd_ecode rd_engine_webhook_list(rd_engine *e, rd_webhook_row **rows, int *n, rd_err *err)
{
    return rd_store_webhook_list(e->store, rows, n, err);
}

rd_ecode rd_engine_webhook_get(rd_engine *e, int64_t id, rd_webhook_row *out, rd_err *err)
{
    return rd_store_webhook_get(e->store, id, out, err);
}

rd_ecode rd_engine_webhook_delete(rd_engine *e, int64_t id, rd_err *err)
{
    return rd_store_webhook_delete(e->store, id, err);
}

struct rd_istats_snap *rd_engine_istats(rd_engine *e)
{
    struct rd_istats_snap *s = malloc(sizeof *s);
    if (s) rd_istats_snapshot(e->istats, s);
    return s;
}

void rd_engine_webhook_counts(rd_engine *e, unsigned long out[4])
{
    rd_webhook_counts c;
    rd_webhooks_counts(e->hooks, &c);
    out[0] = c.delivered, out[1] = c.failed_attempts, out[2] = c.gave_up, out[3] = c.enqueued;
}

rd_events *rd_engine_events(rd_engine *e) { return e->events; }

static void class_event(rd_engine *e, const char *name, const char *action)
{
    if (e->events) rd_events_publish(e->events, "class", name, 0, action);
}

void rd_engine_free(rd_engine *e)
{
    if (!e) return;
    for (eclass *c = e->classes, *n; c; c = n) {
        n = c->next;
        rd_refset_unref(c->rs);
        pthread_mutex_destroy(&c->rs_mu);
        pthread_mutex_destroy(&c->reg_mu);
        free(c);
    }
    for (int i = 0; e->workers && i < e->nworkers; i++) rd_worker_free(e->workers[i]);
    free(e->workers);
    rd_cores_free(e->cores);
    free(e->threads);
    rd_model_free(e->model);
    pthread_mutex_destroy(&e->qmu);
    pthread_cond_destroy(&e->qcv);
    pthread_cond_destroy(&e->pcv);
    pthread_mutex_destroy(&e->cmu);
    pthread_mutex_destroy(&e->mmu);
    pthread_mutex_destroy(&e->idmu);
    rd_webhooks_stop(e->hooks); /* when rd_engine_stop did not run */
    rd_events_free(e->events);
    rd_istats_free(e->istats);
    rd_heatcache_free(e->heat);
    free(e);
}

rd_store *rd_engine_store(rd_engine *e) { return e->store; }
