/* test_store_review.c — two store fixes from the 2026-12 review, on an
 * in-memory database:
 *  - a class created with geometry options stores them in its one INSERT: the
 *    options read back as given; a failing write stores neither the class nor
 *    its options (the API no longer creates, then sets, then deletes);
 *  - a queued inspection keeps the threshold its request asked for
 *    (?threshold= / ?sensitivity=): rd_store_jobs_pending returns it with the
 *    job's bytes, and a job queued without one comes back with none. */
#include <math.h>
#include <string.h>

#include "sql/store.h"
#include "testutil.h"

#define SQLITE_IOERR_ 10

static void create_geo(rd_store *s)
{
    rd_err err = {0};
    rd_class_row row;
    const char *opts = "s=320 fit=pad roi=0,0,0,0 alpha=composite search=0";
    RD_CHECK(rd_store_class_create_geo(s, "cam", "c", opts, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_class_get(s, "cam", &row, &err) == RD_E_OK && !strcmp(row.geo_opts, opts), "geo_opts '%s'",
             row.geo_opts);
    RD_CHECK(rd_store_class_create_geo(s, "plain", NULL, NULL, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_class_get(s, "plain", &row, &err) == RD_E_OK && row.geo_opts[0] == '\0', "defaults: '%s'",
             row.geo_opts);
    RD_CHECK(rd_store_class_create_geo(s, "cam", "", opts, &err) == RD_E_CONFLICT, "duplicate");
    rd_store_inject(s, SQLITE_IOERR_, 1);
    RD_CHECK(rd_store_class_create_geo(s, "cam2", "", opts, &err) == RD_E_DB, "IOERR -> RD_E_DB");
    RD_CHECK(rd_store_class_get(s, "cam2", &row, &err) == RD_E_NOTFOUND, "nothing stored after a failed create");
}

static void job_threshold(rd_store *s)
{
    rd_err err = {0};
    static const uint8_t img[] = {1, 2, 3};
    int64_t a, b, c, d;
    rd_store_thr_req thr = {"request", 0.125, NAN}, sens = {"sensitivity", 1.5, 0.75};
    RD_CHECK(rd_store_insp_queue_req(s, "cam", NULL, img, 3, "image/png", &thr, &a, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_insp_queue_req(s, "cam", NULL, img, 3, "image/png", &sens, &b, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_insp_queue(s, "cam", NULL, img, 3, "image/png", &c, &err) == RD_E_OK, "%s", err.msg);
    RD_CHECK(rd_store_insp_queue_req(s, "cam", NULL, NULL, 0, NULL, &thr, &d, &err) == RD_E_OK, "sync: %s", err.msg);
    rd_store_job *jobs = NULL;
    int n = 0;
    RD_CHECK(rd_store_jobs_pending(s, &jobs, &n, &err) == RD_E_OK && n == 3, "3 pending jobs (got %d)", n);
    if (n == 3) {
        RD_CHECK(jobs[0].id == a && !strcmp(jobs[0].thr_source, "request") && jobs[0].threshold == 0.125 &&
                     isnan(jobs[0].sensitivity) && jobs[0].len == 3,
                 "request threshold kept: '%s' %g %g", jobs[0].thr_source, jobs[0].threshold, jobs[0].sensitivity);
        RD_CHECK(jobs[1].id == b && !strcmp(jobs[1].thr_source, "sensitivity") && jobs[1].threshold == 1.5 &&
                     jobs[1].sensitivity == 0.75,
                 "sensitivity kept: '%s' %g %g", jobs[1].thr_source, jobs[1].threshold, jobs[1].sensitivity);
        RD_CHECK(jobs[2].id == c && jobs[2].thr_source[0] == '\0' && isnan(jobs[2].threshold) &&
                     isnan(jobs[2].sensitivity),
                 "no request threshold: '%s' %g", jobs[2].thr_source, jobs[2].threshold);
    }
    rd_store_jobs_free(jobs, n);
}

int main(void)
{
    rd_err err = {0};
    rd_store *s = rd_store_open(":memory:", &err);
    RD_CHECK(s != NULL, "open: %s", err.msg);
    if (!s) return rd_test_done("test_store_review");
    create_geo(s);
    job_threshold(s);
    rd_store_close(s);
    return rd_test_done("test_store_review");
}
