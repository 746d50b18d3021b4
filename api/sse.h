/* sse.h — GET /v1/events: Server-Sent Events of inspection results and class
 * changes (engine/events.h), internal to api/. */
#ifndef RD_API_SSE_H
#define RD_API_SSE_H

#include "req.h"

/* The handler of GET /v1/events (?class=, Last-Event-ID or ?last_event_id=,
 * ?heartbeat_s=). */
int rd_sse_serve(rd_req *r);

#endif
