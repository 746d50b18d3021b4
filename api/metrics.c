/* metrics.c — request counters and the /metrics text (see metrics.h).  A
 * small fixed table: routes are the route table's patterns (plus "other"
 * and "too_large"), so their number is bounded. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/istats.h"

#define MAX_SERIES 256
#define NBUCKETS 12
static const double buckets[NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

typedef struct { char route[64]; int status; unsigned long n; } req_series;
typedef struct { char route[64]; unsigned long b[NBUCKETS]; unsigned long n; double sum; } lat_series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static req_series reqs[MAX_SERIES];
static int nreqs;
static lat_series lats[MAX_SERIES / 4];
static int nlats;

void rd_metrics_request(const char *route, int status, double s)
{
    int i;
    pthread_mutex_lock(&mu);
    for (i = 0; i < nreqs; i++)
        if (reqs[i].status == status && !strcmp(reqs[i].route, route)) break;
    if (i == nreqs && nreqs < MAX_SERIES) {
        snprintf(reqs[i].route, sizeof reqs[i].route, "%s", route);
        reqs[i].status = status;
        nreqs++;
    }
    if (i < nreqs) reqs[i].n++;
    for (i = 0; i < nlats; i++)
        if (!strcmp(lats[i].route, route)) break;
    if (i == nlats && nlats < MAX_SERIES / 4) {
        snprintf(lats[i].route, sizeof lats[i].route, "%s", route);
        nlats++;
    }
    if (i < nlats) {
        for (int b = 0; b < NBUCKETS; b++)
            if (s <= buckets[b]) lats[i].b[b]++;
        lats[i].n++;
        lats[i].sum += s;
    }
    pthread_mutex_unlock(&mu);
}

typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->oom) return;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
}

static void hist(sbuf *b, const char *name, const char *lk, const char *lv, const rd_hist *h, const double *le, int nb)
{
    for (int k = 0; k < nb; k++)
        sb_printf(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %lu\n", name, lk, lv, le[k], h->b[k]);
    sb_printf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %lu\n", name, lk, lv, h->n);
    sb_printf(b, "%s_sum{%s=\"%s\"} %.6f\n%s_count{%s=\"%s\"} %lu\n", name, lk, lv, h->sum, name, lk, lv, h->n);
}

/* issue 14 item 9: inference latency per stage, scores per class, build and
 * model info, webhook delivery counters */
static void integrator_metrics(sbuf *b, rd_engine *e)
{
    rd_istats_snap *s = rd_engine_istats(e);
    if (!s) {
        b->oom = 1;
        return;
    }
    sb_printf(b, "# HELP resadd_inference_stage_seconds Inference latency of done inspections by pipeline stage.\n"
                 "# TYPE resadd_inference_stage_seconds histogram\n");
    for (int i = 0; i < RD_ISTATS_STAGES; i++) {
        rd_hist h = s->stage[i]; /* recorded in ms; exposed in seconds */
        double le[RD_ISTATS_LAT_BUCKETS];
        for (int k = 0; k < RD_ISTATS_LAT_BUCKETS; k++) le[k] = rd_istats_lat_le[k] / 1000.0;
        h.sum /= 1000.0;
        hist(b, "resadd_inference_stage_seconds", "stage", rd_istats_stage_names[i], &h, le, RD_ISTATS_LAT_BUCKETS);
    }
    sb_printf(b, "# HELP resadd_inspection_score Image scores of done inspections by class (score units).\n"
                 "# TYPE resadd_inspection_score histogram\n");
    for (int i = 0; i < s->ncls; i++)
        hist(b, "resadd_inspection_score", "class", s->cls[i], &s->score[i], rd_istats_score_le,
             RD_ISTATS_SCORE_BUCKETS);
    free(s);
    const rd_model_info *in = rd_engine_info(e);
    sb_printf(b, "# HELP resadd_build_info The running resadd.\n# TYPE resadd_build_info gauge\n"
                 "resadd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
    if (in)
        sb_printf(b, "# HELP resadd_model_info The loaded model.\n# TYPE resadd_model_info gauge\n"
                     "resadd_model_info{arch=\"%s\",scorer=\"%s\",model_id=\"%s\",model_sha256=\"%s\"} 1\n",
                  in->arch, in->scorer, in->model_id, in->model_sha256);
    unsigned long w[4];
    rd_engine_webhook_counts(e, w);
    sb_printf(b, "# HELP resadd_webhook_deliveries_total Webhook delivery attempts since start by result.\n"
                 "# TYPE resadd_webhook_deliveries_total counter\n"
                 "resadd_webhook_deliveries_total{result=\"delivered\"} %lu\n"
                 "resadd_webhook_deliveries_total{result=\"failed\"} %lu\n"
                 "# HELP resadd_webhook_gave_up_total Webhook deliveries marked failed after their last attempt.\n"
                 "# TYPE resadd_webhook_gave_up_total counter\nresadd_webhook_gave_up_total %lu\n"
                 "# HELP resadd_webhook_queued_total Webhook deliveries queued since start.\n"
                 "# TYPE resadd_webhook_queued_total counter\nresadd_webhook_queued_total %lu\n",
              w[0], w[1], w[2], w[3]);
}

char *rd_metrics_render(rd_engine *e, int ready)
{
    static rd_engine_count counts[256];
    static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
    sbuf b = {0};
    int depth = rd_engine_queue_depth(e), cap = rd_engine_queue_capacity(e), workers = rd_engine_workers(e);
    pthread_mutex_lock(&mu);
    sb_printf(&b, "# HELP resadd_http_requests_total HTTP requests by route and status.\n"
                  "# TYPE resadd_http_requests_total counter\n");
    for (int i = 0; i < nreqs; i++)
        sb_printf(&b, "resadd_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n", reqs[i].route,
                  reqs[i].status, reqs[i].n);
    sb_printf(&b, "# HELP resadd_http_request_duration_seconds HTTP request latency by route.\n"
                  "# TYPE resadd_http_request_duration_seconds histogram\n");
    for (int i = 0; i < nlats; i++) {
        for (int k = 0; k < NBUCKETS; k++)
            sb_printf(&b, "resadd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                      lats[i].route, buckets[k], lats[i].b[k]);
        sb_printf(&b, "resadd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n", lats[i].route,
                  lats[i].n);
        sb_printf(&b, "resadd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", lats[i].route, lats[i].sum);
        sb_printf(&b, "resadd_http_request_duration_seconds_count{route=\"%s\"} %lu\n", lats[i].route, lats[i].n);
    }
    sb_printf(&b, "# HELP resadd_inspections_total Inspections by class and verdict.\n"
                  "# TYPE resadd_inspections_total counter\n");
    pthread_mutex_unlock(&mu);
    pthread_mutex_lock(&cmu);
    int n = rd_engine_counts(e, counts, (int)(sizeof counts / sizeof *counts));
    for (int i = 0; i < n; i++)
        sb_printf(&b, "resadd_inspections_total{class=\"%s\",verdict=\"%s\"} %lu\n", counts[i].cls,
                  counts[i].verdict, counts[i].n);
    pthread_mutex_unlock(&cmu);
    rd_engine_mem mem;
    rd_engine_memory(e, &mem);
    sb_printf(&b,
              "# HELP resadd_classes_loaded Classes whose reference sets are in memory (the rest load on first use).\n"
              "# TYPE resadd_classes_loaded gauge\nresadd_classes_loaded %d\n"
              "# HELP resadd_class_memory_bytes Bytes of the loaded reference sets (pool_memory_mb bounds them).\n"
              "# TYPE resadd_class_memory_bytes gauge\nresadd_class_memory_bytes %zu\n"
              "# HELP resadd_class_loads_total Reference sets loaded, by how: stored calibration or built (leave-one-out).\n"
              "# TYPE resadd_class_loads_total counter\nresadd_class_loads_total{from=\"stored\"} %lu\n"
              "resadd_class_loads_total{from=\"built\"} %lu\n"
              "# HELP resadd_class_evictions_total Idle reference sets evicted to stay within the budget.\n"
              "# TYPE resadd_class_evictions_total counter\nresadd_class_evictions_total %lu\n",
              mem.loaded, mem.bytes, mem.loads_stored, mem.loads_built, mem.evictions);
    sb_printf(&b,
              "# HELP resadd_queue_depth Inference jobs waiting or running.\n# TYPE resadd_queue_depth gauge\n"
              "resadd_queue_depth %d\n"
              "# HELP resadd_queue_capacity Bound of the inference queue.\n# TYPE resadd_queue_capacity gauge\n"
              "resadd_queue_capacity %d\n"
              "# HELP resadd_workers Inference worker threads.\n# TYPE resadd_workers gauge\nresadd_workers %d\n"
              "# HELP resadd_ready 1 when the model is loaded and the database writable.\n"
              "# TYPE resadd_ready gauge\nresadd_ready %d\n",
              depth, cap, workers, ready);
    integrator_metrics(&b, e);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
