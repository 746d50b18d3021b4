/* store.c — SQLite store for resadd (see store.h): migrations, classes,
 * references, inspections, heatmaps, tokens.  Every SQL statement lives here.
 * Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and cached by the
 * address of their string literal. */
#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrations.inc" /* generated from sql/NNN_*.sql: rd_migrations[] */

#define STMT_CACHE 64

struct rd_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    int ncache;
};

void rd_store_now(char buf[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

static int db_fail(rd_store *s, rd_err *err, const char *what)
{
    rd_err_set(err, RD_ERR_IO, "database: %s: %s", what, sqlite3_errmsg(s->db));
    return RD_STORE_ERR;
}

/* The cached prepared statement for sql (a string literal), reset and unbound. */
static sqlite3_stmt *stmt(rd_store *s, const char *sql)
{
    for (int i = 0; i < s->ncache; i++)
        if (s->cache[i].sql == sql) {
            sqlite3_reset(s->cache[i].st);
            sqlite3_clear_bindings(s->cache[i].st);
            return s->cache[i].st;
        }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) return NULL;
    if (s->ncache < STMT_CACHE) {
        s->cache[s->ncache].sql = sql;
        s->cache[s->ncache].st = st;
        s->ncache++;
    }
    return st;
}
/* Statements beyond the cache are never expected; keep the cache large enough. */

static int exec(rd_store *s, const char *sql) { return sqlite3_exec(s->db, sql, NULL, NULL, NULL); }

#define LOCK(s) pthread_mutex_lock(&(s)->mu)
/* Every statement is reset before the lock is released: an active statement
 * would pin an old WAL snapshot (other processes' writes, such as `resadd
 * token revoke`, would stay invisible) and block checkpoints. */
static void unlock(rd_store *s)
{
    for (int i = 0; i < s->ncache; i++)
        if (sqlite3_stmt_busy(s->cache[i].st)) sqlite3_reset(s->cache[i].st);
    pthread_mutex_unlock(&s->mu);
}
#define UNLOCK(s) unlock(s)

static int user_version(rd_store *s)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(rd_store *s, rd_err *err)
{
    int n = 0, v = user_version(s);
    while (rd_migrations[n]) n++;
    if (v < 0) return db_fail(s, err, "reading user_version");
    if (v > n) {
        rd_err_set(err, RD_ERR_MISMATCH, "database schema version %d is newer than this resadd (%d)", v, n);
        return RD_STORE_ERR;
    }
    for (int i = v; i < n; i++) {
        char pragma[64];
        if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) return db_fail(s, err, "begin migration");
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i + 1);
        if (exec(s, rd_migrations[i]) != SQLITE_OK || exec(s, pragma) != SQLITE_OK) {
            rd_err_set(err, RD_ERR_IO, "database: migration %03d: %s", i + 1, sqlite3_errmsg(s->db));
            exec(s, "ROLLBACK");
            return RD_STORE_ERR;
        }
        if (exec(s, "COMMIT") != SQLITE_OK) return db_fail(s, err, "commit migration");
    }
    return RD_STORE_OK;
}

rd_store *rd_store_open(const char *path, rd_err *err)
{
    rd_store *s = calloc(1, sizeof *s);
    if (!s) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rd_err_set(err, RD_ERR_IO, "cannot open database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (exec(s, "PRAGMA journal_mode = WAL") != SQLITE_OK || exec(s, "PRAGMA synchronous = FULL") != SQLITE_OK ||
        exec(s, "PRAGMA foreign_keys = ON") != SQLITE_OK) {
        db_fail(s, err, path);
        goto fail;
    }
    if (migrate(s, err) != RD_STORE_OK) goto fail;
    return s;
fail:
    rd_store_close(s);
    return NULL;
}

void rd_store_close(rd_store *s)
{
    if (!s) return;
    for (int i = 0; i < s->ncache; i++) sqlite3_finalize(s->cache[i].st);
    if (s->db) sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int rd_store_schema_version(rd_store *s)
{
    LOCK(s);
    int v = user_version(s);
    UNLOCK(s);
    return v;
}

int rd_store_writable(rd_store *s)
{
    LOCK(s);
    int ok = exec(s, "BEGIN IMMEDIATE") == SQLITE_OK;
    if (ok) exec(s, "ROLLBACK");
    UNLOCK(s);
    return ok;
}

/* ---- helpers ---- */
static json_t *col_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: return json_string((const char *)sqlite3_column_text(st, i));
    default: return json_null();
    }
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

/* ---- classes ---- */
static const char SQL_CLASS_INS[] =
    "INSERT INTO classes(name, description, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)";
static const char SQL_CLASS_GET[] =
    "SELECT c.name, c.description, (SELECT count(*) FROM refs r WHERE r.class_id = c.id), c.threshold, "
    "c.created_at, c.updated_at FROM classes c WHERE c.name = ?1";
static const char SQL_CLASS_LIST[] =
    "SELECT c.name, c.description, (SELECT count(*) FROM refs r WHERE r.class_id = c.id), c.threshold, "
    "c.created_at, c.updated_at FROM classes c ORDER BY c.name";
static const char SQL_CLASS_DESC[] = "UPDATE classes SET description = ?2, updated_at = ?3 WHERE name = ?1";
static const char SQL_CLASS_THR[] = "UPDATE classes SET threshold = ?2, updated_at = ?3 WHERE name = ?1";
static const char SQL_CLASS_TOUCH[] = "UPDATE classes SET updated_at = ?2 WHERE name = ?1";
static const char SQL_CLASS_DEL[] = "DELETE FROM classes WHERE name = ?1";
static const char SQL_CLASS_ID[] = "SELECT id, threshold FROM classes WHERE name = ?1";
static const char SQL_CLASS_NAMES[] = "SELECT name FROM classes ORDER BY name";

int rd_store_class_create(rd_store *s, const char *name, const char *desc, rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_INS);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, name);
    bind_text(st, 2, desc ? desc : "");
    bind_text(st, 3, now);
    int r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' already exists", name);
        rc = RD_STORE_CONFLICT;
    } else if (r != SQLITE_DONE) {
        rc = db_fail(s, err, "create class");
    }
out:
    UNLOCK(s);
    return rc;
}

static json_t *class_row(sqlite3_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", col_json(st, 0));
    json_object_set_new(o, "description", col_json(st, 1));
    json_object_set_new(o, "references", col_json(st, 2));
    json_object_set_new(o, "threshold_manual", col_json(st, 3));
    json_object_set_new(o, "created_at", col_json(st, 4));
    json_object_set_new(o, "updated_at", col_json(st, 5));
    return o;
}

json_t *rd_store_class_get(rd_store *s, const char *name, rd_err *err)
{
    json_t *o = NULL;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_GET);
    if (!st) {
        db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, name);
    if (sqlite3_step(st) == SQLITE_ROW) o = class_row(st);
    else rd_err_set(err, RD_ERR_ARG, "no class '%s'", name);
out:
    UNLOCK(s);
    return o;
}

json_t *rd_store_class_list(rd_store *s, rd_err *err)
{
    json_t *a = json_array();
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_LIST);
    if (!st) {
        db_fail(s, err, "prepare");
        json_decref(a);
        a = NULL;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(a, class_row(st));
out:
    UNLOCK(s);
    return a;
}

json_t *rd_store_class_names(rd_store *s, rd_err *err)
{
    json_t *a = json_array();
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_NAMES);
    if (!st) {
        db_fail(s, err, "prepare");
        json_decref(a);
        a = NULL;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(a, col_json(st, 0));
out:
    UNLOCK(s);
    return a;
}

int rd_store_class_threshold(rd_store *s, const char *cls, double *t)
{
    int rc = -1;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_ID);
    if (st) {
        bind_text(st, 1, cls);
        if (sqlite3_step(st) == SQLITE_ROW) {
            rc = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : 1;
            if (rc == 1) *t = sqlite3_column_double(st, 1);
        }
    }
    UNLOCK(s);
    return rc;
}

int rd_store_class_update(rd_store *s, const char *name, const char *desc, int set_threshold, double threshold,
                          rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) {
        rc = db_fail(s, err, "begin");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, SQL_CLASS_TOUCH);
    if (!st) goto dbfail;
    bind_text(st, 1, name);
    bind_text(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
    if (sqlite3_changes(s->db) == 0) {
        exec(s, "ROLLBACK");
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", name);
        rc = RD_STORE_NOTFOUND;
        goto out;
    }
    if (desc) {
        if (!(st = stmt(s, SQL_CLASS_DESC))) goto dbfail;
        bind_text(st, 1, name);
        bind_text(st, 2, desc);
        bind_text(st, 3, now);
        if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
    }
    if (set_threshold) {
        if (!(st = stmt(s, SQL_CLASS_THR))) goto dbfail;
        bind_text(st, 1, name);
        if (set_threshold == 1) sqlite3_bind_double(st, 2, threshold);
        else sqlite3_bind_null(st, 2);
        bind_text(st, 3, now);
        if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
    }
    if (exec(s, "COMMIT") != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail(s, err, "update class");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

int rd_store_class_delete(rd_store *s, const char *name, rd_err *err)
{
    int rc = RD_STORE_OK;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_DEL);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, name);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "delete class");
    else if (sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", name);
        rc = RD_STORE_NOTFOUND;
    }
out:
    UNLOCK(s);
    return rc;
}

/* ---- references ---- */
static const char SQL_REF_INS[] =
    "INSERT INTO refs(class_id, sha256, content_type, size, width, height, image, model_id, feats, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char SQL_REF_FIND[] =
    "SELECT r.id FROM refs r JOIN classes c ON c.id = r.class_id WHERE c.name = ?1 AND r.sha256 = ?2";
static const char SQL_REF_LIST[] =
    "SELECT r.id, r.sha256, r.content_type, r.size, r.width, r.height, r.created_at FROM refs r "
    "JOIN classes c ON c.id = r.class_id WHERE c.name = ?1 ORDER BY r.id";
static const char SQL_REF_IMG[] =
    "SELECT r.image, r.content_type FROM refs r JOIN classes c ON c.id = r.class_id WHERE c.name = ?1 AND r.id = ?2";
static const char SQL_REF_DEL[] =
    "DELETE FROM refs WHERE id = ?2 AND class_id = (SELECT id FROM classes WHERE name = ?1)";
static const char SQL_REF_COUNT[] =
    "SELECT count(*) FROM refs r JOIN classes c ON c.id = r.class_id WHERE c.name = ?1";
static const char SQL_REF_EACH[] =
    "SELECT r.id, r.model_id, r.feats, r.image FROM refs r JOIN classes c ON c.id = r.class_id "
    "WHERE c.name = ?1 ORDER BY r.id";
static const char SQL_REF_EACH_NOIMG[] =
    "SELECT r.id, r.model_id, r.feats, NULL FROM refs r JOIN classes c ON c.id = r.class_id "
    "WHERE c.name = ?1 ORDER BY r.id";
static const char SQL_REF_FEATS[] = "UPDATE refs SET model_id = ?2, feats = ?3 WHERE id = ?1";

int rd_store_refs_add(rd_store *s, const char *cls, rd_store_ref_new *refs, int n, const char *model_id,
                      rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    int64_t class_id;
    rd_store_now(now);
    LOCK(s);
    if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) {
        rc = db_fail(s, err, "begin");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, SQL_CLASS_ID);
    if (!st) goto dbfail;
    bind_text(st, 1, cls);
    if (sqlite3_step(st) != SQLITE_ROW) {
        exec(s, "ROLLBACK");
        rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
        rc = RD_STORE_NOTFOUND;
        goto out;
    }
    class_id = sqlite3_column_int64(st, 0);
    for (int i = 0; i < n; i++) {
        rd_store_ref_new *r = &refs[i];
        if (!(st = stmt(s, SQL_REF_FIND))) goto dbfail;
        bind_text(st, 1, cls);
        bind_text(st, 2, r->sha256);
        if (sqlite3_step(st) == SQLITE_ROW) {
            r->id_out = sqlite3_column_int64(st, 0);
            r->duplicate_out = 1;
            continue;
        }
        if (!(st = stmt(s, SQL_REF_INS))) goto dbfail;
        sqlite3_bind_int64(st, 1, class_id);
        bind_text(st, 2, r->sha256);
        bind_text(st, 3, r->content_type);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->len);
        sqlite3_bind_int(st, 5, r->width);
        sqlite3_bind_int(st, 6, r->height);
        sqlite3_bind_blob64(st, 7, r->image, r->len, SQLITE_STATIC);
        bind_text(st, 8, model_id);
        sqlite3_bind_blob64(st, 9, r->feats, r->feats_len, SQLITE_STATIC);
        bind_text(st, 10, now);
        if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
        r->id_out = sqlite3_last_insert_rowid(s->db);
        r->duplicate_out = 0;
    }
    if (!(st = stmt(s, SQL_CLASS_TOUCH))) goto dbfail;
    bind_text(st, 1, cls);
    bind_text(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
    if (exec(s, "COMMIT") != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail(s, err, "add references");
    exec(s, "ROLLBACK");
out:
    /* drop the STATIC blob bindings before the caller frees them */
    if ((st = stmt(s, SQL_REF_INS))) sqlite3_clear_bindings(st);
    UNLOCK(s);
    return rc;
}

int rd_store_ref_exists(rd_store *s, const char *cls, const char *sha256)
{
    int found = 0;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_FIND);
    if (st) {
        bind_text(st, 1, cls);
        bind_text(st, 2, sha256);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    UNLOCK(s);
    return found;
}

json_t *rd_store_ref_list(rd_store *s, const char *cls, rd_err *err)
{
    json_t *a = json_array();
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_LIST);
    if (!st) {
        db_fail(s, err, "prepare");
        json_decref(a);
        a = NULL;
        goto out;
    }
    bind_text(st, 1, cls);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "id", col_json(st, 0));
        json_object_set_new(o, "sha256", col_json(st, 1));
        json_object_set_new(o, "content_type", col_json(st, 2));
        json_object_set_new(o, "size", col_json(st, 3));
        json_object_set_new(o, "width", col_json(st, 4));
        json_object_set_new(o, "height", col_json(st, 5));
        json_object_set_new(o, "created_at", col_json(st, 6));
        json_array_append_new(a, o);
    }
out:
    UNLOCK(s);
    return a;
}

static int copy_blob(sqlite3_stmt *st, int col, uint8_t **data, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    *data = malloc(n ? n : 1);
    if (!*data) return -1;
    if (n) memcpy(*data, p, n);
    *len = n;
    return 0;
}

int rd_store_ref_image(rd_store *s, const char *cls, int64_t id, uint8_t **data, size_t *len, char ctype[64],
                       rd_err *err)
{
    int rc = RD_STORE_NOTFOUND;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_IMG);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    sqlite3_bind_int64(st, 2, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(ctype, 64, "%s", (const char *)sqlite3_column_text(st, 1));
        rc = copy_blob(st, 0, data, len) ? RD_STORE_ERR : RD_STORE_OK;
        if (rc) rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    } else {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no reference %lld", cls, (long long)id);
    }
out:
    UNLOCK(s);
    return rc;
}

int rd_store_ref_delete(rd_store *s, const char *cls, int64_t id, rd_err *err)
{
    int rc = RD_STORE_OK;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_DEL);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    sqlite3_bind_int64(st, 2, id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "delete reference");
    else if (sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no reference %lld", cls, (long long)id);
        rc = RD_STORE_NOTFOUND;
    }
out:
    UNLOCK(s);
    return rc;
}

int rd_store_ref_count(rd_store *s, const char *cls)
{
    int n = -1;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_COUNT);
    if (st) {
        bind_text(st, 1, cls);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    }
    UNLOCK(s);
    return n;
}

/* Holds the lock while calling fn: fn must not call back into the store. */
int rd_store_ref_each(rd_store *s, const char *cls, int want_image, rd_store_ref_fn fn, void *ctx, rd_err *err)
{
    int rc = RD_STORE_OK, r;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, want_image ? SQL_REF_EACH : SQL_REF_EACH_NOIMG);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1), sqlite3_column_blob(st, 2),
               (size_t)sqlite3_column_bytes(st, 2), want_image ? sqlite3_column_blob(st, 3) : NULL,
               want_image ? (size_t)sqlite3_column_bytes(st, 3) : 0)) {
            rc = RD_STORE_ERR;
            break;
        }
    }
    if (rc == RD_STORE_OK && r != SQLITE_DONE) rc = db_fail(s, err, "read references");
    sqlite3_reset(st);
out:
    UNLOCK(s);
    return rc;
}

int rd_store_ref_set_feats(rd_store *s, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                           rd_err *err)
{
    int rc = RD_STORE_OK;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_REF_FEATS);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, model_id);
    sqlite3_bind_blob64(st, 3, feats, len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "update features");
out:
    UNLOCK(s);
    return rc;
}

/* ---- inspections ---- */
static const char SQL_INSP_INS[] =
    "INSERT INTO inspections(class, external_id, status, created_at) VALUES (?1, ?2, 'queued', ?3)";
static const char SQL_INSP_DONE[] =
    "UPDATE inspections SET status = 'done', score = ?2, threshold = ?3, anomalous = ?4, scorer = ?5, shots = ?6, "
    "width = ?7, height = ?8, timings = ?9, total_ms = ?10, finished_at = ?11, model_sha256 = ?12 WHERE id = ?1";
static const char SQL_HEAT_INS[] = "INSERT INTO heatmaps(inspection_id, kind, png) VALUES (?1, ?2, ?3)";
static const char SQL_INSP_FAIL[] =
    "UPDATE inspections SET status = 'failed', error_code = ?2, error = ?3, finished_at = ?4 WHERE id = ?1";
static const char SQL_INSP_FAILQ[] =
    "UPDATE inspections SET status = 'failed', error_code = 'aborted', error = ?1, finished_at = ?2 "
    "WHERE status = 'queued'";
#define INSP_COLS                                                                                          \
    "id, class, external_id, status, score, threshold, anomalous, scorer, shots, width, height, timings, " \
    "error_code, error, created_at, finished_at, model_sha256"
static const char SQL_INSP_GET[] = "SELECT " INSP_COLS " FROM inspections WHERE id = ?1";
static const char SQL_HEAT_GET[] = "SELECT png FROM heatmaps WHERE inspection_id = ?1 AND kind = ?2";

int rd_store_insp_queue(rd_store *s, const char *cls, const char *external_id, int64_t *id, rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_INSP_INS);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    bind_text(st, 2, external_id);
    bind_text(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "insert inspection");
    else *id = sqlite3_last_insert_rowid(s->db);
out:
    UNLOCK(s);
    return rc;
}

int rd_store_insp_finish(rd_store *s, int64_t id, const rd_store_insp_done *d, rd_err *err)
{
    static const char *const kinds[3] = {"overlay", "raw", "mask"};
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) {
        rc = db_fail(s, err, "begin");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, SQL_INSP_DONE);
    if (!st) goto dbfail;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, d->score);
    sqlite3_bind_double(st, 3, d->threshold);
    sqlite3_bind_int(st, 4, d->anomalous);
    bind_text(st, 5, d->scorer);
    sqlite3_bind_int(st, 6, d->shots);
    sqlite3_bind_int(st, 7, d->width);
    sqlite3_bind_int(st, 8, d->height);
    bind_text(st, 9, d->timings_json);
    sqlite3_bind_double(st, 10, d->total_ms);
    bind_text(st, 11, now);
    bind_text(st, 12, d->model_sha256 && d->model_sha256[0] ? d->model_sha256 : NULL);
    if (sqlite3_step(st) != SQLITE_DONE) goto dbfail;
    for (int k = 0; k < 3; k++) {
        if (!d->png[k]) continue;
        if (!(st = stmt(s, SQL_HEAT_INS))) goto dbfail;
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, kinds[k]);
        sqlite3_bind_blob64(st, 3, d->png[k], d->png_len[k], SQLITE_STATIC);
        int r = sqlite3_step(st);
        sqlite3_clear_bindings(st);
        if (r != SQLITE_DONE) goto dbfail;
    }
    if (exec(s, "COMMIT") != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail(s, err, "store inspection");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

int rd_store_insp_fail(rd_store *s, int64_t id, const char *code, const char *msg, rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_INSP_FAIL);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, code);
    bind_text(st, 3, msg);
    bind_text(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "fail inspection");
out:
    UNLOCK(s);
    return rc;
}

int rd_store_insp_fail_queued(rd_store *s, const char *msg)
{
    char now[32];
    int n = -1;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_INSP_FAILQ);
    if (st) {
        bind_text(st, 1, msg);
        bind_text(st, 2, now);
        if (sqlite3_step(st) == SQLITE_DONE) n = sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
}

static json_t *insp_row(sqlite3_stmt *st)
{
    static const char *const names[] = {"id",    "class",  "external_id", "status",     "score",     "threshold",
                                        "anomalous", "scorer", "shots",  "width",      "height",    "timings_ms",
                                        "error_code", "error", "created_at", "finished_at", "model_sha256"};
    json_t *o = json_object();
    char url[96];
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++) {
        json_t *v;
        if (i == 6 && sqlite3_column_type(st, i) != SQLITE_NULL) v = json_boolean(sqlite3_column_int(st, i));
        else if (i == 11 && sqlite3_column_type(st, i) == SQLITE_TEXT)
            v = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
        else v = col_json(st, i);
        if (!v) v = json_null();
        if (i >= 12 && json_is_null(v)) {
            json_decref(v);
            continue;
        }
        if (i == 12 || i == 13) { /* error: {"code", "message"} */
            json_t *e = json_object_get(o, "error");
            if (!e) json_object_set_new(o, "error", e = json_object());
            json_object_set_new(e, i == 12 ? "code" : "message", v);
            continue;
        }
        json_object_set_new(o, names[i], v);
    }
    if (!strcmp(json_string_value(json_object_get(o, "status")), "done")) {
        snprintf(url, sizeof url, "/v1/inspections/%lld/heatmap.png", (long long)sqlite3_column_int64(st, 0));
        json_object_set_new(o, "heatmap_url", json_string(url));
    }
    return o;
}

json_t *rd_store_insp_get(rd_store *s, int64_t id, rd_err *err)
{
    json_t *o = NULL;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_INSP_GET);
    if (!st) {
        db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) o = insp_row(st);
    else rd_err_set(err, RD_ERR_ARG, "no inspection %lld", (long long)id);
out:
    UNLOCK(s);
    return o;
}

/* after_id: the oldest `limit` rows newer than after_id (so a poller misses
 * nothing), shown newest first; otherwise the newest rows (before before_id). */
static const char SQL_INSP_AFTER[] =
    "SELECT * FROM (SELECT " INSP_COLS " FROM inspections WHERE (?1 IS NULL OR class = ?1) AND "
    "(?2 < 0 OR anomalous = ?2) AND (?3 IS NULL OR created_at >= ?3) AND id > ?4 ORDER BY id ASC LIMIT ?5) "
    "ORDER BY id DESC";
static const char SQL_INSP_BEFORE[] =
    "SELECT " INSP_COLS " FROM inspections WHERE (?1 IS NULL OR class = ?1) AND (?2 < 0 OR anomalous = ?2) AND "
    "(?3 IS NULL OR created_at >= ?3) AND (?4 = 0 OR id < ?4) ORDER BY id DESC LIMIT ?5";

json_t *rd_store_insp_list(rd_store *s, const rd_store_insp_query *q, rd_err *err)
{
    json_t *a = json_array(), *o = NULL;
    int64_t maxid = q->after_id, minid = 0;
    int n = 0;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, q->after_id > 0 ? SQL_INSP_AFTER : SQL_INSP_BEFORE);
    if (!st) {
        db_fail(s, err, "prepare");
        json_decref(a);
        goto out;
    }
    bind_text(st, 1, q->cls);
    sqlite3_bind_int(st, 2, q->anomalous);
    bind_text(st, 3, q->since);
    sqlite3_bind_int64(st, 4, q->after_id > 0 ? q->after_id : q->before_id);
    sqlite3_bind_int(st, 5, q->limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id > maxid) maxid = id;
        if (!minid || id < minid) minid = id;
        json_array_append_new(a, insp_row(st));
        n++;
    }
    o = json_object();
    json_object_set_new(o, "inspections", a);
    json_object_set_new(o, "last_id", json_integer(maxid));
    if (n == q->limit && q->after_id <= 0) json_object_set_new(o, "next_before_id", json_integer(minid));
out:
    UNLOCK(s);
    return o;
}

int rd_store_heatmap(rd_store *s, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err)
{
    int rc = RD_STORE_NOTFOUND;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_HEAT_GET);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, kind);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = copy_blob(st, 0, png, len) ? RD_STORE_ERR : RD_STORE_OK;
        if (rc) rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    } else {
        rd_err_set(err, RD_ERR_ARG, "inspection %lld has no %s heatmap", (long long)id, kind);
    }
out:
    UNLOCK(s);
    return rc;
}

static const char SQL_STATS[] =
    "SELECT count(*), sum(status = 'done'), sum(status = 'failed'), sum(status = 'queued'), "
    "sum(anomalous = 1) FROM inspections WHERE (?1 IS NULL OR class = ?1) AND (?2 IS NULL OR created_at >= ?2)";
static const char SQL_STATS_LAT[] =
    "SELECT total_ms FROM inspections WHERE status = 'done' AND (?1 IS NULL OR class = ?1) AND "
    "(?2 IS NULL OR created_at >= ?2) ORDER BY total_ms";

json_t *rd_store_stats(rd_store *s, const char *cls, const char *since, rd_err *err)
{
    json_t *o = NULL;
    double *lat = NULL;
    size_t n = 0, cap = 0;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_STATS);
    if (!st) {
        db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    bind_text(st, 2, since);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_fail(s, err, "stats");
        goto out;
    }
    int64_t total = sqlite3_column_int64(st, 0), done = sqlite3_column_int64(st, 1),
            failed = sqlite3_column_int64(st, 2), queued = sqlite3_column_int64(st, 3),
            anom = sqlite3_column_int64(st, 4);
    o = json_object();
    json_object_set_new(o, "class", cls ? json_string(cls) : json_null());
    json_object_set_new(o, "since", since ? json_string(since) : json_null());
    json_object_set_new(o, "inspections", json_integer(total));
    json_object_set_new(o, "done", json_integer(done));
    json_object_set_new(o, "failed", json_integer(failed));
    json_object_set_new(o, "queued", json_integer(queued));
    json_object_set_new(o, "anomalous", json_integer(anom));
    json_object_set_new(o, "anomaly_rate", done ? json_real((double)anom / (double)done) : json_null());
    if (!(st = stmt(s, SQL_STATS_LAT))) goto out;
    bind_text(st, 1, cls);
    bind_text(st, 2, since);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            double *p = realloc(lat, nc * sizeof *p);
            if (!p) break;
            lat = p;
            cap = nc;
        }
        lat[n++] = sqlite3_column_double(st, 0);
    }
    json_t *l = json_object();
    static const double qs[] = {0.5, 0.9, 0.99};
    static const char *const qn[] = {"p50", "p90", "p99"};
    for (int i = 0; i < 3; i++) {
        if (!n) {
            json_object_set_new(l, qn[i], json_null());
            continue;
        }
        size_t k = (size_t)(qs[i] * (double)(n - 1) + 0.5);
        json_object_set_new(l, qn[i], json_real(lat[k]));
    }
    json_object_set_new(l, "max", n ? json_real(lat[n - 1]) : json_null());
    json_object_set_new(o, "latency_ms", l);
out:
    free(lat);
    UNLOCK(s);
    return o;
}

static const char SQL_PRUNE_AGE[] = "DELETE FROM inspections WHERE created_at < ?1 AND status != 'queued'";
static const char SQL_PRUNE_COUNT[] =
    "DELETE FROM inspections WHERE status != 'queued' AND id <= (SELECT id FROM inspections ORDER BY id DESC "
    "LIMIT 1 OFFSET ?1)";

int rd_store_prune(rd_store *s, long max_age_s, long max_count)
{
    int n = 0;
    LOCK(s);
    if (max_age_s > 0) {
        char cut[32];
        time_t t = time(NULL) - max_age_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(cut, sizeof cut, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        sqlite3_stmt *st = stmt(s, SQL_PRUNE_AGE);
        if (!st) goto fail;
        bind_text(st, 1, cut);
        if (sqlite3_step(st) != SQLITE_DONE) goto fail;
        n += sqlite3_changes(s->db);
    }
    if (max_count > 0) {
        sqlite3_stmt *st = stmt(s, SQL_PRUNE_COUNT);
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, max_count);
        if (sqlite3_step(st) != SQLITE_DONE) goto fail;
        n += sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
fail:
    UNLOCK(s);
    return -1;
}

/* ---- tokens ---- */
static const char SQL_TOK_INS[] = "INSERT INTO tokens(name, scope, hash, created_at) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_TOK_SCOPE[] = "SELECT scope FROM tokens WHERE hash = ?1 AND revoked_at IS NULL";
static const char SQL_TOK_LIST[] = "SELECT id, name, scope, created_at, revoked_at FROM tokens ORDER BY id";
static const char SQL_TOK_REVOKE[] = "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
static const char SQL_TOK_COUNT[] = "SELECT count(*) FROM tokens WHERE revoked_at IS NULL";

int rd_store_token_add(rd_store *s, const char *name, const char *scope, const char *hash, int64_t *id,
                       rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_INS);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, name ? name : "");
    bind_text(st, 2, scope);
    bind_text(st, 3, hash);
    bind_text(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "add token");
    else *id = sqlite3_last_insert_rowid(s->db);
out:
    UNLOCK(s);
    return rc;
}

int rd_store_token_scope(rd_store *s, const char *hash, char scope[16])
{
    int rc = RD_STORE_NOTFOUND;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_SCOPE);
    if (st) {
        bind_text(st, 1, hash);
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(scope, 16, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = RD_STORE_OK;
        }
    } else {
        rc = RD_STORE_ERR;
    }
    UNLOCK(s);
    return rc;
}

json_t *rd_store_token_list(rd_store *s, rd_err *err)
{
    json_t *a = json_array();
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_LIST);
    if (!st) {
        db_fail(s, err, "prepare");
        json_decref(a);
        a = NULL;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "id", col_json(st, 0));
        json_object_set_new(o, "name", col_json(st, 1));
        json_object_set_new(o, "scope", col_json(st, 2));
        json_object_set_new(o, "created_at", col_json(st, 3));
        json_object_set_new(o, "revoked_at", col_json(st, 4));
        json_array_append_new(a, o);
    }
out:
    UNLOCK(s);
    return a;
}

int rd_store_token_revoke(rd_store *s, int64_t id, rd_err *err)
{
    char now[32];
    int rc = RD_STORE_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_REVOKE);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(s, err, "revoke token");
    else if (sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "no live token with id %lld", (long long)id);
        rc = RD_STORE_NOTFOUND;
    }
out:
    UNLOCK(s);
    return rc;
}

int rd_store_token_count(rd_store *s)
{
    int n = -1;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_COUNT);
    if (st && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    UNLOCK(s);
    return n;
}
