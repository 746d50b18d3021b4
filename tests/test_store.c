/* test_store.c — the SQLite store on an in-memory database: every kind of
 * row round-trips as a struct, the not-found/conflict codes, paging, the job
 * bytes of async inspections, and failures: injected SQLite errors (FULL ->
 * RD_E_FULL and /readyz's writable probe, IOERR/BUSY -> RD_E_DB, rolled back
 * with nothing half-written) and a real SQLITE_FULL from max_page_count. */
#include <stdlib.h>
#include <string.h>

#include "sql/store.h"
#include "testutil.h"

#define SQLITE_BUSY_ 5
#define SQLITE_IOERR_ 10
#define SQLITE_FULL_ 13

static rd_store_ref_new ref(const char *sha, const uint8_t *img, size_t len)
{
    rd_store_ref_new r = {.image = img, .len = len, .content_type = "image/png", .sha256 = sha, .width = 4,
                          .height = 3, .feats = (const uint8_t *)"FEATS", .feats_len = 5};
    return r;
}

static void classes(rd_store *s)
{
    rd_err err = {0};
    rd_class_row row, *rows;
    int n;
    RD_CHECK(rd_store_class_create(s, "alpha", "first", &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_class_create(s, "beta", NULL, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_class_create(s, "alpha", "", &err) == RD_E_CONFLICT, "duplicate class");
    RD_CHECK(rd_store_class_get(s, "alpha", &row, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(!strcmp(row.name, "alpha") && !strcmp(row.description, "first") && row.references == 0 &&
                 !row.threshold_manual && strlen(row.created_at) == 24,
             "row %s/%s/%d/%s", row.name, row.description, row.references, row.created_at);
    RD_CHECK(rd_store_class_get(s, "nope", &row, &err) == RD_E_NOTFOUND, "missing class");
    RD_CHECK(rd_store_class_update(s, "alpha", "second", 1, 2.5, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_class_get(s, "alpha", &row, &err) == RD_E_OK && row.threshold_manual && row.threshold == 2.5 &&
                 !strcmp(row.description, "second"),
             "update");
    int manual = -1;
    double t = 0;
    RD_CHECK(rd_store_class_threshold(s, "alpha", &manual, &t, &err) == RD_E_OK && manual == 1 && t == 2.5, "thr");
    RD_CHECK(rd_store_class_update(s, "alpha", NULL, 2, 0, &err) == RD_E_OK, "back to auto");
    RD_CHECK(rd_store_class_threshold(s, "alpha", &manual, &t, &err) == RD_E_OK && manual == 0, "auto");
    RD_CHECK(rd_store_class_update(s, "nope", "x", 0, 0, &err) == RD_E_NOTFOUND, "update missing");
    RD_CHECK(rd_store_class_list(s, &rows, &n, &err) == RD_E_OK && n == 2 && !strcmp(rows[0].name, "alpha") &&
                 !strcmp(rows[1].name, "beta"),
             "list %d", n);
    free(rows);
    RD_CHECK(rd_store_class_delete(s, "beta", &err) == RD_E_OK, "delete");
    RD_CHECK(rd_store_class_delete(s, "beta", &err) == RD_E_NOTFOUND, "delete twice");
}

static void refs(rd_store *s)
{
    rd_err err = {0};
    static const uint8_t img1[] = {1, 2, 3}, img2[] = {4, 5, 6, 7};
    rd_store_ref_new r[3] = {ref("aa", img1, 3), ref("bb", img2, 4), ref("aa", img1, 3)};
    RD_CHECK(rd_store_refs_add(s, "alpha", r, 2, "model-1", &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(!r[0].duplicate_out && !r[1].duplicate_out && r[1].id_out > r[0].id_out, "ids");
    RD_CHECK(rd_store_refs_add(s, "alpha", &r[2], 1, "model-1", &err) == RD_E_OK && r[2].duplicate_out &&
                 r[2].id_out == r[0].id_out,
             "duplicate by sha");
    RD_CHECK(rd_store_refs_add(s, "nope", r, 1, "model-1", &err) == RD_E_NOTFOUND, "unknown class");
    RD_CHECK(rd_store_ref_count(s, "alpha") == 2 && rd_store_ref_exists(s, "alpha", "bb") &&
                 !rd_store_ref_exists(s, "alpha", "cc"),
             "count/exists");
    rd_ref_row *rows;
    int n;
    RD_CHECK(rd_store_ref_list(s, "alpha", &rows, &n, &err) == RD_E_OK && n == 2 && rows[1].size == 4 &&
                 !strcmp(rows[1].sha256, "bb") && rows[1].width == 4,
             "ref list");
    free(rows);
    uint8_t *data;
    size_t len;
    char ct[64];
    RD_CHECK(rd_store_ref_image(s, "alpha", r[1].id_out, &data, &len, ct, &err) == RD_E_OK && len == 4 &&
                 !memcmp(data, img2, 4) && !strcmp(ct, "image/png"),
             "bytes round-trip");
    free(data);
    RD_CHECK(rd_store_ref_image(s, "alpha", 999, &data, &len, ct, &err) == RD_E_NOTFOUND, "missing ref");
    rd_ref_feats *f;
    RD_CHECK(rd_store_ref_feats(s, "alpha", &f, &n, &err) == RD_E_OK && n == 2 && f[0].feats_len == 5 &&
                 !memcmp(f[0].feats, "FEATS", 5) && !strcmp(f[0].model_id, "model-1"),
             "feats");
    rd_store_feats_free(f, n);
    RD_CHECK(rd_store_ref_set_feats(s, r[0].id_out, "model-2", (const uint8_t *)"NEW", 3, &err) == RD_E_OK, "set");
    RD_CHECK(rd_store_ref_feats(s, "alpha", &f, &n, &err) == RD_E_OK && !strcmp(f[0].model_id, "model-2") &&
                 f[0].feats_len == 3,
             "feats updated");
    rd_store_feats_free(f, n);
    RD_CHECK(rd_store_ref_delete(s, "alpha", r[1].id_out, &err) == RD_E_OK, "ref delete");
    RD_CHECK(rd_store_ref_delete(s, "alpha", r[1].id_out, &err) == RD_E_NOTFOUND, "ref delete twice");
}

static void inspections(rd_store *s)
{
    rd_err err = {0};
    int64_t a, b, c;
    static const uint8_t png[] = {0x89, 'P', 'N', 'G'};
    RD_CHECK(rd_store_insp_queue(s, "alpha", "ext-1", NULL, 0, NULL, &a, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_insp_queue(s, "alpha", NULL, png, 4, "image/png", &b, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_insp_queue(s, "alpha", NULL, png, 4, "image/png", &c, &err) == RD_E_OK, "%s", err.msg);
    rd_store_job *jobs;
    int n;
    RD_CHECK(rd_store_jobs_pending(s, &jobs, &n, &err) == RD_E_OK && n == 2 && jobs[0].id == b && jobs[0].len == 4 &&
                 !strcmp(jobs[0].cls, "alpha"),
             "pending jobs %d", n);
    rd_store_jobs_free(jobs, n);
    rd_insp_row row;
    RD_CHECK(rd_store_insp_get(s, a, &row, &err) == RD_E_OK && !strcmp(row.status, "queued") &&
                 !strcmp(row.external_id, "ext-1") && (row.present & 1u << RD_INSP_EXTID) &&
                 !(row.present & 1u << RD_INSP_SCORE),
             "queued row");
    rd_store_insp_done d = {.score = 3.5, .threshold = 2, .anomalous = 1, .shots = 4, .width = 8, .height = 6,
                            .scorer = "resad", .model_sha256 = "abc", .timings_json = "{\"total\":1}",
                            .total_ms = 12, .png = {png, png, png}, .png_len = {4, 4, 4}};
    RD_CHECK(rd_store_insp_finish(s, b, &d, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_jobs_pending(s, &jobs, &n, &err) == RD_E_OK && n == 1 && jobs[0].id == c, "job dropped");
    rd_store_jobs_free(jobs, n);
    RD_CHECK(rd_store_insp_get(s, b, &row, &err) == RD_E_OK && !strcmp(row.status, "done") && row.score == 3.5 &&
                 row.anomalous == 1 && !strcmp(row.model_sha256, "abc") && !strcmp(row.timings, "{\"total\":1}"),
             "done row");
    uint8_t *p;
    size_t len;
    RD_CHECK(rd_store_heatmap(s, b, "mask", &p, &len, &err) == RD_E_OK && len == 4, "heatmap");
    free(p);
    RD_CHECK(rd_store_heatmap(s, a, "mask", &p, &len, &err) == RD_E_NOTFOUND, "no heatmap");
    /* a restart: the sync row (no bytes) fails, the async one stays queued */
    RD_CHECK(rd_store_insp_fail_orphans(s, "restart") == 1, "orphans");
    RD_CHECK(rd_store_insp_get(s, a, &row, &err) == RD_E_OK && !strcmp(row.status, "failed") &&
                 !strcmp(row.error_code, "aborted"),
             "orphan failed");
    RD_CHECK(rd_store_insp_get(s, c, &row, &err) == RD_E_OK && !strcmp(row.status, "queued"), "job kept");
    RD_CHECK(rd_store_insp_fail(s, c, "invalid_image", "bad", &err) == RD_E_OK, "fail");
    RD_CHECK(rd_store_jobs_pending(s, &jobs, &n, &err) == RD_E_OK && n == 0, "no job after fail");
    rd_store_jobs_free(jobs, n);
    /* paging */
    rd_insp_query q = {.anomalous = -1, .limit = 2};
    rd_insp_page page;
    RD_CHECK(rd_store_insp_list(s, &q, &page, &err) == RD_E_OK && page.n == 2 && page.rows[0].id == c &&
                 page.next_before_id == b,
             "newest first");
    free(page.rows);
    q.after_id = a;
    RD_CHECK(rd_store_insp_list(s, &q, &page, &err) == RD_E_OK && page.n == 2 && page.last_id == c &&
                 !page.next_before_id,
             "after_id");
    free(page.rows);
    q = (rd_insp_query){.anomalous = 1, .limit = 10};
    RD_CHECK(rd_store_insp_list(s, &q, &page, &err) == RD_E_OK && page.n == 1 && page.rows[0].id == b, "anomalous");
    free(page.rows);
    rd_stats st;
    RD_CHECK(rd_store_stats(s, "alpha", NULL, &st, &err) == RD_E_OK && st.total == 3 && st.done == 1 &&
                 st.failed == 2 && st.anomalous == 1 && st.have_latency && st.p50 == 12,
             "stats");
    RD_CHECK(rd_store_prune(s, 0, 1) >= 1, "prune");
}

static void tokens(rd_store *s)
{
    rd_err err = {0};
    int64_t id;
    char scope[16];
    RD_CHECK(rd_store_token_add(s, "ops", "admin", "h1", &id, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_token_scope(s, "h1", scope) == RD_E_OK && !strcmp(scope, "admin"), "scope");
    RD_CHECK(rd_store_token_scope(s, "h2", scope) == RD_E_NOTFOUND, "unknown");
    rd_token_row *t;
    int n;
    RD_CHECK(rd_store_token_list(s, &t, &n, &err) == RD_E_OK && n == 1 && !strcmp(t[0].name, "ops") &&
                 !t[0].revoked_at[0],
             "list");
    free(t);
    RD_CHECK(rd_store_token_count(s) == 1, "count");
    RD_CHECK(rd_store_token_revoke(s, id, &err) == RD_E_OK, "revoke");
    RD_CHECK(rd_store_token_revoke(s, id, &err) == RD_E_NOTFOUND, "revoke twice");
    RD_CHECK(rd_store_token_scope(s, "h1", scope) == RD_E_NOTFOUND && rd_store_token_count(s) == 0, "revoked");
}

static void faults(rd_store *s)
{
    rd_err err = {0};
    rd_class_row row;
    int64_t id;
    static const uint8_t img[] = {9, 9};
    /* disk full in the middle of a write: RD_E_FULL, nothing written, not writable until a probe succeeds */
    RD_CHECK(rd_store_writable(s) == 1, "writable");
    rd_store_inject(s, SQLITE_FULL_, 1);
    RD_CHECK(rd_store_class_create(s, "gamma", "", &err) == RD_E_FULL, "FULL -> RD_E_FULL (%s)", err.msg);
    RD_CHECK(strstr(err.msg, "disk is full") != NULL, "message: %s", err.msg);
    RD_CHECK(rd_store_class_get(s, "gamma", &row, &err) == RD_E_NOTFOUND, "nothing written");
    rd_store_inject(s, SQLITE_FULL_, 1);
    RD_CHECK(rd_store_writable(s) == 0, "not writable while the probe fails");
    RD_CHECK(rd_store_writable(s) == 1, "writable again once the probe commits");
    /* a transaction failing half-way is rolled back */
    rd_store_ref_new r[2] = {ref("x1", img, 2), ref("x2", img, 2)};
    rd_store_inject(s, 0, 0);
    RD_CHECK(rd_store_refs_add(s, "alpha", r, 2, "m", &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_ref_count(s, "alpha") == 3, "3 refs");
    rd_store_ref_new r2[2] = {ref("y1", img, 2), ref("y2", img, 2)};
    rd_store_inject(s, SQLITE_IOERR_, 1);
    /* steps: class id, find y1, insert y1 -> fail on the first; then inject after one */
    RD_CHECK(rd_store_refs_add(s, "alpha", r2, 2, "m", &err) == RD_E_DB, "IOERR -> RD_E_DB");
    RD_CHECK(rd_store_ref_count(s, "alpha") == 3, "rolled back (%d)", rd_store_ref_count(s, "alpha"));
    rd_store_inject(s, SQLITE_BUSY_, 1);
    RD_CHECK(rd_store_insp_queue(s, "alpha", NULL, img, 2, "image/png", &id, &err) == RD_E_DB, "BUSY -> RD_E_DB");
    rd_store_inject(s, SQLITE_IOERR_, 1);
    RD_CHECK(rd_store_class_get(s, "alpha", &row, &err) == RD_E_DB, "read error -> RD_E_DB");
    /* a really full database: max_page_count */
    static uint8_t big[256 * 1024];
    memset(big, 7, sizeof big);
    rd_store_set_max_pages(s, 40);
    rd_store_ref_new rb = ref("big", big, sizeof big);
    RD_CHECK(rd_store_refs_add(s, "alpha", &rb, 1, "m", &err) == RD_E_FULL, "real SQLITE_FULL (%s)", err.msg);
    RD_CHECK(rd_store_ref_count(s, "alpha") == 3, "nothing written");
    rd_store_set_max_pages(s, 0);
    RD_CHECK(rd_store_refs_add(s, "alpha", &rb, 1, "m", &err) == RD_E_OK, "room again: %s", err.msg);
    RD_CHECK(rd_store_writable(s) == 1, "writable after recovery");
}

/* sql/004_geometry.sql: a class's geometry options and fixed geometry round-trip */
static void geometry(rd_store *s)
{
    rd_err err = {0};
    rd_class_row row;
    RD_CHECK(rd_store_class_create(s, "geo", "", &err) == RD_E_OK, "create: %s", err.msg);
    RD_CHECK(rd_store_class_get(s, "geo", &row, &err) == RD_E_OK && !row.geo_opts[0] && !row.geometry[0],
             "no geometry at creation");
    RD_CHECK(rd_store_class_set_geo_opts(s, "geo", "s=320 fit=pad roi=0,0,0,0 alpha=composite search=0", &err) ==
                 RD_E_OK, "set opts: %s", err.msg);
    RD_CHECK(rd_store_class_set_geometry(s, "geo", "frame=1920x1080", &err) == RD_E_OK, "set geometry: %s", err.msg);
    RD_CHECK(rd_store_class_get(s, "geo", &row, &err) == RD_E_OK && !strcmp(row.geo_opts, "s=320 fit=pad "
             "roi=0,0,0,0 alpha=composite search=0") && !strcmp(row.geometry, "frame=1920x1080"), "read back");
    RD_CHECK(rd_store_class_set_geometry(s, "nope", "x", &err) == RD_E_NOTFOUND, "no such class");
    RD_CHECK(rd_store_class_set_geometry(s, "geo", NULL, &err) == RD_E_OK &&
                 rd_store_class_get(s, "geo", &row, &err) == RD_E_OK && !row.geometry[0], "cleared");
    RD_CHECK(rd_store_class_delete(s, "geo", &err) == RD_E_OK, "delete");
}

/* sql/010_roi_mask.sql: a class's ROI mask bytes round-trip, cleared, and missing */
static void roi_mask(rd_store *s)
{
    rd_err err = {0};
    rd_class_row row;
    uint8_t *data = NULL;
    size_t len = 0;
    char ct[64] = "";
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', 1, 2, 3};
    RD_CHECK(rd_store_class_create(s, "masked", "", &err) == RD_E_OK, "create: %s", err.msg);
    RD_CHECK(rd_store_class_get(s, "masked", &row, &err) == RD_E_OK && !row.roi_mask_w && !row.roi_mask_h,
             "no mask at creation");
    RD_CHECK(rd_store_class_roi_mask(s, "masked", &data, &len, ct, &err) == RD_E_NOTFOUND && strstr(err.msg, "no roi"),
             "no mask yet: %s", err.msg);
    RD_CHECK(rd_store_class_set_roi_mask(s, "masked", png, sizeof png, "image/png", 640, 360, &err) == RD_E_OK,
             "set: %s", err.msg);
    RD_CHECK(rd_store_class_get(s, "masked", &row, &err) == RD_E_OK && row.roi_mask_w == 640 && row.roi_mask_h == 360,
             "size in the row: %dx%d", row.roi_mask_w, row.roi_mask_h);
    RD_CHECK(rd_store_class_roi_mask(s, "masked", &data, &len, ct, &err) == RD_E_OK && len == sizeof png &&
                 !memcmp(data, png, len) && !strcmp(ct, "image/png"),
             "bytes read back: %s", err.msg);
    free(data);
    RD_CHECK(rd_store_class_set_roi_mask(s, "nope", png, sizeof png, "image/png", 1, 1, &err) == RD_E_NOTFOUND,
             "no such class");
    RD_CHECK(rd_store_class_roi_mask(s, "nope", &data, &len, ct, &err) == RD_E_NOTFOUND && strstr(err.msg, "no class"),
             "get: no such class");
    RD_CHECK(rd_store_class_clear_roi_mask(s, "masked", &err) == RD_E_OK &&
                 rd_store_class_get(s, "masked", &row, &err) == RD_E_OK && !row.roi_mask_w &&
                 rd_store_class_roi_mask(s, "masked", &data, &len, ct, &err) == RD_E_NOTFOUND,
             "cleared");
    RD_CHECK(rd_store_class_delete(s, "masked", &err) == RD_E_OK, "delete");
}

int main(void)
{
    rd_err err = {0};
    rd_store *s = rd_store_open(":memory:", &err);
    RD_CHECK(s != NULL, "open: %s", err.msg);
    if (!s) return rd_test_done("test_store");
    /* every migration applied (004_geometry.sql and later ones) */
    RD_CHECK(rd_store_schema_version(s) >= 4, "schema version %d", rd_store_schema_version(s));
    geometry(s);
    roi_mask(s);
    classes(s);
    refs(s);
    inspections(s);
    tokens(s);
    faults(s);
    rd_store_close(s);
    return rd_test_done("test_store");
}
