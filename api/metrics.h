/* metrics.h — in-process counters for GET /metrics (Prometheus text format):
 * requests by route and status, request latency histograms by route, and
 * inspections by class and verdict.  Thread-safe. */
#ifndef RD_METRICS_H
#define RD_METRICS_H

#include <stddef.h>

void rd_metrics_request(const char *route, int status, double seconds);
/* verdict: "ok", "anomalous" or "failed" */
void rd_metrics_inspection(const char *cls, const char *verdict);
/* Appends the exposition text; returns a malloc'ed string. */
char *rd_metrics_render(int queue_depth, int queue_capacity, int workers, int ready);

#endif
