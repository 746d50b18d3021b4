/* metrics.c — request counters and the /metrics text (see metrics.h).  A
 * small fixed table: routes are the route table's patterns (plus "other"
 * and "too_large"), so their number is bounded. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    sb_printf(&b,
              "# HELP resadd_queue_depth Inference jobs waiting or running.\n# TYPE resadd_queue_depth gauge\n"
              "resadd_queue_depth %d\n"
              "# HELP resadd_queue_capacity Bound of the inference queue.\n# TYPE resadd_queue_capacity gauge\n"
              "resadd_queue_capacity %d\n"
              "# HELP resadd_workers Inference worker threads.\n# TYPE resadd_workers gauge\nresadd_workers %d\n"
              "# HELP resadd_ready 1 when the model is loaded and the database writable.\n"
              "# TYPE resadd_ready gauge\nresadd_ready %d\n",
              depth, cap, workers, ready);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
