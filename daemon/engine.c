/* engine.c — worker pool, class reference sets, registration and inspection
 * jobs for resadd (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../api/metrics.h"
#include "defaults.h"
#include "heatmap.h"
#include "log.h"
#include "sha256.h"

/* ---- in-memory class state ---- */
typedef struct eclass {
    char name[72];
    pthread_mutex_t rs_mu;   /* guards rs (the pointer swap only) */
    rd_refset *rs;           /* NULL until the class has >= 2 references */
    pthread_mutex_t reg_mu;  /* serializes registrations/deletions of this class */
    int deleted;
    struct eclass *next;
} eclass;

/* ---- jobs ---- */
typedef struct job job;
struct job {
    void (*run)(rd_engine *e, rd_worker *w, job *j);
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int refs;          /* owners: the queue/worker and a waiting caller */
    /* results */
    rd_ecode code;
    rd_err err;
    json_t *out;
    /* inputs */
    eclass *cls;
    rd_image img;      /* inspection */
    rd_refset *rs;
    double threshold;  /* NaN = auto */
    int64_t id;
    int async;
    double t_submit;
    const rd_upload *ups; /* registration (caller waits, so borrowed) */
    rd_image *imgs;
    int n;
    int64_t del_id;    /* reference deletion */
    job *next;
};

struct rd_engine {
    const rd_config *cfg;
    rd_store *store;
    rd_model *model;
    const rd_model_info *info;
    rd_image_limits lim;
    int nworkers;
    rd_worker **workers;
    pthread_t *threads;
    int started;
    /* queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    job *head, *tail;
    int qlen, running, cap, stopping;
    int reserved; /* slots promised to requests that are writing their row */
    /* classes */
    pthread_mutex_t cmu;
    eclass *classes;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void job_unref(job *j)
{
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    rd_image_release(&j->img);
    rd_refset_unref(j->rs);
    json_decref(j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static job *job_new(void (*run)(rd_engine *, rd_worker *, job *))
{
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->run = run;
    j->refs = 1;
    j->threshold = NAN;
    return j;
}

static void *worker_main(void *arg);

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
        j->run(e, w, j);
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

/* Queues j (taking the queue's reference); BUSY when full.  reserved: the
 * caller holds a slot from reserve() (given back here whatever happens). */
static rd_ecode submit_r(rd_engine *e, job *j, int reserved, rd_err *err)
{
    pthread_mutex_lock(&e->qmu);
    if (e->stopping) {
        if (reserved) e->reserved--;
        pthread_mutex_unlock(&e->qmu);
        rd_err_set(err, RD_ERR_STATE, "resadd is shutting down");
        return RD_E_SHUTDOWN;
    }
    if (reserved) {
        e->reserved--;
    } else if (e->qlen + e->running + e->reserved >= e->cap + e->nworkers) {
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

static rd_ecode submit(rd_engine *e, job *j, rd_err *err) { return submit_r(e, j, 0, err); }

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
const rd_model_info *rd_engine_info(const rd_engine *e) { return e->info; }

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

static eclass *class_add(rd_engine *e, const char *name)
{
    eclass *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    pthread_mutex_init(&c->rs_mu, NULL);
    pthread_mutex_init(&c->reg_mu, NULL);
    pthread_mutex_lock(&e->cmu);
    c->next = e->classes;
    e->classes = c;
    pthread_mutex_unlock(&e->cmu);
    return c;
}

static rd_refset *class_refset(eclass *c)
{
    pthread_mutex_lock(&c->rs_mu);
    rd_refset *r = c->rs ? rd_refset_ref(c->rs) : NULL;
    pthread_mutex_unlock(&c->rs_mu);
    return r;
}

static void class_swap(eclass *c, rd_refset *r)
{
    pthread_mutex_lock(&c->rs_mu);
    rd_refset *old = c->rs;
    c->rs = r;
    pthread_mutex_unlock(&c->rs_mu);
    rd_refset_unref(old);
}

static json_t *class_decorate(rd_engine *e, json_t *row)
{
    eclass *c = class_find(e, json_string_value(json_object_get(row, "name")));
    rd_refset *r = c ? class_refset(c) : NULL;
    json_t *manual = json_object_get(row, "threshold_manual");
    if (json_is_number(manual)) {
        json_object_set(row, "threshold", manual);
        json_object_set_new(row, "threshold_source", json_string("manual"));
    } else {
        json_object_set_new(row, "threshold", r ? json_real(rd_refset_threshold(r)) : json_null());
        json_object_set_new(row, "threshold_source", json_string("auto"));
    }
    json_object_set_new(row, "threshold_auto", r ? json_real(rd_refset_threshold(r)) : json_null());
    json_object_del(row, "threshold_manual");
    json_object_set_new(row, "ready", json_boolean(r != NULL));
    rd_refset_unref(r);
    return row;
}

rd_ecode rd_engine_class_create(rd_engine *e, const char *name, const char *desc, json_t **out, rd_err *err)
{
    int rc = rd_store_class_create(e->store, name, desc, err);
    if (rc == RD_STORE_CONFLICT) return RD_E_CONFLICT;
    if (rc != RD_STORE_OK) return RD_E_INTERNAL;
    if (!class_find(e, name) && !class_add(e, name)) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return RD_E_INTERNAL;
    }
    return rd_engine_class_get(e, name, out, err);
}

rd_ecode rd_engine_class_get(rd_engine *e, const char *name, json_t **out, rd_err *err)
{
    json_t *row = rd_store_class_get(e->store, name, err);
    if (!row) return err->code == RD_ERR_ARG ? RD_E_NOTFOUND : RD_E_INTERNAL;
    *out = class_decorate(e, row);
    return RD_E_OK;
}

rd_ecode rd_engine_class_list(rd_engine *e, json_t **out, rd_err *err)
{
    json_t *a = rd_store_class_list(e->store, err);
    size_t i;
    json_t *v;
    if (!a) return RD_E_INTERNAL;
    json_array_foreach(a, i, v) class_decorate(e, v);
    *out = json_pack("{s:o}", "classes", a);
    return RD_E_OK;
}

rd_ecode rd_engine_class_delete(rd_engine *e, const char *name, rd_err *err)
{
    eclass *c = class_find(e, name);
    if (c) pthread_mutex_lock(&c->reg_mu);
    int rc = rd_store_class_delete(e->store, name, err);
    if (c) {
        if (rc == RD_STORE_OK) {
            pthread_mutex_lock(&e->cmu);
            c->deleted = 1;
            pthread_mutex_unlock(&e->cmu);
            class_swap(c, NULL);
        }
        pthread_mutex_unlock(&c->reg_mu);
    }
    if (rc == RD_STORE_NOTFOUND) return RD_E_NOTFOUND;
    return rc == RD_STORE_OK ? RD_E_OK : RD_E_INTERNAL;
}

/* ---- images ---- */
rd_ecode rd_engine_decode(rd_engine *e, const rd_upload *u, rd_image *img, rd_err *err)
{
    rd_image_format f = rd_image_sniff(u->data, u->len);
    if (f == RD_IMG_UNKNOWN) {
        rd_err_set(err, RD_ERR_FORMAT, "the body is not a JPEG or PNG image");
        return RD_E_BADIMAGE;
    }
    rd_status st = rd_image_decode(u->data, u->len, &e->lim, img, err);
    if (st == RD_ERR_LIMIT) return RD_E_TOOLARGE;
    if (st != RD_OK) return st == RD_ERR_NOMEM ? RD_E_INTERNAL : RD_E_BADIMAGE;
    return RD_E_OK;
}

/* ---- reference sets from stored features ---- */
typedef struct loadctx {
    rd_engine *e;
    rd_feats **f;
    int n, cap;
    int stale;             /* features stored for another model */
    int64_t *stale_ids;
    rd_err *err;
} loadctx;

static int load_one(void *ctx, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                    const uint8_t *image, size_t image_len)
{
    loadctx *c = ctx;
    (void)image;
    (void)image_len;
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 16;
        rd_feats **p = realloc(c->f, (size_t)nc * sizeof *p);
        int64_t *q = realloc(c->stale_ids, (size_t)nc * sizeof *q);
        if (p) c->f = p;
        if (q) c->stale_ids = q;
        if (!p || !q) return rd_err_set(c->err, RD_ERR_NOMEM, "out of memory"), -1;
        c->cap = nc;
    }
    c->f[c->n] = NULL;
    c->stale_ids[c->n] = 0;
    if (strcmp(model_id, c->e->info->model_id) != 0 ||
        rd_feats_deserialize(c->e->model, feats, len, &c->f[c->n], NULL) != RD_OK) {
        c->stale_ids[c->n] = id;
        c->stale++;
    }
    c->n++;
    return 0;
}

static void loadctx_release(loadctx *c)
{
    for (int i = 0; i < c->n; i++) rd_feats_free(c->f[i]);
    free(c->f);
    free(c->stale_ids);
}

typedef struct recompute_ctx {
    rd_engine *e;
    rd_worker *w;
    int64_t want;
    uint8_t *blob;
    size_t blob_len;
    rd_feats *f;
    rd_err *err;
    int found;
} recompute_ctx;

static int recompute_one(void *ctx, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                         const uint8_t *image, size_t image_len)
{
    recompute_ctx *c = ctx;
    rd_image img = {0};
    (void)model_id;
    (void)feats;
    (void)len;
    if (id != c->want) return 0;
    c->found = 1;
    if (rd_image_decode(image, image_len, &c->e->lim, &img, c->err) != RD_OK ||
        rd_extract(c->e->model, c->w, &img, &c->f, NULL, c->err) != RD_OK ||
        rd_feats_serialize(c->f, &c->blob, &c->blob_len, c->err) != RD_OK) {
        rd_image_release(&img);
        return -1;
    }
    rd_image_release(&img);
    return 0;
}

/* Loads a class's features (recomputing stale ones from the stored image
 * bytes) and builds its refset; *out NULL when fewer than 2 references. */
static rd_status build_class(rd_engine *e, rd_worker *w, const char *cls, rd_feats **extra, int nextra,
                             rd_refset **out, rd_err *err)
{
    loadctx c = {.e = e, .err = err};
    rd_status st = RD_OK;
    *out = NULL;
    if (rd_store_ref_each(e->store, cls, 0, load_one, &c, err) != RD_STORE_OK) {
        st = err->code ? err->code : RD_ERR_IO;
        goto out;
    }
    if (c.stale)
        rd_log(RD_LOG_INFO, "class %s: %d reference feature sets were computed by another model; recomputing for %s",
               cls, c.stale, e->info->model_id);
    for (int i = 0; i < c.n; i++) {
        if (!c.stale_ids[i]) continue;
        recompute_ctx rc = {.e = e, .w = w, .want = c.stale_ids[i], .err = err};
        if (rd_store_ref_each(e->store, cls, 1, recompute_one, &rc, err) != RD_STORE_OK || !rc.found) {
            rd_feats_free(rc.f);
            free(rc.blob);
            rd_err_prefix(err, "class %s: reference %lld", cls, (long long)c.stale_ids[i]);
            st = RD_ERR_IO;
            goto out;
        }
        if (rd_store_ref_set_feats(e->store, c.stale_ids[i], e->info->model_id, rc.blob, rc.blob_len, err) !=
            RD_STORE_OK) {
            rd_feats_free(rc.f);
            free(rc.blob);
            st = RD_ERR_IO;
            goto out;
        }
        free(rc.blob);
        c.f[i] = rc.f;
    }
    int k = c.n + nextra;
    if (k >= 2) {
        rd_feats **all = malloc((size_t)k * sizeof *all);
        if (!all) {
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < c.n; i++) all[i] = c.f[i];
        for (int i = 0; i < nextra; i++) all[c.n + i] = extra[i];
        *out = rd_refset_build(e->model, w, all, k, err);
        free(all);
        if (!*out) st = err->code ? err->code : RD_ERR_INTERNAL;
    }
out:
    loadctx_release(&c);
    return st;
}

/* ---- registration ---- */
static void run_register(rd_engine *e, rd_worker *w, job *j)
{
    rd_feats **feats = calloc((size_t)j->n, sizeof *feats);
    rd_store_ref_new *rows = calloc((size_t)j->n, sizeof *rows);
    uint8_t **blobs = calloc((size_t)j->n, sizeof *blobs);
    char (*sha)[RD_SHA256_HEX] = calloc((size_t)j->n, RD_SHA256_HEX);
    rd_refset *rs = NULL;
    int locked = 0, nnew = 0;
    eclass *c = j->cls;
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
    for (int i = 0; i < j->n; i++) {
        int dup = 0;
        rd_sha256_hex(j->ups[i].data, j->ups[i].len, sha[i]);
        for (int k = 0; k < i; k++)
            if (!strcmp(sha[k], sha[i])) dup = 1;
        if (dup || rd_store_ref_exists(e->store, c->name, sha[i])) continue;
        if (rd_extract(e->model, w, &j->imgs[i], &feats[i], NULL, &j->err) != RD_OK ||
            rd_feats_serialize(feats[i], &blobs[i], &rows[i].feats_len, &j->err) != RD_OK) {
            rd_err_prefix(&j->err, "image %d", i + 1);
            j->code = RD_E_BADIMAGE;
            goto out;
        }
        nnew++;
    }
    int have = rd_store_ref_count(e->store, c->name);
    if (have < 0) {
        rd_err_set(&j->err, RD_ERR_IO, "database error counting references");
        goto out;
    }
    if (have + nnew > e->cfg->max_references) {
        rd_err_set(&j->err, RD_ERR_LIMIT, "class '%s' would have %d references; at most %d are allowed", c->name,
                   have + nnew, e->cfg->max_references);
        j->code = RD_E_LIMIT;
        goto out;
    }
    if (nnew > 0) {
        rd_feats *fresh[64];
        int nf = 0;
        for (int i = 0; i < j->n; i++)
            if (feats[i]) fresh[nf++] = feats[i];
        if (build_class(e, w, c->name, fresh, nf, &rs, &j->err) != RD_OK) {
            rd_err_prefix(&j->err, "building the reference set");
            j->code = RD_E_BADIMAGE;
            goto out;
        }
    }
    for (int i = 0; i < j->n; i++) {
        rows[i].image = j->ups[i].data;
        rows[i].len = j->ups[i].len;
        rows[i].content_type = rd_image_sniff(j->ups[i].data, j->ups[i].len) == RD_IMG_PNG ? "image/png" : "image/jpeg";
        rows[i].sha256 = sha[i];
        rows[i].width = j->imgs[i].w;
        rows[i].height = j->imgs[i].h;
        rows[i].feats = blobs[i] ? blobs[i] : (const uint8_t *)"";
    }
    int rc = rd_store_refs_add(e->store, c->name, rows, j->n, e->info->model_id, &j->err);
    if (rc == RD_STORE_NOTFOUND) {
        j->code = RD_E_NOTFOUND;
        goto out;
    }
    if (rc != RD_STORE_OK) goto out;
    if (nnew > 0) {
        class_swap(c, rs);
        rs = NULL;
    }
    json_t *added = json_array(), *dups = json_array();
    for (int i = 0; i < j->n; i++) {
        json_t *o = json_pack("{s:I, s:s}", "id", (json_int_t)rows[i].id_out, "sha256", sha[i]);
        json_array_append_new(rows[i].duplicate_out || !feats[i] ? dups : added, o);
    }
    rd_refset *cur = class_refset(c);
    j->out = json_pack("{s:o, s:o, s:i, s:b, s:o}", "added", added, "duplicates", dups, "references",
                       rd_store_ref_count(e->store, c->name), "ready", cur != NULL, "threshold_auto",
                       cur ? json_real(rd_refset_threshold(cur)) : json_null());
    rd_refset_unref(cur);
    rd_log(RD_LOG_INFO, "class %s: %d reference(s) added, %d duplicate(s)", c->name, (int)json_array_size(added),
           (int)json_array_size(dups));
    j->code = RD_E_OK;
out:
    if (locked) pthread_mutex_unlock(&c->reg_mu);
    rd_refset_unref(rs);
    for (int i = 0; feats && i < j->n; i++) rd_feats_free(feats[i]);
    for (int i = 0; blobs && i < j->n; i++) free(blobs[i]);
    free(feats);
    free(rows);
    free(blobs);
    free(sha);
}

rd_ecode rd_engine_register(rd_engine *e, const char *cls, const rd_upload *u, int n, json_t **out, rd_err *err)
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
    imgs = calloc((size_t)n, sizeof *imgs);
    if (!imgs) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    for (int i = 0; i < n; i++) {
        if ((code = rd_engine_decode(e, &u[i], &imgs[i], err)) != RD_E_OK) {
            rd_err_prefix(err, "image %d", i + 1);
            goto out;
        }
    }
    j = job_new(run_register);
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
    if (code == RD_E_OK) {
        *out = j->out;
        j->out = NULL;
    } else {
        *err = j->err;
    }
out:
    if (j) job_unref(j);
    for (int i = 0; imgs && i < n; i++) rd_image_release(&imgs[i]);
    free(imgs);
    return code;
}

static void run_refdel(rd_engine *e, rd_worker *w, job *j)
{
    eclass *c = j->cls;
    rd_refset *rs = NULL;
    pthread_mutex_lock(&c->reg_mu);
    int rc = rd_store_ref_delete(e->store, c->name, j->del_id, &j->err);
    if (rc == RD_STORE_NOTFOUND) j->code = RD_E_NOTFOUND;
    else if (rc != RD_STORE_OK) j->code = RD_E_INTERNAL;
    else if (build_class(e, w, c->name, NULL, 0, &rs, &j->err) != RD_OK) {
        /* the row is gone; the class falls back to not ready rather than a stale pool */
        rd_log(RD_LOG_ERR, "class %s: rebuilding after deletion: %s", c->name, j->err.msg);
        class_swap(c, NULL);
        j->code = RD_E_OK;
    } else {
        class_swap(c, rs);
        j->code = RD_E_OK;
    }
    pthread_mutex_unlock(&c->reg_mu);
}

rd_ecode rd_engine_ref_delete(rd_engine *e, const char *cls, int64_t id, rd_err *err)
{
    eclass *c = class_find(e, cls);
    rd_ecode code;
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        return RD_E_NOTFOUND;
    }
    job *j = job_new(run_refdel);
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
    job_unref(j);
    return code;
}

/* ---- inspection ---- */
static const char *ecode_name(rd_ecode c)
{
    switch (c) {
    case RD_E_BADIMAGE: return "invalid_image";
    case RD_E_TOOLARGE: return "image_too_large";
    default: return "internal";
    }
}

static void run_inspect(rd_engine *e, rd_worker *w, job *j)
{
    rd_result res = {0};
    rd_png_buf png[3] = {{0}};
    static const rd_heat_kind kinds[3] = {RD_HEAT_OVERLAY, RD_HEAT_RAW, RD_HEAT_MASK};
    rd_heat_params hp;
    double t_start = now_ms();
    char *timings = NULL;
    j->code = RD_E_INTERNAL;
    if (rd_inspect(e->model, w, j->rs, &j->img, (float)j->threshold, &res, &j->err) != RD_OK) {
        j->code = RD_E_BADIMAGE;
        goto fail;
    }
    double th0 = now_ms();
    rd_result_heat_params(&res, &hp);
    for (int k = 0; k < 3; k++)
        if (rd_heatmap_render(kinds[k], res.map, &res.crop, &j->img, &hp, &png[k], &j->err) != RD_OK) goto fail;
    res.t.heatmap = now_ms() - th0;
    double queue_ms = t_start - j->t_submit;
    res.t.total = now_ms() - j->t_submit;
    json_t *t = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "queue", queue_ms, "preprocess", res.t.preprocess,
                          "backbone", res.t.backbone, "nn", res.t.nn, "score", res.t.score, "heatmap", res.t.heatmap,
                          "inference", now_ms() - t_start, "total", res.t.total);
    timings = json_dumps(t, JSON_COMPACT | JSON_REAL_PRECISION(5));
    json_decref(t);
    rd_store_insp_done d = {.score = res.score,
                            .threshold = res.threshold,
                            .anomalous = res.anomalous,
                            .shots = rd_refset_shots(j->rs),
                            .width = j->img.w,
                            .height = j->img.h,
                            .scorer = res.scorer,
                            .model_sha256 = e->info->model_sha256,
                            .timings_json = timings,
                            .total_ms = res.t.total};
    for (int k = 0; k < 3; k++) {
        d.png[k] = png[k].data;
        d.png_len[k] = png[k].len;
    }
    if (rd_store_insp_finish(e->store, j->id, &d, &j->err) != RD_STORE_OK) goto fail;
    j->out = rd_store_insp_get(e->store, j->id, &j->err);
    if (!j->out) goto fail;
    rd_metrics_inspection(j->cls->name, res.anomalous ? "anomalous" : "ok");
    j->code = RD_E_OK;
    goto out;
fail:
    rd_log(RD_LOG_WARN, "inspection %lld (class %s) failed: %s", (long long)j->id, j->cls->name, j->err.msg);
    rd_store_insp_fail(e->store, j->id, ecode_name(j->code), j->err.msg, NULL);
    rd_metrics_inspection(j->cls->name, "failed");
out:
    free(timings);
    for (int k = 0; k < 3; k++) rd_png_buf_release(&png[k]);
    rd_result_release(&res);
    rd_image_release(&j->img); /* free the pixels as soon as possible */
}

rd_ecode rd_engine_inspect(rd_engine *e, const char *cls, const rd_upload *u, const char *external_id, int async,
                           json_t **out, rd_err *err)
{
    eclass *c = class_find(e, cls);
    rd_ecode code;
    double t;
    int manual;
    if (!c) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        return RD_E_NOTFOUND;
    }
    job *j = job_new(run_inspect);
    if (!j) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), RD_E_INTERNAL;
    j->t_submit = now_ms();
    j->cls = c;
    j->async = async;
    j->rs = class_refset(c);
    if (!j->rs) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' is not ready: register at least 2 reference images first", cls);
        code = RD_E_NOTREADY;
        goto out;
    }
    manual = rd_store_class_threshold(e->store, cls, &t);
    if (manual < 0) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        code = RD_E_NOTFOUND;
        goto out;
    }
    if (manual == 1) j->threshold = t;
    if ((code = rd_engine_decode(e, u, &j->img, err)) != RD_E_OK) goto out;
    /* reserve the queue slot before writing anything */
    if ((code = reserve(e, err)) != RD_E_OK) goto out;
    if (rd_store_insp_queue(e->store, cls, external_id, &j->id, err) != RD_STORE_OK) {
        unreserve(e);
        code = RD_E_INTERNAL;
        goto out;
    }
    j->refs = 2;
    if ((code = submit_r(e, j, 1, err)) != RD_E_OK) {
        j->refs = 1;
        rd_store_insp_fail(e->store, j->id, code == RD_E_BUSY ? "busy" : "aborted", err->msg, NULL);
        goto out;
    }
    if (async) {
        *out = json_pack("{s:I, s:s, s:s, s:s*}", "id", (json_int_t)j->id, "class", cls, "status", "queued",
                         "external_id", external_id);
        code = RD_E_OK;
        goto out;
    }
    if (wait_job(j, e->cfg->request_timeout_s) != 0) {
        rd_err_set(err, RD_ERR_STATE, "inspection %lld did not finish within %d s; it is still queued: GET "
                   "/v1/inspections/%lld", (long long)j->id, e->cfg->request_timeout_s, (long long)j->id);
        code = RD_E_TIMEOUT;
        goto out;
    }
    code = j->code;
    if (code == RD_E_OK) {
        *out = j->out;
        j->out = NULL;
    } else {
        *err = j->err;
    }
out:
    job_unref(j);
    return code;
}

/* ---- lifecycle ---- */
rd_engine *rd_engine_new(const rd_config *cfg, rd_store *store, rd_err *err)
{
    rd_model_opts mo;
    char path[4096], mpath[4096];
    rd_engine *e = calloc(1, sizeof *e);
    json_t *names = NULL;
    if (!e) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    e->store = store;
    e->cap = cfg->queue_size;
    e->lim.max_pixels = cfg->max_pixels;
    e->lim.max_side = cfg->max_side;
    pthread_mutex_init(&e->qmu, NULL);
    pthread_cond_init(&e->qcv, NULL);
    pthread_mutex_init(&e->cmu, NULL);
    rd_model_opts_default(&mo);
    if (cfg->backbone[0]) {
        mo.backbone_path = cfg->backbone;
    } else if (rd_default_backbone(path, sizeof path)) {
        mo.backbone_path = path;
    } else {
        rd_err_set(err, RD_ERR_IO, "the default backbone %s is missing (install resadd with `make install`, or set "
                   "model = PATH)", path);
        goto fail;
    }
    /* the learned model: configured, "none" (residual-norm), or the shipped one
     * (only beside the default backbone, which it was trained on) */
    if (rd_choose_model(cfg->learned_model[0] ? cfg->learned_model : NULL, !cfg->backbone[0], mpath, sizeof mpath,
                        &mo.model_path)) {
        rd_err_set(err, RD_ERR_IO, "the shipped learned model %s is missing (install resadd with `make install`, "
                   "or set learned_model = none to score with residual-norm)", mpath);
        goto fail;
    }
    mo.max_shots = cfg->max_references;
    e->nworkers = cfg->workers;
    mo.threads = cfg->threads_per_worker;
    if (mo.threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        mo.threads = nc > e->nworkers ? (int)(nc / e->nworkers) : 1;
    }
    e->model = rd_model_load(&mo, err);
    if (!e->model) {
        rd_err_prefix(err, "backbone %s%s%s", mo.backbone_path, mo.model_path ? " with learned model " : "",
                      mo.model_path ? mo.model_path : "");
        goto fail;
    }
    e->info = rd_model_get_info(e->model);
    rd_log(RD_LOG_INFO, "model %s: arch %s, scorer %s, size %d, %d levels, model id %.16s…", mo.backbone_path,
           e->info->arch, e->info->scorer, e->info->size, e->info->nlevels, e->info->model_id);
    rd_log(RD_LOG_INFO, "%d worker(s) × %d thread(s), queue %d", e->nworkers, mo.threads, e->cap);
    e->workers = calloc((size_t)e->nworkers, sizeof *e->workers);
    e->threads = calloc((size_t)e->nworkers, sizeof *e->threads);
    if (!e->workers || !e->threads) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < e->nworkers; i++)
        if (!(e->workers[i] = rd_worker_new(e->model, err))) goto fail;
    /* classes and their reference sets (on worker 0, before the threads start) */
    names = rd_store_class_names(store, err);
    if (!names) goto fail;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        const char *name = json_string_value(v);
        eclass *c = class_add(e, name);
        rd_refset *rs = NULL;
        if (!c) {
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (build_class(e, e->workers[0], name, NULL, 0, &rs, err) != RD_OK) {
            rd_log(RD_LOG_ERR, "class %s: cannot build its reference set: %s (class not ready)", name, err->msg);
            rd_err_clear(err);
        }
        c->rs = rs;
    }
    json_decref(names);
    names = NULL;
    int failed = rd_store_insp_fail_queued(store, "resadd stopped before this inspection ran");
    if (failed > 0) rd_log(RD_LOG_WARN, "%d queued inspection(s) from the previous run marked failed", failed);
    for (int k = 0; k < e->nworkers; k++) {
        warg *a = malloc(sizeof *a);
        if (!a) {
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto fail;
        }
        a->e = e;
        a->i = k;
        if (pthread_create(&e->threads[k], NULL, worker_main, a) != 0) {
            free(a);
            rd_err_set(err, RD_ERR_INTERNAL, "cannot start worker thread");
            goto fail;
        }
        e->started = k + 1;
    }
    return e;
fail:
    json_decref(names);
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
    pthread_mutex_unlock(&e->qmu);
    for (int i = 0; i < e->started; i++) pthread_join(e->threads[i], NULL);
    e->started = 0;
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
    free(e->threads);
    rd_model_free(e->model);
    pthread_mutex_destroy(&e->qmu);
    pthread_cond_destroy(&e->qcv);
    pthread_mutex_destroy(&e->cmu);
    free(e);
}
