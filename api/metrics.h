/* metrics.h — GET /metrics (Prometheus text format 0.0.4): HTTP requests by
 * route (the route table's pattern) and status, latency histograms by route,
 * and, from the engine's counters, inspections by class and verdict plus the
 * queue gauges.  The request counters are thread-safe. */
#ifndef RD_API_METRICS_H
#define RD_API_METRICS_H

#include "engine/engine.h"

void rd_metrics_request(const char *route, int status, double seconds);
/* The exposition text (malloc'ed), or NULL on out of memory. */
char *rd_metrics_render(rd_engine *e, int ready);

#endif
