/* test_store_integrator.c — the store side of issue 14 on an in-memory database:
 *  - seq: rows get completion sequence numbers in the order they finish (not
 *    their ids), failures too, several orphans at once distinct ones; after_id
 *    pages ascending on seq with next/has_more and never shows a queued row;
 *  - verdict columns round-trip (sensitivity NULL when not given);
 *  - external ids: the newest row of a class, bounded by `since`; list filter;
 *  - webhooks: a delivery per matching hook (events and class filters), due /
 *    next_at, retry then delivered, given up, counts per hook, cascade on delete. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sql/store.h"
#include "testutil.h"

static void finish(rd_store *s, int64_t id, double score)
{
    rd_err err = {0};
    rd_store_insp_done d = {.score = score, .threshold = 2, .anomalous = score >= 2, .scorer = "resad",
                            .timings_json = "{}", .has_verdict = 1, .confidence = 0.5, .anomalous_area = 0.25,
                            .regions_json = "[{\"bbox\":[1,2,3,4]}]", .regions_total = 3,
                            .threshold_source = "request", .sensitivity = NAN};
    RD_CHECK(rd_store_insp_finish(s, id, &d, &err) == RD_E_OK, "finish %lld: %s", (long long)id, err.msg);
}

static void seq_paging(rd_store *s)
{
    rd_err err = {0};
    int64_t id[6];
    for (int i = 0; i < 6; i++)
        RD_CHECK(rd_store_insp_queue(s, "alpha", i == 0 ? "part-1" : NULL, NULL, 0, NULL, &id[i], &err) == RD_E_OK,
                 "%s", err.msg);
    finish(s, id[2], 1); /* finishes first */
    finish(s, id[0], 3);
    RD_CHECK(rd_store_insp_fail(s, id[1], "invalid_image", "bad", &err) == RD_E_OK, "fail");
    rd_insp_row r;
    int64_t want[3] = {id[2], id[0], id[1]};
    for (int i = 0; i < 3; i++)
        RD_CHECK(rd_store_insp_get(s, want[i], &r, &err) == RD_E_OK && r.seq == i + 1 && (r.present & 1u << RD_INSP_SEQ),
                 "row %lld seq %lld, want %d", (long long)want[i], (long long)r.seq, i + 1);
    RD_CHECK(rd_store_insp_get(s, id[0], &r, &err) == RD_E_OK && r.confidence == 0.5 && r.anomalous_area == 0.25 &&
                 r.regions_total == 3 && !strcmp(r.regions, "[{\"bbox\":[1,2,3,4]}]") &&
                 !strcmp(r.threshold_source, "request") && !(r.present & 1u << RD_INSP_SENS),
             "verdict columns");
    RD_CHECK(rd_store_insp_get(s, id[3], &r, &err) == RD_E_OK && !(r.present & 1u << RD_INSP_SEQ), "queued: no seq");
    rd_insp_query q = {.anomalous = -1, .limit = 2, .after_set = 1};
    rd_insp_page p;
    RD_CHECK(rd_store_insp_list(s, &q, &p, &err) == RD_E_OK && p.n == 2 && p.rows[0].id == id[2] &&
                 p.rows[1].id == id[0] && p.next == 2 && p.has_more,
             "first page n %d next %lld more %d", p.n, (long long)p.next, p.has_more);
    free(p.rows);
    q.after_id = 2;
    RD_CHECK(rd_store_insp_list(s, &q, &p, &err) == RD_E_OK && p.n == 1 && p.rows[0].id == id[1] && p.next == 3 &&
                 !p.has_more,
             "second page");
    free(p.rows);
    /* a restart fails the three queued rows at once: distinct seqs above 3 */
    RD_CHECK(rd_store_insp_fail_orphans(s, "restart") == 3, "orphans");
    q.after_id = 3;
    q.limit = 10;
    RD_CHECK(rd_store_insp_list(s, &q, &p, &err) == RD_E_OK && p.n == 3 && p.rows[0].seq > 3 &&
                 p.rows[0].seq < p.rows[1].seq && p.rows[1].seq < p.rows[2].seq && !p.has_more,
             "orphans: %d rows", p.n);
    free(p.rows);
    /* external ids */
    RD_CHECK(rd_store_insp_by_extid(s, "alpha", "part-1", NULL, &r, &err) == RD_E_OK && r.id == id[0], "by extid");
    RD_CHECK(rd_store_insp_by_extid(s, "beta", "part-1", NULL, &r, &err) == RD_E_NOTFOUND, "other class");
    RD_CHECK(rd_store_insp_by_extid(s, "alpha", "part-1", "2999-01-01T00:00:00.000Z", &r, &err) == RD_E_NOTFOUND,
             "outside the window");
    q = (rd_insp_query){.anomalous = -1, .limit = 10, .cls = "alpha", .external_id = "part-1"};
    RD_CHECK(rd_store_insp_list(s, &q, &p, &err) == RD_E_OK && p.n == 1 && p.rows[0].id == id[0], "list by extid");
    free(p.rows);
}

static void webhooks(rd_store *s)
{
    rd_err err = {0};
    int64_t h1, h2, h3;
    RD_CHECK(rd_store_webhook_add(s, "http://127.0.0.1:9/a", "inspection", "alpha", "secret-1", &h1, &err) == RD_E_OK,
             "%s", err.msg);
    RD_CHECK(rd_store_webhook_add(s, "http://127.0.0.1:9/b", "*", NULL, "secret-2", &h2, &err) == RD_E_OK, "add");
    RD_CHECK(rd_store_webhook_add(s, "http://127.0.0.1:9/c", "class", NULL, "secret-3", &h3, &err) == RD_E_OK, "add");
    RD_CHECK(rd_store_delivery_enqueue(s, "inspection", "alpha", "{\"n\":1}", 100) == 2, "alpha inspection: h1, h2");
    RD_CHECK(rd_store_delivery_enqueue(s, "inspection", "beta", "{\"n\":2}", 100) == 1, "beta inspection: h2");
    RD_CHECK(rd_store_delivery_enqueue(s, "class", "beta", "{\"n\":3}", 500) == 2, "class event: h2, h3");
    rd_delivery d[8];
    int n;
    double next;
    RD_CHECK(rd_store_delivery_due(s, 99, d, 8, &n, &next, &err) == RD_E_OK && n == 0 && next == 100, "none due yet");
    RD_CHECK(rd_store_delivery_due(s, 100, d, 8, &n, &next, &err) == RD_E_OK && n == 3 && next == 500 &&
                 !strcmp(d[0].secret, "secret-1") && !strcmp(d[0].body, "{\"n\":1}") && d[0].attempts == 0,
             "due %d next %g", n, next);
    int64_t first = d[0].id, second = d[1].id, third = d[2].id;
    rd_store_delivery_free(d, n);
    RD_CHECK(rd_store_delivery_result(s, first, 0, 500, "HTTP 500", 200, &err) == RD_E_OK, "retry later");
    RD_CHECK(rd_store_delivery_result(s, second, 1, 200, "", -1, &err) == RD_E_OK, "delivered");
    RD_CHECK(rd_store_delivery_result(s, third, 0, 0, "refused", -1, &err) == RD_E_OK, "given up");
    RD_CHECK(rd_store_delivery_due(s, 150, d, 8, &n, &next, &err) == RD_E_OK && n == 0 && next == 200, "backoff");
    RD_CHECK(rd_store_delivery_due(s, 200, d, 8, &n, &next, &err) == RD_E_OK && n == 1 && d[0].id == first &&
                 d[0].attempts == 1,
             "retry due");
    rd_store_delivery_free(d, n);
    RD_CHECK(rd_store_delivery_result(s, first, 1, 200, "", -1, &err) == RD_E_OK, "delivered on retry");
    rd_webhook_row w;
    RD_CHECK(rd_store_webhook_get(s, h1, &w, &err) == RD_E_OK && w.delivered == 1 && w.pending == 0 &&
                 w.last_status == 200 && !strcmp(w.cls, "alpha") && !strcmp(w.events, "inspection"),
             "h1 counts %lld/%lld status %d", (long long)w.delivered, (long long)w.pending, w.last_status);
    RD_CHECK(rd_store_webhook_get(s, h2, &w, &err) == RD_E_OK && w.delivered == 1 && w.failed == 1 && w.pending == 1,
             "h2 counts");
    RD_CHECK(rd_store_webhook_delete(s, h2, &err) == RD_E_OK && rd_store_webhook_get(s, h2, &w, &err) == RD_E_NOTFOUND,
             "delete");
    RD_CHECK(rd_store_webhook_delete(s, h2, &err) == RD_E_NOTFOUND, "delete twice");
    RD_CHECK(rd_store_delivery_due(s, 1000, d, 8, &n, &next, &err) == RD_E_OK && n == 1 && !strcmp(d[0].event, "class"),
             "h2's deliveries went with it: %d", n);
    rd_store_delivery_free(d, n);
}

int main(void)
{
    rd_err err = {0};
    rd_store *s = rd_store_open(":memory:", &err);
    RD_CHECK(s != NULL, "%s", err.msg);
    if (!s) return rd_test_done("test_store_integrator");
    seq_paging(s);
    webhooks(s);
    rd_store_close(s);
    return rd_test_done("test_store_integrator");
}
