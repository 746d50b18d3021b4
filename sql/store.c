/* store.c — SQLite store for resadd (see store.h): migrations, classes,
 * references, inspections and their job bytes, heatmaps, tokens.  Every SQL
 * statement of resadd lives here.  Statements are prepared once
 * (SQLITE_PREPARE_PERSISTENT) and cached by the address of their string
 * literal; every step goes through step(), the one place that maps SQLite's
 * result codes to rd_ecode and where tests inject faults. */
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "isotime.h"
#include "migrations.inc" /* generated from sql/NNN_*.sql: rd_migrations[] */

#define STMT_CACHE 96

struct rd_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    int ncache;
    char dir[1024];    /* folder of the database file; "" = in memory */
    int full;          /* a write failed with SQLITE_FULL; cleared by a probe */
    uint64_t min_free; /* bytes free wanted before a probe may clear full */
    int inject_rc, inject_n; /* fault injection: the next inject_n steps fail */
};

void rd_store_now(char buf[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rd_isotime(ts.tv_sec, (int)(ts.tv_nsec / 1000000), buf);
}

/* The rd_ecode of a SQLite failure rc; remembers a full disk for /readyz. */
static rd_ecode db_code(rd_store *s, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL) {
        s->full = 1;
        return RD_E_FULL;
    }
    if ((rc & 0xff) == SQLITE_NOMEM) return RD_E_INTERNAL;
    return RD_E_DB;
}

static rd_ecode db_fail_rc(rd_store *s, int rc, rd_err *err, const char *what)
{
    rd_ecode c = db_code(s, rc);
    rd_err_set(err, c == RD_E_FULL ? RD_ERR_LIMIT : RD_ERR_IO, "database: %s: %s", what,
               c == RD_E_FULL ? "the disk is full" : sqlite3_errstr(rc));
    return c;
}

static rd_ecode db_fail(rd_store *s, rd_err *err, const char *what)
{
    return db_fail_rc(s, sqlite3_extended_errcode(s->db), err, what);
}

/* sqlite3_step, or the injected fault. */
static int step(rd_store *s, sqlite3_stmt *st)
{
    if (s->inject_n > 0) {
        s->inject_n--;
        return s->inject_rc;
    }
    return sqlite3_step(st);
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
    if (s->ncache == STMT_CACHE) return NULL; /* keep STMT_CACHE above the number of statements */
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) return NULL;
    s->cache[s->ncache].sql = sql;
    s->cache[s->ncache].st = st;
    s->ncache++;
    return st;
}

static int exec(rd_store *s, const char *sql)
{
    if (s->inject_n > 0 && strcmp(sql, "ROLLBACK") != 0) {
        s->inject_n--;
        return s->inject_rc;
    }
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

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

static rd_ecode migrate(rd_store *s, rd_err *err)
{
    int n = 0, v = user_version(s), rc;
    while (rd_migrations[n]) n++;
    if (v < 0) return db_fail(s, err, "reading user_version");
    if (v > n) {
        rd_err_set(err, RD_ERR_MISMATCH, "database schema version %d is newer than this resadd (%d)", v, n);
        return RD_E_DB;
    }
    for (int i = v; i < n; i++) {
        char pragma[64];
        if ((rc = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) return db_fail_rc(s, rc, err, "begin migration");
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i + 1);
        if ((rc = exec(s, rd_migrations[i])) != SQLITE_OK || (rc = exec(s, pragma)) != SQLITE_OK) {
            rd_ecode c = db_code(s, rc);
            rd_err_set(err, RD_ERR_IO, "database: migration %03d: %s", i + 1, sqlite3_errmsg(s->db));
            exec(s, "ROLLBACK");
            return c;
        }
        if ((rc = exec(s, "COMMIT")) != SQLITE_OK) return db_fail_rc(s, rc, err, "commit migration");
    }
    return RD_E_OK;
}

rd_store *rd_store_open(const char *path, rd_err *err)
{
    rd_store *s = calloc(1, sizeof *s);
    int mem = !strcmp(path, ":memory:");
    if (!s) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->min_free = 8u << 20;
    if (!mem) {
        const char *slash = strrchr(path, '/');
        if (!slash) snprintf(s->dir, sizeof s->dir, ".");
        else snprintf(s->dir, sizeof s->dir, "%.*s", (int)(slash - path) > 0 ? (int)(slash - path) : 1, path);
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rd_err_set(err, RD_ERR_IO, "cannot open database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    if ((!mem && exec(s, "PRAGMA journal_mode = WAL") != SQLITE_OK) || exec(s, "PRAGMA synchronous = FULL") != SQLITE_OK ||
        exec(s, "PRAGMA foreign_keys = ON") != SQLITE_OK) {
        db_fail(s, err, path);
        goto fail;
    }
    if (migrate(s, err) != RD_E_OK) goto fail;
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

void rd_store_inject(rd_store *s, int rc, int count)
{
    LOCK(s);
    s->inject_rc = rc;
    s->inject_n = count;
    UNLOCK(s);
}

void rd_store_set_max_pages(rd_store *s, long n)
{
    char q[64];
    LOCK(s);
    snprintf(q, sizeof q, "PRAGMA max_page_count = %ld", n > 0 ? n : 1073741823L);
    sqlite3_exec(s->db, q, NULL, NULL, NULL);
    UNLOCK(s);
}

void rd_store_set_min_free(rd_store *s, uint64_t bytes)
{
    LOCK(s);
    s->min_free = bytes;
    UNLOCK(s);
}

static const char SQL_PROBE[] = "INSERT OR REPLACE INTO probe(id, at) VALUES (1, ?1)";

int rd_store_writable(rd_store *s)
{
    int ok;
    LOCK(s);
    if (s->full) {
        /* after a full disk: writable again only with room to spare and a
         * write that really commits */
        struct statvfs v;
        int room = !s->dir[0] || (statvfs(s->dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize >= s->min_free);
        sqlite3_stmt *st = room ? stmt(s, SQL_PROBE) : NULL;
        char now[32];
        rd_store_now(now);
        if (st) sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
        if (st && step(s, st) == SQLITE_DONE) s->full = 0;
        ok = !s->full;
    } else {
        ok = exec(s, "BEGIN IMMEDIATE") == SQLITE_OK;
        if (ok) exec(s, "ROLLBACK");
    }
    UNLOCK(s);
    return ok;
}

/* ---- helpers ---- */
/* Locks s and returns the cached statement for sql; NULL with *rc and err set
 * when it cannot be prepared.  Either way s stays locked: the caller's one
 * exit (out:) unlocks it. */
static sqlite3_stmt *lock_stmt(rd_store *s, const char *sql, rd_ecode *rc, rd_err *err)
{
    LOCK(s);
    sqlite3_stmt *st = stmt(s, sql);
    if (!st) *rc = db_fail(s, err, "prepare");
    return st;
}

/* Steps a statement that returns no row: RD_E_OK when it ran to the end, else
 * the failure's code (err: "database: what: ..."). */
static rd_ecode step_done(rd_store *s, sqlite3_stmt *st, rd_err *err, const char *what)
{
    int r = step(s, st);
    return r == SQLITE_DONE ? RD_E_OK : db_fail_rc(s, r, err, what);
}
static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

/* v, or NULL when v is NaN ("none"). */
static void bind_double_or_null(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

/* Column i as text into buf (n bytes); "" when NULL. */
static void col_text(sqlite3_stmt *st, int i, char *buf, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(buf, n, "%s", t ? (const char *)t : "");
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

/* Grows *rows (elements of size sz) to hold n + 1; 0 or -1. */
static int grow(void **rows, int n, int *cap, size_t sz)
{
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*rows, (size_t)nc * sz);
    if (!p) return -1;
    *rows = p;
    *cap = nc;
    return 0;
}

/* Fills one (zeroed) row struct from the statement's current result row. */
typedef void (*row_reader)(sqlite3_stmt *st, void *row);

/* Steps st (prepared and bound, the lock held) to its end into a malloc'd
 * array of sz-byte rows filled by read; on failure the array is freed and
 * *rows / *n are NULL / 0.  what names the query in a database error. */
static rd_ecode collect(rd_store *s, sqlite3_stmt *st, size_t sz, row_reader read, void **rows, int *n,
                        const char *what, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int cap = 0, r;
    *rows = NULL;
    *n = 0;
    while ((r = step(s, st)) == SQLITE_ROW) {
        if (grow(rows, *n, &cap, sz)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            break;
        }
        void *o = (char *)*rows + (size_t)(*n)++ * sz;
        memset(o, 0, sz);
        read(st, o);
    }
    if (rc == RD_E_OK && r != SQLITE_DONE) rc = db_fail_rc(s, r, err, what);
    if (rc != RD_E_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- classes ---- */
/* The error of a statement that found or changed no row of class cls. */
static rd_ecode no_class(rd_err *err, const char *cls)
{
    rd_err_set(err, RD_ERR_ARG, "no class '%s'", cls);
    return RD_E_NOTFOUND;
}

static const char SQL_CLASS_INS[] =
    "INSERT INTO classes(name, description, created_at, updated_at, geo_opts) VALUES (?1, ?2, ?3, ?3, ?4)";
static const char SQL_CLASS_GET[] =
    "SELECT c.id, c.name, c.description, (SELECT count(*) FROM refs r WHERE r.class_id = c.id), c.threshold, "
    "c.created_at, c.updated_at, c.geo_opts, c.geometry, c.roi_mask_w, c.roi_mask_h FROM classes c WHERE c.name = ?1";
static const char SQL_CLASS_LIST[] =
    "SELECT c.id, c.name, c.description, (SELECT count(*) FROM refs r WHERE r.class_id = c.id), c.threshold, "
    "c.created_at, c.updated_at, c.geo_opts, c.geometry, c.roi_mask_w, c.roi_mask_h FROM classes c ORDER BY c.name";
static const char SQL_CLASS_DESC[] = "UPDATE classes SET description = ?2, updated_at = ?3 WHERE name = ?1";
static const char SQL_CLASS_THR[] = "UPDATE classes SET threshold = ?2, updated_at = ?3 WHERE name = ?1";
static const char SQL_CLASS_TOUCH[] = "UPDATE classes SET updated_at = ?2 WHERE name = ?1";
static const char SQL_CLASS_DEL[] = "DELETE FROM classes WHERE name = ?1";
static const char SQL_CLASS_ID[] = "SELECT id, threshold FROM classes WHERE name = ?1";
/* the threshold inspections apply: the manual one, else the label policy's (sql/009_labels.sql) */
static const char SQL_CLASS_THR_EFF[] = "SELECT id, coalesce(threshold, policy_threshold) FROM classes WHERE name = ?1";

rd_ecode rd_store_class_create(rd_store *s, const char *name, const char *desc, rd_err *err)
{
    return rd_store_class_create_geo(s, name, desc, NULL, err);
}

rd_ecode rd_store_class_create_geo(rd_store *s, const char *name, const char *desc, const char *geo_opts,
                                   rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_INS, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name);
    bind_text(st, 2, desc ? desc : "");
    bind_text(st, 3, now);
    bind_text(st, 4, geo_opts && geo_opts[0] ? geo_opts : NULL);
    int r = step(s, st);
    if ((r & 0xff) == SQLITE_CONSTRAINT) {
        rd_err_set(err, RD_ERR_STATE, "class '%s' already exists", name);
        rc = RD_E_CONFLICT;
    } else if (r != SQLITE_DONE) {
        rc = db_fail_rc(s, r, err, "create class");
    }
out:
    UNLOCK(s);
    return rc;
}

static void class_row(sqlite3_stmt *st, rd_class_row *o)
{
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, o->name, sizeof o->name);
    col_text(st, 2, o->description, sizeof o->description);
    o->references = sqlite3_column_int(st, 3);
    o->threshold_manual = sqlite3_column_type(st, 4) != SQLITE_NULL;
    o->threshold = o->threshold_manual ? sqlite3_column_double(st, 4) : 0;
    col_text(st, 5, o->created_at, sizeof o->created_at);
    col_text(st, 6, o->updated_at, sizeof o->updated_at);
    col_text(st, 7, o->geo_opts, sizeof o->geo_opts);
    col_text(st, 8, o->geometry, sizeof o->geometry);
    o->roi_mask_w = sqlite3_column_int(st, 9); /* NULL = 0: no mask */
    o->roi_mask_h = sqlite3_column_int(st, 10);
}

rd_ecode rd_store_class_get(rd_store *s, const char *name, rd_class_row *out, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_GET, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        class_row(st, out);
    } else if (r == SQLITE_DONE) {
        rc = no_class(err, name);
    } else {
        rc = db_fail_rc(s, r, err, "read class");
    }
out:
    UNLOCK(s);
    return rc;
}

static void read_class(sqlite3_stmt *st, void *o) { class_row(st, o); }

rd_ecode rd_store_class_list(rd_store *s, rd_class_row **rows, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_LIST, &rc, err);
    *rows = NULL;
    *n = 0;
    if (st) rc = collect(s, st, sizeof **rows, read_class, (void **)rows, n, "list classes", err);
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_threshold(rd_store *s, const char *cls, int *manual, double *t, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_THR_EFF, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        *manual = sqlite3_column_type(st, 1) != SQLITE_NULL;
        if (*manual) *t = sqlite3_column_double(st, 1);
    } else if (r == SQLITE_DONE) {
        rc = no_class(err, cls);
    } else {
        rc = db_fail_rc(s, r, err, "read class");
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_update(rd_store *s, const char *name, const char *desc, int set_threshold, double threshold,
                               rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    int r;
    rd_store_now(now);
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, SQL_CLASS_TOUCH);
    r = SQLITE_ERROR;
    if (!st) goto dbfail;
    bind_text(st, 1, name);
    bind_text(st, 2, now);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if (sqlite3_changes(s->db) == 0) {
        exec(s, "ROLLBACK");
        rc = no_class(err, name);
        goto out;
    }
    if (desc) {
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_CLASS_DESC))) goto dbfail;
        bind_text(st, 1, name);
        bind_text(st, 2, desc);
        bind_text(st, 3, now);
        if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    }
    if (set_threshold) {
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_CLASS_THR))) goto dbfail;
        bind_text(st, 1, name);
        if (set_threshold == 1) sqlite3_bind_double(st, 2, threshold);
        else sqlite3_bind_null(st, 2);
        bind_text(st, 3, now);
        if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    }
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "update class");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_delete(rd_store *s, const char *name, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_DEL, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name);
    rc = step_done(s, st, err, "delete class");
    if (rc == RD_E_OK && sqlite3_changes(s->db) == 0) {
        rc = no_class(err, name);
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
static const char SQL_REF_FEATS_ALL[] =
    "SELECT r.id, r.model_id, r.feats FROM refs r JOIN classes c ON c.id = r.class_id "
    "WHERE c.name = ?1 ORDER BY r.id";
static const char SQL_REF_FEATS[] = "UPDATE refs SET model_id = ?2, feats = ?3 WHERE id = ?1";

rd_ecode rd_store_refs_add(rd_store *s, const char *cls, rd_store_ref_new *refs, int n, const char *model_id,
                           rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    int64_t class_id;
    int r;
    rd_store_now(now);
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    r = SQLITE_ERROR;
    sqlite3_stmt *st = stmt(s, SQL_CLASS_ID);
    if (!st) goto dbfail;
    bind_text(st, 1, cls);
    if ((r = step(s, st)) != SQLITE_ROW) {
        if (r != SQLITE_DONE) goto dbfail;
        exec(s, "ROLLBACK");
        rc = no_class(err, cls);
        goto out;
    }
    class_id = sqlite3_column_int64(st, 0);
    for (int i = 0; i < n; i++) {
        rd_store_ref_new *rf = &refs[i];
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_REF_FIND))) goto dbfail;
        bind_text(st, 1, cls);
        bind_text(st, 2, rf->sha256);
        if ((r = step(s, st)) == SQLITE_ROW) {
            rf->id_out = sqlite3_column_int64(st, 0);
            rf->duplicate_out = 1;
            continue;
        }
        if (r != SQLITE_DONE) goto dbfail;
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_REF_INS))) goto dbfail;
        sqlite3_bind_int64(st, 1, class_id);
        bind_text(st, 2, rf->sha256);
        bind_text(st, 3, rf->content_type);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)rf->len);
        sqlite3_bind_int(st, 5, rf->width);
        sqlite3_bind_int(st, 6, rf->height);
        sqlite3_bind_blob64(st, 7, rf->image, rf->len, SQLITE_STATIC);
        bind_text(st, 8, model_id);
        sqlite3_bind_blob64(st, 9, rf->feats, rf->feats_len, SQLITE_STATIC);
        bind_text(st, 10, now);
        if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
        rf->id_out = sqlite3_last_insert_rowid(s->db);
        rf->duplicate_out = 0;
    }
    r = SQLITE_ERROR;
    if (!(st = stmt(s, SQL_CLASS_TOUCH))) goto dbfail;
    bind_text(st, 1, cls);
    bind_text(st, 2, now);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "add references");
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
        found = step(s, st) == SQLITE_ROW;
    }
    UNLOCK(s);
    return found;
}

static void read_ref(sqlite3_stmt *st, void *row)
{
    rd_ref_row *o = row;
    o->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, o->sha256, sizeof o->sha256);
    col_text(st, 2, o->content_type, sizeof o->content_type);
    o->size = sqlite3_column_int64(st, 3);
    o->width = sqlite3_column_int(st, 4);
    o->height = sqlite3_column_int(st, 5);
    col_text(st, 6, o->created_at, sizeof o->created_at);
}

rd_ecode rd_store_ref_list(rd_store *s, const char *cls, rd_ref_row **rows, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_REF_LIST, &rc, err);
    *rows = NULL;
    *n = 0;
    if (st) {
        bind_text(st, 1, cls);
        rc = collect(s, st, sizeof **rows, read_ref, (void **)rows, n, "list references", err);
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_ref_image(rd_store *s, const char *cls, int64_t id, uint8_t **data, size_t *len, char ctype[64],
                            rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_REF_IMG, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    sqlite3_bind_int64(st, 2, id);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        col_text(st, 1, ctype, 64);
        if (copy_blob(st, 0, data, len)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        }
    } else if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no reference %lld", cls, (long long)id);
        rc = RD_E_NOTFOUND;
    } else {
        rc = db_fail_rc(s, r, err, "read reference");
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_ref_delete(rd_store *s, const char *cls, int64_t id, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_REF_DEL, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    sqlite3_bind_int64(st, 2, id);
    rc = step_done(s, st, err, "delete reference");
    if (rc == RD_E_OK && sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no reference %lld", cls, (long long)id);
        rc = RD_E_NOTFOUND;
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
        if (step(s, st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    }
    UNLOCK(s);
    return n;
}

void rd_store_feats_free(rd_ref_feats *f, int n)
{
    for (int i = 0; f && i < n; i++) free(f[i].feats);
    free(f);
}

rd_ecode rd_store_ref_feats(rd_store *s, const char *cls, rd_ref_feats **out, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int cap = 0, r;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = lock_stmt(s, SQL_REF_FEATS_ALL, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    while ((r = step(s, st)) == SQLITE_ROW) {
        if (grow((void **)out, *n, &cap, sizeof **out)) goto oom;
        rd_ref_feats *f = &(*out)[*n];
        memset(f, 0, sizeof *f);
        f->id = sqlite3_column_int64(st, 0);
        col_text(st, 1, f->model_id, sizeof f->model_id);
        if (copy_blob(st, 2, &f->feats, &f->feats_len)) goto oom;
        (*n)++;
    }
    if (r != SQLITE_DONE) rc = db_fail_rc(s, r, err, "read references");
    goto out;
oom:
    rc = RD_E_INTERNAL;
    rd_err_set(err, RD_ERR_NOMEM, "out of memory");
out:
    if (rc != RD_E_OK) {
        rd_store_feats_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_ref_set_feats(rd_store *s, int64_t id, const char *model_id, const uint8_t *feats, size_t len,
                                rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_REF_FEATS, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, model_id);
    sqlite3_bind_blob64(st, 3, feats, len, SQLITE_TRANSIENT);
    rc = step_done(s, st, err, "update features");
out:
    UNLOCK(s);
    return rc;
}

/* ---- stored calibrations (sql/008_classes.sql) ---- */
static const char SQL_CALIB_GET[] =
    "SELECT k.key, k.threshold, k.calib FROM calibrations k JOIN classes c ON c.id = k.class_id WHERE c.name = ?1";
static const char SQL_CALIB_PUT[] =
    "INSERT OR REPLACE INTO calibrations(class_id, key, threshold, calib) "
    "SELECT id, ?2, ?3, ?4 FROM classes WHERE name = ?1";

rd_ecode rd_store_calib_get(rd_store *s, const char *cls, char key[65], double *threshold, uint8_t **blob,
                            size_t *len, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int r;
    if (blob) *blob = NULL;
    if (len) *len = 0;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CALIB_GET);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    if ((r = step(s, st)) == SQLITE_ROW) {
        col_text(st, 0, key, 65);
        *threshold = sqlite3_column_double(st, 1);
        if (blob && copy_blob(st, 2, blob, len)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        }
    } else if (r == SQLITE_DONE) {
        rc = RD_E_NOTFOUND;
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no stored calibration", cls);
    } else {
        rc = db_fail_rc(s, r, err, "read calibration");
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_calib_put(rd_store *s, const char *cls, const char *key, double threshold, const uint8_t *blob,
                            size_t len, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int r;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CALIB_PUT);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    bind_text(st, 2, key);
    sqlite3_bind_double(st, 3, threshold);
    sqlite3_bind_blob64(st, 4, blob, len, SQLITE_TRANSIENT);
    if ((r = step(s, st)) != SQLITE_DONE) rc = db_fail_rc(s, r, err, "store calibration");
out:
    UNLOCK(s);
    return rc;
}

/* ---- inspections ---- */
static const char SQL_INSP_INS[] =
    "INSERT INTO inspections(class, external_id, status, created_at, threshold, threshold_source, sensitivity) "
    "VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)";
static const char SQL_JOB_INS[] = "INSERT INTO jobs(inspection_id, content_type, image) VALUES (?1, ?2, ?3)";
static const char SQL_JOB_DEL[] = "DELETE FROM jobs WHERE inspection_id = ?1";
static const char SQL_JOBS[] =
    "SELECT i.id, i.class, j.image, coalesce(i.threshold_source, ''), i.threshold, i.sensitivity FROM jobs j "
    "JOIN inspections i ON i.id = j.inspection_id "
    "WHERE i.status = 'queued' ORDER BY i.id";
static const char SQL_INSP_DONE[] =
    "UPDATE inspections SET status = 'done', score = ?2, threshold = ?3, anomalous = ?4, scorer = ?5, shots = ?6, "
    "width = ?7, height = ?8, timings = ?9, total_ms = ?10, finished_at = ?11, model_sha256 = ?12 WHERE id = ?1";
static const char SQL_INSP_GEO[] =
    "UPDATE inspections SET geometry = ?2, inspected_fraction = ?3, left_out_fraction = ?4, fitted = ?5 WHERE id = ?1";
static const char SQL_HEAT_INS[] = "INSERT INTO heatmaps(inspection_id, kind, png) VALUES (?1, ?2, ?3)";
/* seq: the completion sequence (sql/005_integrator.sql), the next number in
 * commit order (every write here holds the one connection's lock) */
#define NEXT_SEQ "(SELECT coalesce(max(seq), 0) + 1 FROM inspections)"
static const char SQL_INSP_VERDICT[] =
    "UPDATE inspections SET confidence = ?2, anomalous_area = ?3, regions = ?4, regions_total = ?5, "
    "threshold_source = ?6, sensitivity = ?7 WHERE id = ?1";
static const char SQL_INSP_SEQ[] = "UPDATE inspections SET seq = " NEXT_SEQ " WHERE id = ?1";
static const char SQL_INSP_FAIL[] =
    "UPDATE inspections SET status = 'failed', error_code = ?2, error = ?3, finished_at = ?4, seq = " NEXT_SEQ
    " WHERE id = ?1";
static const char SQL_INSP_FAILQ[] =
    "UPDATE inspections SET status = 'failed', error_code = 'aborted', error = ?1, finished_at = ?2, "
    "seq = (SELECT coalesce(max(seq), 0) FROM inspections) + id "
    "WHERE status = 'queued' AND id NOT IN (SELECT inspection_id FROM jobs)";
#define INSP_COLS                                                                                          \
    "id, class, external_id, status, score, threshold, anomalous, scorer, shots, width, height, timings, " \
    "error_code, error, created_at, finished_at, model_sha256, geometry, inspected_fraction, left_out_fraction, " \
    "fitted, confidence, anomalous_area, regions, regions_total, threshold_source, sensitivity, seq"
static const char SQL_INSP_GET[] = "SELECT " INSP_COLS " FROM inspections WHERE id = ?1";
static const char SQL_HEAT_GET[] = "SELECT png FROM heatmaps WHERE inspection_id = ?1 AND kind = ?2";

rd_ecode rd_store_insp_queue(rd_store *s, const char *cls, const char *external_id, const uint8_t *image,
                             size_t len, const char *content_type, int64_t *id, rd_err *err)
{
    return rd_store_insp_queue_req(s, cls, external_id, image, len, content_type, NULL, id, err);
}

rd_ecode rd_store_insp_queue_req(rd_store *s, const char *cls, const char *external_id, const uint8_t *image,
                                 size_t len, const char *content_type, const rd_store_thr_req *req, int64_t *id,
                                 rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    int r;
    rd_store_now(now);
    LOCK(s);
    /* A synchronous inspection (no image queued with it) is acknowledged only
     * by its finish, whose FULL commit syncs the WAL up to and including this
     * row: this commit need not wait for the disk.  A queued job (202) is
     * acknowledged now, so it does. */
    int lazy = !image;
    if (lazy) exec(s, "PRAGMA synchronous = NORMAL");
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    r = SQLITE_ERROR;
    sqlite3_stmt *st = stmt(s, SQL_INSP_INS);
    if (!st) goto dbfail;
    bind_text(st, 1, cls);
    bind_text(st, 2, external_id);
    bind_text(st, 3, now);
    if (req) {
        bind_double_or_null(st, 4, req->threshold);
        bind_text(st, 5, req->source);
        bind_double_or_null(st, 6, req->sensitivity);
    }
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    *id = sqlite3_last_insert_rowid(s->db);
    if (image) {
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_JOB_INS))) goto dbfail;
        sqlite3_bind_int64(st, 1, *id);
        bind_text(st, 2, content_type ? content_type : "");
        sqlite3_bind_blob64(st, 3, image, len, SQLITE_STATIC);
        r = step(s, st);
        sqlite3_clear_bindings(st);
        if (r != SQLITE_DONE) goto dbfail;
    }
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "insert inspection");
    exec(s, "ROLLBACK");
out:
    if (lazy) exec(s, "PRAGMA synchronous = FULL");
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_insp_finish(rd_store *s, int64_t id, const rd_store_insp_done *d, rd_err *err)
{
    static const char *const kinds[5] = {"overlay", "raw", "mask", "map", "image"};
    char now[32];
    rd_ecode rc = RD_E_OK;
    int r;
    rd_store_now(now);
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    r = SQLITE_ERROR;
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
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if (d->geometry) {
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_INSP_GEO))) goto dbfail;
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, d->geometry);
        sqlite3_bind_double(st, 3, d->inspected_fraction);
        sqlite3_bind_double(st, 4, d->left_out_fraction);
        sqlite3_bind_int(st, 5, d->fitted);
        if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    }
    if (d->has_verdict) {
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_INSP_VERDICT))) goto dbfail;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_double(st, 2, d->confidence);
        sqlite3_bind_double(st, 3, d->anomalous_area);
        bind_text(st, 4, d->regions_json);
        sqlite3_bind_int(st, 5, d->regions_total);
        bind_text(st, 6, d->threshold_source);
        bind_double_or_null(st, 7, d->sensitivity);
        if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    }
    r = SQLITE_ERROR;
    if (!(st = stmt(s, SQL_INSP_SEQ))) goto dbfail;
    sqlite3_bind_int64(st, 1, id);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    for (int k = 0; k < 5; k++) {
        if (!d->png[k]) continue;
        r = SQLITE_ERROR;
        if (!(st = stmt(s, SQL_HEAT_INS))) goto dbfail;
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, kinds[k]);
        sqlite3_bind_blob64(st, 3, d->png[k], d->png_len[k], SQLITE_STATIC);
        r = step(s, st);
        sqlite3_clear_bindings(st);
        if (r != SQLITE_DONE) goto dbfail;
    }
    r = SQLITE_ERROR;
    if (!(st = stmt(s, SQL_JOB_DEL))) goto dbfail;
    sqlite3_bind_int64(st, 1, id);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "store inspection");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_insp_fail(rd_store *s, int64_t id, const char *code, const char *msg, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    int r;
    rd_store_now(now);
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    r = SQLITE_ERROR;
    sqlite3_stmt *st = stmt(s, SQL_INSP_FAIL);
    if (!st) goto dbfail;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, code);
    bind_text(st, 3, msg);
    bind_text(st, 4, now);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    r = SQLITE_ERROR;
    if (!(st = stmt(s, SQL_JOB_DEL))) goto dbfail;
    sqlite3_bind_int64(st, 1, id);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "fail inspection");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

int rd_store_insp_fail_orphans(rd_store *s, const char *msg)
{
    char now[32];
    int n = -1;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_INSP_FAILQ);
    if (st) {
        bind_text(st, 1, msg);
        bind_text(st, 2, now);
        if (step(s, st) == SQLITE_DONE) n = sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
}

void rd_store_jobs_free(rd_store_job *jobs, int n)
{
    for (int i = 0; jobs && i < n; i++) free(jobs[i].image);
    free(jobs);
}

rd_ecode rd_store_jobs_pending(rd_store *s, rd_store_job **jobs, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int cap = 0, r;
    *jobs = NULL;
    *n = 0;
    sqlite3_stmt *st = lock_stmt(s, SQL_JOBS, &rc, err);
    if (!st) goto out;
    while ((r = step(s, st)) == SQLITE_ROW) {
        if (grow((void **)jobs, *n, &cap, sizeof **jobs)) goto oom;
        rd_store_job *j = &(*jobs)[*n];
        memset(j, 0, sizeof *j);
        j->id = sqlite3_column_int64(st, 0);
        col_text(st, 1, j->cls, sizeof j->cls);
        if (copy_blob(st, 2, &j->image, &j->len)) goto oom;
        col_text(st, 3, j->thr_source, sizeof j->thr_source);
        j->threshold = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
        j->sensitivity = sqlite3_column_type(st, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5);
        (*n)++;
    }
    if (r != SQLITE_DONE) rc = db_fail_rc(s, r, err, "read queued jobs");
    goto out;
oom:
    rc = RD_E_INTERNAL;
    rd_err_set(err, RD_ERR_NOMEM, "out of memory");
out:
    if (rc != RD_E_OK) {
        rd_store_jobs_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
    UNLOCK(s);
    return rc;
}

static void insp_row(sqlite3_stmt *st, rd_insp_row *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < RD_INSP_COLS_COUNT; i++)
        if (sqlite3_column_type(st, i) != SQLITE_NULL) o->present |= 1u << i;
    o->id = sqlite3_column_int64(st, RD_INSP_ID);
    col_text(st, RD_INSP_CLASS, o->cls, sizeof o->cls);
    col_text(st, RD_INSP_EXTID, o->external_id, sizeof o->external_id);
    col_text(st, RD_INSP_STATUS, o->status, sizeof o->status);
    o->score = sqlite3_column_double(st, RD_INSP_SCORE);
    o->threshold = sqlite3_column_double(st, RD_INSP_THRESHOLD);
    o->anomalous = sqlite3_column_int(st, RD_INSP_ANOMALOUS);
    col_text(st, RD_INSP_SCORER, o->scorer, sizeof o->scorer);
    o->shots = sqlite3_column_int(st, RD_INSP_SHOTS);
    o->width = sqlite3_column_int(st, RD_INSP_WIDTH);
    o->height = sqlite3_column_int(st, RD_INSP_HEIGHT);
    col_text(st, RD_INSP_TIMINGS, o->timings, sizeof o->timings);
    col_text(st, RD_INSP_ERRCODE, o->error_code, sizeof o->error_code);
    col_text(st, RD_INSP_ERROR, o->error, sizeof o->error);
    col_text(st, RD_INSP_CREATED, o->created_at, sizeof o->created_at);
    col_text(st, RD_INSP_FINISHED, o->finished_at, sizeof o->finished_at);
    col_text(st, RD_INSP_MODEL, o->model_sha256, sizeof o->model_sha256);
    col_text(st, RD_INSP_GEOMETRY, o->geometry, sizeof o->geometry);
    o->inspected_fraction = sqlite3_column_double(st, RD_INSP_INSPECTED);
    o->left_out_fraction = sqlite3_column_double(st, RD_INSP_LEFTOUT);
    o->fitted = sqlite3_column_int(st, RD_INSP_FITTED);
    o->confidence = sqlite3_column_double(st, RD_INSP_CONFIDENCE);
    o->anomalous_area = sqlite3_column_double(st, RD_INSP_AREA);
    col_text(st, RD_INSP_REGIONS, o->regions, sizeof o->regions);
    o->regions_total = sqlite3_column_int(st, RD_INSP_REGIONS_TOTAL);
    col_text(st, RD_INSP_THRSRC, o->threshold_source, sizeof o->threshold_source);
    o->sensitivity = sqlite3_column_double(st, RD_INSP_SENS);
    o->seq = sqlite3_column_int64(st, RD_INSP_SEQ);
}

rd_ecode rd_store_insp_get(rd_store *s, int64_t id, rd_insp_row *out, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_INSP_GET, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        insp_row(st, out);
    } else if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "no inspection %lld", (long long)id);
        rc = RD_E_NOTFOUND;
    } else {
        rc = db_fail_rc(s, r, err, "read inspection");
    }
out:
    UNLOCK(s);
    return rc;
}

/* after_id (a completion sequence): the oldest finished rows whose seq is
 * above it, ascending — a row becomes visible here only when it finishes, in
 * commit order, so a poller that follows `next` sees every row once (one
 * more row is read to tell has_more).  Otherwise the newest rows by id
 * (before before_id), queued ones included. */
static const char SQL_INSP_AFTER[] =
    "SELECT " INSP_COLS " FROM inspections WHERE (?1 IS NULL OR class = ?1) AND "
    "(?2 < 0 OR anomalous = ?2) AND (?3 IS NULL OR created_at >= ?3) AND seq > ?4 AND "
    "(?6 IS NULL OR external_id = ?6) ORDER BY seq ASC LIMIT ?5 + 1";
static const char SQL_INSP_BEFORE[] =
    "SELECT " INSP_COLS " FROM inspections WHERE (?1 IS NULL OR class = ?1) AND (?2 < 0 OR anomalous = ?2) AND "
    "(?3 IS NULL OR created_at >= ?3) AND (?4 = 0 OR id < ?4) AND (?6 IS NULL OR external_id = ?6) "
    "ORDER BY id DESC LIMIT ?5";
static const char SQL_INSP_EXTID[] =
    "SELECT " INSP_COLS " FROM inspections WHERE class = ?1 AND external_id = ?2 AND "
    "(?3 IS NULL OR created_at >= ?3) ORDER BY id DESC LIMIT 1";

rd_ecode rd_store_insp_list(rd_store *s, const rd_insp_query *q, rd_insp_page *page, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int64_t minid = 0;
    int cap = 0, r, after = q->after_set || q->after_id > 0;
    memset(page, 0, sizeof *page);
    page->last_id = q->after_id;
    page->next = q->after_id;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, after ? SQL_INSP_AFTER : SQL_INSP_BEFORE);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, q->cls);
    sqlite3_bind_int(st, 2, q->anomalous);
    bind_text(st, 3, q->since);
    sqlite3_bind_int64(st, 4, after ? q->after_id : q->before_id);
    sqlite3_bind_int(st, 5, q->limit);
    bind_text(st, 6, q->external_id);
    while ((r = step(s, st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (after && page->n == q->limit) {
            page->has_more = 1;
            continue;
        }
        if (after) page->next = sqlite3_column_int64(st, RD_INSP_SEQ);
        if (grow((void **)&page->rows, page->n, &cap, sizeof *page->rows)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (id > page->last_id) page->last_id = id;
        if (!minid || id < minid) minid = id;
        insp_row(st, &page->rows[page->n++]);
    }
    if (r != SQLITE_DONE) {
        rc = db_fail_rc(s, r, err, "list inspections");
        goto out;
    }
    if (page->n == q->limit && !after) page->next_before_id = minid;
out:
    if (rc != RD_E_OK) {
        free(page->rows);
        memset(page, 0, sizeof *page);
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_insp_by_extid(rd_store *s, const char *cls, const char *external_id, const char *since,
                                rd_insp_row *out, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_INSP_EXTID, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    bind_text(st, 2, external_id);
    bind_text(st, 3, since);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        insp_row(st, out);
    } else if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "no inspection of '%s' with external id '%s'", cls, external_id);
        rc = RD_E_NOTFOUND;
    } else {
        rc = db_fail_rc(s, r, err, "read inspection");
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_heatmap(rd_store *s, int64_t id, const char *kind, uint8_t **png, size_t *len, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_HEAT_GET, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, kind);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        if (copy_blob(st, 0, png, len)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        }
    } else if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "inspection %lld has no %s heatmap", (long long)id, kind);
        rc = RD_E_NOTFOUND;
    } else {
        rc = db_fail_rc(s, r, err, "read heatmap");
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

rd_ecode rd_store_stats(rd_store *s, const char *cls, const char *since, rd_stats *o, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    double *lat = NULL;
    int n = 0, cap = 0, r;
    memset(o, 0, sizeof *o);
    sqlite3_stmt *st = lock_stmt(s, SQL_STATS, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, cls);
    bind_text(st, 2, since);
    if ((r = step(s, st)) != SQLITE_ROW) {
        rc = db_fail_rc(s, r, err, "stats");
        goto out;
    }
    o->total = sqlite3_column_int64(st, 0);
    o->done = sqlite3_column_int64(st, 1);
    o->failed = sqlite3_column_int64(st, 2);
    o->queued = sqlite3_column_int64(st, 3);
    o->anomalous = sqlite3_column_int64(st, 4);
    if (!(st = stmt(s, SQL_STATS_LAT))) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    bind_text(st, 2, since);
    while ((r = step(s, st)) == SQLITE_ROW) {
        if (grow((void **)&lat, n, &cap, sizeof *lat)) break;
        lat[n++] = sqlite3_column_double(st, 0);
    }
    if (n) {
        o->have_latency = 1;
        o->p50 = lat[(size_t)(0.5 * (double)(n - 1) + 0.5)];
        o->p90 = lat[(size_t)(0.9 * (double)(n - 1) + 0.5)];
        o->p99 = lat[(size_t)(0.99 * (double)(n - 1) + 0.5)];
        o->max = lat[n - 1];
    }
out:
    free(lat);
    UNLOCK(s);
    return rc;
}

static const char SQL_PRUNE_AGE[] = "DELETE FROM inspections WHERE created_at < ?1 AND status != 'queued'";
static const char SQL_PRUNE_COUNT[] =
    "DELETE FROM inspections WHERE status != 'queued' AND id <= (SELECT id FROM inspections ORDER BY id DESC "
    "LIMIT 1 OFFSET ?1)";

/* Deletes by age (rows older than max_age_s, when > 0: age_sql binds the
 * cut-off time) and then by count (count_sql binds keep, when > 0); returns the
 * rows deleted, -1 on error. */
static int prune_by(rd_store *s, const char *age_sql, long max_age_s, const char *count_sql, long keep)
{
    int n = 0;
    LOCK(s);
    if (max_age_s > 0) {
        char cut[RD_ISOTIME_LEN];
        rd_isotime((int64_t)time(NULL) - max_age_s, 0, cut);
        sqlite3_stmt *st = stmt(s, age_sql);
        if (!st) goto fail;
        bind_text(st, 1, cut);
        if (step(s, st) != SQLITE_DONE) goto fail;
        n += sqlite3_changes(s->db);
    }
    if (keep > 0) {
        sqlite3_stmt *st = stmt(s, count_sql);
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, keep);
        if (step(s, st) != SQLITE_DONE) goto fail;
        n += sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
fail:
    UNLOCK(s);
    return -1;
}

int rd_store_prune(rd_store *s, long max_age_s, long max_count)
{
    return prune_by(s, SQL_PRUNE_AGE, max_age_s, SQL_PRUNE_COUNT, max_count);
}

/* ---- retention of image copies and of the database's size (issue 13) ---- */
static const char SQL_PRUNE_IMG_COUNT[] =
    "DELETE FROM heatmaps WHERE kind = 'image' AND inspection_id <= (SELECT inspection_id FROM heatmaps "
    "WHERE kind = 'image' ORDER BY inspection_id DESC LIMIT 1 OFFSET ?1)";
static const char SQL_PRUNE_IMG_AGE[] =
    "DELETE FROM heatmaps WHERE kind = 'image' AND inspection_id IN (SELECT id FROM inspections WHERE "
    "created_at < ?1)";
static const char SQL_USED[] =
    "SELECT (p.page_count - f.freelist_count) * s.page_size FROM pragma_page_count() p, "
    "pragma_freelist_count() f, pragma_page_size() s";
static const char SQL_DONE_COUNT[] = "SELECT count(*) FROM inspections WHERE status != 'queued'";
static const char SQL_PRUNE_OLDEST[] =
    "DELETE FROM inspections WHERE id IN (SELECT id FROM inspections WHERE status != 'queued' ORDER BY id "
    "LIMIT ?1)";

int rd_store_prune_images(rd_store *s, long keep_last, long max_age_s)
{
    return prune_by(s, SQL_PRUNE_IMG_AGE, max_age_s, SQL_PRUNE_IMG_COUNT, keep_last);
}

static int64_t scalar(rd_store *s, const char *sql)
{
    sqlite3_stmt *st = stmt(s, sql);
    if (!st || step(s, st) != SQLITE_ROW) return -1;
    return sqlite3_column_int64(st, 0);
}

int64_t rd_store_used_bytes(rd_store *s)
{
    LOCK(s);
    int64_t v = scalar(s, SQL_USED);
    UNLOCK(s);
    return v;
}

int rd_store_prune_bytes(rd_store *s, uint64_t max_bytes)
{
    int n = 0;
    if (max_bytes == 0) return 0;
    LOCK(s);
    /* a bounded number of rounds, each deleting the rows its average size says are over */
    for (int round = 0; round < 16; round++) {
        int64_t used = scalar(s, SQL_USED), rows = scalar(s, SQL_DONE_COUNT);
        if (used < 0 || rows < 0) goto fail;
        if ((uint64_t)used <= max_bytes || rows == 0) break;
        int64_t per = used / rows + 1, over = (int64_t)((uint64_t)used - max_bytes);
        int64_t k = over / per + 1;
        if (k > rows) k = rows;
        sqlite3_stmt *st = stmt(s, SQL_PRUNE_OLDEST);
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, k);
        if (step(s, st) != SQLITE_DONE) goto fail;
        n += sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
fail:
    UNLOCK(s);
    return -1;
}

/* ---- tokens ---- */
static const char SQL_TOK_INS[] =
    "INSERT INTO tokens(name, scope, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_TOK_SCOPE[] = "SELECT scope, id FROM tokens WHERE hash = ?1 AND revoked_at IS NULL "
                                    "AND (expires_at IS NULL OR expires_at > ?2)";
static const char SQL_TOK_LIST[] = "SELECT id, name, scope, created_at, revoked_at, expires_at FROM tokens ORDER BY id";
static const char SQL_TOK_REVOKE[] = "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
static const char SQL_TOK_COUNT[] = "SELECT count(*) FROM tokens WHERE revoked_at IS NULL";

rd_ecode rd_store_token_add(rd_store *s, const char *name, const char *scope, const char *hash, int64_t *id,
                            rd_err *err)
{
    return rd_store_token_add_exp(s, name, scope, hash, NULL, id, err);
}

rd_ecode rd_store_token_add_exp(rd_store *s, const char *name, const char *scope, const char *hash,
                                const char *expires_at, int64_t *id, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_TOK_INS, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name ? name : "");
    bind_text(st, 2, scope);
    bind_text(st, 3, hash);
    bind_text(st, 4, now);
    if (expires_at) bind_text(st, 5, expires_at);
    else sqlite3_bind_null(st, 5);
    if ((rc = step_done(s, st, err, "add token")) == RD_E_OK) *id = sqlite3_last_insert_rowid(s->db);
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_token_scope(rd_store *s, const char *hash, char scope[16])
{
    int64_t id;
    return rd_store_token_lookup(s, hash, scope, &id);
}

rd_ecode rd_store_token_lookup(rd_store *s, const char *hash, char scope[16], int64_t *id)
{
    char now[32];
    rd_ecode rc = RD_E_NOTFOUND;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_TOK_SCOPE);
    if (st) {
        bind_text(st, 1, hash);
        bind_text(st, 2, now);
        int r = step(s, st);
        if (r == SQLITE_ROW) {
            col_text(st, 0, scope, 16);
            *id = sqlite3_column_int64(st, 1);
            rc = RD_E_OK;
        } else if (r != SQLITE_DONE) {
            rc = db_code(s, r);
        }
    } else {
        rc = RD_E_DB;
    }
    UNLOCK(s);
    return rc;
}

static void read_token(sqlite3_stmt *st, void *row)
{
    rd_token_row *o = row;
    o->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, o->name, sizeof o->name);
    col_text(st, 2, o->scope, sizeof o->scope);
    col_text(st, 3, o->created_at, sizeof o->created_at);
    col_text(st, 4, o->revoked_at, sizeof o->revoked_at);
    col_text(st, 5, o->expires_at, sizeof o->expires_at);
}

rd_ecode rd_store_token_list(rd_store *s, rd_token_row **rows, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_TOK_LIST, &rc, err);
    *rows = NULL;
    *n = 0;
    if (st) rc = collect(s, st, sizeof **rows, read_token, (void **)rows, n, "list tokens", err);
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_token_revoke(rd_store *s, int64_t id, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_TOK_REVOKE, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, now);
    rc = step_done(s, st, err, "revoke token");
    if (rc == RD_E_OK && sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "no live token with id %lld", (long long)id);
        rc = RD_E_NOTFOUND;
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
    if (st && step(s, st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    UNLOCK(s);
    return n;
}

/* ---- class geometry (sql/004_geometry.sql) ---- */
static const char SQL_CLASS_GEO_OPTS[] = "UPDATE classes SET geo_opts = ?2, updated_at = ?3 WHERE name = ?1";
static const char SQL_CLASS_GEOMETRY[] = "UPDATE classes SET geometry = ?2 WHERE name = ?1";

/* One UPDATE of a class by name; RD_E_NOTFOUND when no row changed. */
static rd_ecode class_set_text(rd_store *s, const char *sql, const char *name, const char *text, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, sql);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, name);
    bind_text(st, 2, text && text[0] ? text : NULL);
    if (sql == SQL_CLASS_GEO_OPTS) bind_text(st, 3, now);
    int r = step(s, st);
    if (r != SQLITE_DONE) {
        rc = db_fail_rc(s, r, err, "update class geometry");
    } else if (sqlite3_changes(s->db) == 0) {
        rc = no_class(err, name);
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_set_geo_opts(rd_store *s, const char *name, const char *opts, rd_err *err)
{
    return class_set_text(s, SQL_CLASS_GEO_OPTS, name, opts, err);
}

rd_ecode rd_store_class_set_geometry(rd_store *s, const char *name, const char *geometry, rd_err *err)
{
    return class_set_text(s, SQL_CLASS_GEOMETRY, name, geometry, err);
}

/* ---- class ROI mask (sql/010_roi_mask.sql) ---- */
static const char SQL_CLASS_MASK_SET[] = "UPDATE classes SET roi_mask = ?2, roi_mask_type = ?3, roi_mask_w = ?4, "
                                         "roi_mask_h = ?5, updated_at = ?6 WHERE name = ?1";
static const char SQL_CLASS_MASK_GET[] = "SELECT roi_mask, roi_mask_type FROM classes WHERE name = ?1";

rd_ecode rd_store_class_set_roi_mask(rd_store *s, const char *name, const uint8_t *data, size_t len,
                                     const char *ctype, int w, int h, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_MASK_SET, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name);
    if (data) {
        sqlite3_bind_blob64(st, 2, len ? data : (const void *)"", len, SQLITE_STATIC);
        bind_text(st, 3, ctype);
        sqlite3_bind_int(st, 4, w);
        sqlite3_bind_int(st, 5, h);
    } /* else every mask column NULL: no mask */
    bind_text(st, 6, now);
    rc = step_done(s, st, err, "update class roi mask");
    if (rc == RD_E_OK && sqlite3_changes(s->db) == 0) {
        rc = no_class(err, name);
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_clear_roi_mask(rd_store *s, const char *name, rd_err *err)
{
    return rd_store_class_set_roi_mask(s, name, NULL, 0, NULL, 0, 0, err);
}

rd_ecode rd_store_class_roi_mask(rd_store *s, const char *name, uint8_t **data, size_t *len, char ctype[64],
                                 rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    *data = NULL;
    *len = 0;
    sqlite3_stmt *st = lock_stmt(s, SQL_CLASS_MASK_GET, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, name);
    int r = step(s, st);
    if (r == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        col_text(st, 1, ctype, 64);
        if (copy_blob(st, 0, data, len)) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        }
    } else if (r == SQLITE_ROW) {
        rd_err_set(err, RD_ERR_ARG, "class '%s' has no roi mask", name);
        rc = RD_E_NOTFOUND;
    } else if (r == SQLITE_DONE) {
        rc = no_class(err, name);
    } else {
        rc = db_fail_rc(s, r, err, "read class roi mask");
    }
out:
    UNLOCK(s);
    return rc;
}

/* ---- webhooks (sql/005_integrator.sql) ---- */
static const char SQL_HOOK_INS[] =
    "INSERT INTO webhooks(url, events, class, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
#define HOOK_COLS                                                                                                    \
    "w.id, w.url, w.events, coalesce(w.class, ''), w.created_at, "                                                   \
    "(SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'), "                       \
    "(SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'delivered'), "                     \
    "(SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed'), "                        \
    "(SELECT coalesce(d.last_status, 0) FROM deliveries d WHERE d.webhook_id = w.id AND d.attempts > 0 "            \
    "ORDER BY d.id DESC LIMIT 1), "                                                                                 \
    "(SELECT coalesce(d.last_error, '') FROM deliveries d WHERE d.webhook_id = w.id AND d.attempts > 0 "            \
    "ORDER BY d.id DESC LIMIT 1)"
static const char SQL_HOOK_LIST[] = "SELECT " HOOK_COLS " FROM webhooks w ORDER BY w.id";
static const char SQL_HOOK_GET[] = "SELECT " HOOK_COLS " FROM webhooks w WHERE w.id = ?1";
static const char SQL_HOOK_DEL[] = "DELETE FROM webhooks WHERE id = ?1";
static const char SQL_DLV_INS[] =
    "INSERT INTO deliveries(webhook_id, event, body, status, next_at, created_at) SELECT id, ?1, ?2, 'pending', ?4, ?5 "
    "FROM webhooks WHERE (class IS NULL OR class = ?3) AND "
    "(events = '*' OR instr(',' || events || ',', ',' || ?1 || ',') > 0)";
static const char SQL_DLV_DUE[] =
    "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.body, d.attempts FROM deliveries d JOIN webhooks w ON "
    "w.id = d.webhook_id WHERE d.status = 'pending' AND d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2";
static const char SQL_DLV_NEXT[] = "SELECT min(next_at) FROM deliveries WHERE status = 'pending' AND next_at > ?1";
static const char SQL_DLV_RES[] =
    "UPDATE deliveries SET status = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4, "
    "next_at = CASE WHEN ?5 >= 0 THEN ?5 ELSE next_at END, "
    "finished_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?6 END WHERE id = ?1";

rd_ecode rd_store_webhook_add(rd_store *s, const char *url, const char *events, const char *cls, const char *secret,
                              int64_t *id, rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_HOOK_INS, &rc, err);
    if (!st) goto out;
    bind_text(st, 1, url);
    bind_text(st, 2, events);
    bind_text(st, 3, cls && *cls ? cls : NULL);
    bind_text(st, 4, secret);
    bind_text(st, 5, now);
    if ((rc = step_done(s, st, err, "add webhook")) == RD_E_OK) *id = sqlite3_last_insert_rowid(s->db);
out:
    UNLOCK(s);
    return rc;
}

static void hook_row(sqlite3_stmt *st, rd_webhook_row *o)
{
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, o->url, sizeof o->url);
    col_text(st, 2, o->events, sizeof o->events);
    col_text(st, 3, o->cls, sizeof o->cls);
    col_text(st, 4, o->created_at, sizeof o->created_at);
    o->pending = sqlite3_column_int64(st, 5);
    o->delivered = sqlite3_column_int64(st, 6);
    o->failed = sqlite3_column_int64(st, 7);
    o->last_status = sqlite3_column_int(st, 8);
    col_text(st, 9, o->last_error, sizeof o->last_error);
}

static void read_hook(sqlite3_stmt *st, void *o) { hook_row(st, o); }

rd_ecode rd_store_webhook_list(rd_store *s, rd_webhook_row **rows, int *n, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_HOOK_LIST, &rc, err);
    *rows = NULL;
    *n = 0;
    if (st) rc = collect(s, st, sizeof **rows, read_hook, (void **)rows, n, "list webhooks", err);
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_webhook_get(rd_store *s, int64_t id, rd_webhook_row *out, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_HOOK_GET, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    int r = step(s, st);
    if (r == SQLITE_ROW) {
        hook_row(st, out);
    } else if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "no webhook %lld", (long long)id);
        rc = RD_E_NOTFOUND;
    } else {
        rc = db_fail_rc(s, r, err, "read webhook");
    }
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_webhook_delete(rd_store *s, int64_t id, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int r;
    sqlite3_stmt *st = lock_stmt(s, SQL_HOOK_DEL, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    if ((r = step(s, st)) != SQLITE_DONE) {
        rc = db_fail_rc(s, r, err, "delete webhook");
    } else if (sqlite3_changes(s->db) == 0) {
        rd_err_set(err, RD_ERR_ARG, "no webhook %lld", (long long)id);
        rc = RD_E_NOTFOUND;
    }
out:
    UNLOCK(s);
    return rc;
}

int rd_store_delivery_enqueue(rd_store *s, const char *event, const char *cls, const char *body, double next_at)
{
    char now[32];
    int n = -1;
    rd_store_now(now);
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_DLV_INS);
    if (st) {
        bind_text(st, 1, event);
        bind_text(st, 2, body);
        bind_text(st, 3, cls);
        sqlite3_bind_double(st, 4, next_at);
        bind_text(st, 5, now);
        if (step(s, st) == SQLITE_DONE) n = sqlite3_changes(s->db);
    }
    UNLOCK(s);
    return n;
}

void rd_store_delivery_free(rd_delivery *d, int n)
{
    for (int i = 0; d && i < n; i++) free(d[i].body);
}

rd_ecode rd_store_delivery_due(rd_store *s, double now, rd_delivery *out, int max, int *n, double *next_at,
                               rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int r;
    *n = 0;
    *next_at = 0;
    sqlite3_stmt *st = lock_stmt(s, SQL_DLV_DUE, &rc, err);
    if (!st) goto out;
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    while ((r = step(s, st)) == SQLITE_ROW) {
        rd_delivery *d = &out[*n];
        memset(d, 0, sizeof *d);
        d->id = sqlite3_column_int64(st, 0);
        d->webhook_id = sqlite3_column_int64(st, 1);
        col_text(st, 2, d->url, sizeof d->url);
        col_text(st, 3, d->secret, sizeof d->secret);
        col_text(st, 4, d->event, sizeof d->event);
        const char *b = (const char *)sqlite3_column_text(st, 5);
        if (!(d->body = strdup(b ? b : ""))) {
            rc = RD_E_INTERNAL;
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            goto out;
        }
        d->attempts = sqlite3_column_int(st, 6);
        (*n)++;
    }
    if (r != SQLITE_DONE) {
        rc = db_fail_rc(s, r, err, "due deliveries");
        goto out;
    }
    if (!(st = stmt(s, SQL_DLV_NEXT))) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    sqlite3_bind_double(st, 1, now);
    if ((r = step(s, st)) == SQLITE_ROW) *next_at = sqlite3_column_double(st, 0);
    else if (r != SQLITE_DONE) rc = db_fail_rc(s, r, err, "next delivery");
out:
    if (rc != RD_E_OK) {
        rd_store_delivery_free(out, *n);
        *n = 0;
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_delivery_result(rd_store *s, int64_t id, int ok, int http_status, const char *error, double next_at,
                                  rd_err *err)
{
    char now[32];
    rd_ecode rc = RD_E_OK;
    rd_store_now(now);
    sqlite3_stmt *st = lock_stmt(s, SQL_DLV_RES, &rc, err);
    if (!st) goto out;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, ok ? "delivered" : next_at >= 0 ? "pending" : "failed");
    if (http_status > 0) sqlite3_bind_int(st, 3, http_status);
    else sqlite3_bind_null(st, 3);
    bind_text(st, 4, error && *error ? error : NULL);
    sqlite3_bind_double(st, 5, ok ? -1 : next_at);
    bind_text(st, 6, now);
    rc = step_done(s, st, err, "record delivery");
out:
    UNLOCK(s);
    return rc;
}

/* ---- labels (sql/009_labels.sql; engine/labels.c) ---- */
static const char SQL_LABEL_GET[] =
    "SELECT inspection_id, class, label, score, actor, labelled_at, coalesce(reference_id, 0) FROM labels "
    "WHERE inspection_id = ?1";
static const char SQL_LABEL_PUT[] =
    "INSERT INTO labels(inspection_id, class, label, score, actor, labelled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT(inspection_id) DO UPDATE SET label = ?3, actor = ?5, labelled_at = ?6";
static const char SQL_LABEL_DEL[] = "DELETE FROM labels WHERE inspection_id = ?1";
static const char SQL_LABEL_REF[] = "UPDATE labels SET reference_id = nullif(?2, 0) WHERE inspection_id = ?1";
static const char SQL_LABEL_EVT[] =
    "INSERT INTO label_events(class, inspection_id, action, value, reference_id, actor, at) "
    "VALUES (?1, nullif(?2, 0), ?3, ?4, nullif(?5, 0), ?6, ?7)";
static const char SQL_LABEL_SCORES[] =
    "SELECT label, score, coalesce(reference_id, 0) > 0 AS member FROM labels WHERE class = ?1 AND score IS NOT NULL "
    "ORDER BY member, inspection_id";
static const char SQL_LABEL_EVENTS[] =
    "SELECT id, class, coalesce(inspection_id, 0), action, coalesce(value, ''), coalesce(reference_id, 0), actor, at "
    "FROM label_events WHERE class = ?1 AND (?2 = 0 OR inspection_id = ?2) ORDER BY id";
static const char SQL_CLASS_POLICY[] =
    "SELECT threshold_policy, learn_from_labels, policy_threshold FROM classes WHERE name = ?1";
static const char SQL_CLASS_POLICY_SET[] =
    "UPDATE classes SET threshold_policy = coalesce(?2, threshold_policy), "
    "learn_from_labels = CASE WHEN ?3 < 0 THEN learn_from_labels ELSE ?3 END, policy_threshold = ?4, "
    "updated_at = ?5 WHERE name = ?1";

static void label_row(sqlite3_stmt *st, rd_label_row *o)
{
    memset(o, 0, sizeof *o);
    o->inspection_id = sqlite3_column_int64(st, 0);
    col_text(st, 1, o->cls, sizeof o->cls);
    col_text(st, 2, o->label, sizeof o->label);
    o->score = sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3);
    col_text(st, 4, o->actor, sizeof o->actor);
    col_text(st, 5, o->at, sizeof o->at);
    o->reference_id = sqlite3_column_int64(st, 6);
}

/* one label_events row (under the lock, inside the caller's transaction) */
static int label_event(rd_store *s, const char *cls, int64_t insp, const char *action, const char *value,
                       int64_t ref, const char *actor, const char *now)
{
    sqlite3_stmt *st = stmt(s, SQL_LABEL_EVT);
    if (!st) return SQLITE_ERROR;
    bind_text(st, 1, cls);
    sqlite3_bind_int64(st, 2, insp);
    bind_text(st, 3, action);
    bind_text(st, 4, value);
    sqlite3_bind_int64(st, 5, ref);
    bind_text(st, 6, actor);
    bind_text(st, 7, now);
    return step(s, st);
}

static int label_get_locked(rd_store *s, int64_t insp, rd_label_row *out)
{
    sqlite3_stmt *st = stmt(s, SQL_LABEL_GET);
    if (!st) return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, insp);
    int r = step(s, st);
    if (r == SQLITE_ROW) label_row(st, out);
    return r;
}

rd_ecode rd_store_label_get(rd_store *s, int64_t insp, rd_label_row *out, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    LOCK(s);
    int r = label_get_locked(s, insp, out);
    if (r == SQLITE_DONE) {
        rd_err_set(err, RD_ERR_ARG, "inspection %lld has no label", (long long)insp);
        rc = RD_E_NOTFOUND;
    } else if (r != SQLITE_ROW) {
        rc = db_fail_rc(s, r, err, "read label");
    }
    UNLOCK(s);
    return rc;
}

/* The label change and its event in one transaction.  what: 'label' (value =
 * the label), 'unlabel', 'join' (ref > 0), 'leave'. */
static rd_ecode label_change(rd_store *s, int64_t insp, const char *cls, const char *what, const char *value,
                             double score, int64_t ref, const char *actor, int *changed, rd_err *err)
{
    char now[32];
    rd_label_row old;
    rd_ecode rc = RD_E_OK;
    int r, had;
    rd_store_now(now);
    if (changed) *changed = 0;
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    if ((r = label_get_locked(s, insp, &old)) != SQLITE_ROW && r != SQLITE_DONE) goto dbfail;
    had = r == SQLITE_ROW;
    if (strcmp(what, "label") && !had) {
        exec(s, "ROLLBACK");
        rd_err_set(err, RD_ERR_ARG, "inspection %lld has no label", (long long)insp);
        rc = RD_E_NOTFOUND;
        goto out;
    }
    if (!strcmp(what, "label") && had && !strcmp(old.label, value)) { /* the same label again: no change */
        exec(s, "ROLLBACK");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, !strcmp(what, "label") ? SQL_LABEL_PUT : !strcmp(what, "unlabel") ? SQL_LABEL_DEL
                                                                                                 : SQL_LABEL_REF);
    r = SQLITE_ERROR;
    if (!st) goto dbfail;
    sqlite3_bind_int64(st, 1, insp);
    if (!strcmp(what, "label")) {
        bind_text(st, 2, cls);
        bind_text(st, 3, value);
        if (isnan(score)) sqlite3_bind_null(st, 4);
        else sqlite3_bind_double(st, 4, score);
        bind_text(st, 5, actor);
        bind_text(st, 6, now);
    } else if (strcmp(what, "unlabel")) {
        sqlite3_bind_int64(st, 2, ref);
    }
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if (!strcmp(what, "unlabel")) value = old.label;
    if (!strcmp(what, "leave")) ref = old.reference_id;
    if ((r = label_event(s, had ? old.cls : cls, insp, what, value, ref, actor, now)) != SQLITE_DONE) goto dbfail;
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    if (changed) *changed = 1;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "record label");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_label_set(rd_store *s, int64_t insp, const char *cls, const char *label, double score,
                            const char *actor, int *changed, rd_err *err)
{
    return label_change(s, insp, cls, "label", label, score, 0, actor, changed, err);
}

rd_ecode rd_store_label_delete(rd_store *s, int64_t insp, const char *actor, rd_err *err)
{
    return label_change(s, insp, NULL, "unlabel", NULL, NAN, 0, actor, NULL, err);
}

rd_ecode rd_store_label_set_ref(rd_store *s, int64_t insp, int64_t ref_id, const char *actor, rd_err *err)
{
    return label_change(s, insp, NULL, ref_id > 0 ? "join" : "leave", NULL, NAN, ref_id, actor, NULL, err);
}

rd_ecode rd_store_label_scores(rd_store *s, const char *cls, double **goods, int *ng, int *ng_pool, double **defects,
                               int *nd, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    int capg = 0, capd = 0, r;
    *goods = *defects = NULL;
    *ng = *nd = *ng_pool = 0;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_LABEL_SCORES);
    if (!st) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    bind_text(st, 1, cls);
    while ((r = step(s, st)) == SQLITE_ROW) {
        int good = !strcmp((const char *)sqlite3_column_text(st, 0), "good");
        if (good && sqlite3_column_int(st, 2)) ++*ng_pool;
        double **v = good ? goods : defects;
        int *n = good ? ng : nd;
        if (grow((void **)v, *n, good ? &capg : &capd, sizeof **v)) {
            rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            rc = RD_E_INTERNAL;
            goto out;
        }
        (*v)[(*n)++] = sqlite3_column_double(st, 1);
    }
    if (r != SQLITE_DONE) rc = db_fail_rc(s, r, err, "read labels");
out:
    UNLOCK(s);
    if (rc != RD_E_OK) {
        free(*goods);
        free(*defects);
        *goods = *defects = NULL;
        *ng = *nd = *ng_pool = 0;
    }
    return rc;
}

static void read_label_event(sqlite3_stmt *st, void *row)
{
    rd_label_event *e = row;
    e->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, e->cls, sizeof e->cls);
    e->inspection_id = sqlite3_column_int64(st, 2);
    col_text(st, 3, e->action, sizeof e->action);
    col_text(st, 4, e->value, sizeof e->value);
    e->reference_id = sqlite3_column_int64(st, 5);
    col_text(st, 6, e->actor, sizeof e->actor);
    col_text(st, 7, e->at, sizeof e->at);
}

rd_ecode rd_store_label_events(rd_store *s, const char *cls, int64_t insp, rd_label_event **rows, int *n,
                               rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    sqlite3_stmt *st = lock_stmt(s, SQL_LABEL_EVENTS, &rc, err);
    *rows = NULL;
    *n = 0;
    if (st) {
        bind_text(st, 1, cls);
        sqlite3_bind_int64(st, 2, insp);
        rc = collect(s, st, sizeof **rows, read_label_event, (void **)rows, n, "read label events", err);
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_policy_get(rd_store *s, const char *cls, char policy[32], int *learn,
                                   double *policy_threshold, rd_err *err)
{
    rd_ecode rc = RD_E_OK;
    LOCK(s);
    sqlite3_stmt *st = stmt(s, SQL_CLASS_POLICY);
    int r = SQLITE_ERROR;
    if (st) {
        bind_text(st, 1, cls);
        r = step(s, st);
    }
    if (r == SQLITE_ROW) {
        col_text(st, 0, policy, 32);
        *learn = sqlite3_column_int(st, 1);
        *policy_threshold = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
    } else if (r == SQLITE_DONE) {
        rc = no_class(err, cls);
    } else {
        rc = db_fail_rc(s, r, err, "read class policy");
    }
    UNLOCK(s);
    return rc;
}

rd_ecode rd_store_class_policy_set(rd_store *s, const char *cls, const char *policy, int learn,
                                   double policy_threshold, const char *actor, rd_err *err)
{
    char now[32], what[48];
    rd_ecode rc = RD_E_OK;
    int r;
    rd_store_now(now);
    LOCK(s);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK) {
        rc = db_fail_rc(s, r, err, "begin");
        goto out;
    }
    sqlite3_stmt *st = stmt(s, SQL_CLASS_POLICY_SET);
    r = SQLITE_ERROR;
    if (!st) goto dbfail;
    bind_text(st, 1, cls);
    bind_text(st, 2, policy);
    sqlite3_bind_int(st, 3, learn);
    if (isnan(policy_threshold)) sqlite3_bind_null(st, 4);
    else sqlite3_bind_double(st, 4, policy_threshold);
    bind_text(st, 5, now);
    if ((r = step(s, st)) != SQLITE_DONE) goto dbfail;
    if (sqlite3_changes(s->db) == 0) {
        exec(s, "ROLLBACK");
        rc = no_class(err, cls);
        goto out;
    }
    if (actor) { /* an operator's change, not a recalibration */
        snprintf(what, sizeof what, "%s%s%s", policy ? policy : "",
                 learn < 0 ? "" : policy ? ", learn_from_labels=" : "learn_from_labels=",
                 learn < 0 ? "" : learn ? "true" : "false");
        if ((r = label_event(s, cls, 0, "policy", what, 0, actor, now)) != SQLITE_DONE) goto dbfail;
    }
    if ((r = exec(s, "COMMIT")) != SQLITE_OK) goto dbfail;
    goto out;
dbfail:
    rc = db_fail_rc(s, r, err, "set class policy");
    exec(s, "ROLLBACK");
out:
    UNLOCK(s);
    return rc;
}
