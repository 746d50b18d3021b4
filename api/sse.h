/* sse.h — GET /v1/events: Server-Sent Events of inspection results and class
 * changes (engine/events.h), internal to api/. */
#ifndef RD_API_SSE_H
#define RD_API_SSE_H

#include "req.h"

/* The handler of GET /v1/events (?class=, Last-Event-ID or ?last_event_id=,
 * ?heartbeat_s=). */
int rd_sse_serve(rd_req *r);
/* The body of a webhook delivery, {"event_id", "event", "data"} with data as
 * on the event stream (malloc'ed; rd_engine_opts.render_event). */
struct rd_event;
char *rd_api_event_json(rd_engine *e, const struct rd_event *ev);

#endif
