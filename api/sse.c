/* sse.c — GET /v1/events as Server-Sent Events (text/event-stream).
 *
 * Each event of the engine's bus (engine/events.h) becomes
 *   id: <event id>\nevent: inspection|class\ndata: <JSON>\n\n
 * where an inspection's data is the same view as GET /v1/inspections/{id} and
 * a class's is {"class", "action"}.  A reader resumes after Last-Event-ID (the
 * header, or ?last_event_id=) while the event is still among the last
 * RD_EVENTS_RETAINED; when it is not, an `event: lost` comes first (poll
 * /v1/inspections?after_id= to fill the gap).  Without it the stream starts
 * with the next event.  A `: heartbeat` comment goes out after heartbeat_s
 * (default 15, at most half the request deadline) without events.
 *
 * The body is a libmicrohttpd callback response; the server runs one thread
 * per connection, so the callback waits on the bus in its own connection's
 * thread (no inference worker is involved), and the request-deadline
 * watchdog leaves the connection alone while its reply streams (http.c marks
 * it busy from the handler to the end of the reply); the per-client
 * connection cap still counts it.  The bus closes at shutdown, which ends
 * every stream. */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bodies.h"
#include "engine/events.h"
#include "views.h"

typedef struct sse {
    rd_engine *e;
    int64_t cursor;
    char cls[RD_STORE_NAME_MAX + 8];
    int has_cls;
    int hb_ms;
    char *buf;
    size_t len, off;
    int started;
} sse;

/* An inspection event's data is the inspection's view (or its id, class and
 * status when the row is gone); a class event's is {class, action}. */
static json_t *event_data(rd_engine *e, const rd_event *ev)
{
    json_t *o = NULL;
    if (!strcmp(ev->type, "inspection")) {
        rd_insp_row *row = malloc(sizeof *row);
        rd_err err = {0};
        if (row && rd_engine_insp_get(e, ev->insp_id, row, &err) == RD_E_OK) o = rd_view_inspection(row);
        else o = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)ev->insp_id, "class", ev->cls, "status", ev->action);
        free(row);
    } else {
        o = json_pack("{s:s, s:s}", "class", ev->cls, "action", ev->action);
    }
    return o;
}

char *rd_api_event_json(rd_engine *e, const struct rd_event *ev)
{
    json_t *o = json_pack("{s:I, s:s, s:o}", "event_id", (json_int_t)ev->id, "event", ev->type, "data",
                          event_data(e, ev));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return s;
}

static int fill(sse *s)
{
    rd_event ev;
    int lost = 0;
    free(s->buf);
    s->buf = NULL;
    s->len = s->off = 0;
    if (!s->started) {
        s->started = 1;
        s->buf = strdup("retry: 2000\n: resadd events\n\n");
        s->len = s->buf ? strlen(s->buf) : 0;
        return s->buf ? 0 : -1;
    }
    int r = rd_events_next(rd_engine_events(s->e), s->cursor, s->has_cls ? s->cls : NULL, s->hb_ms, &ev, &lost);
    if (r < 0) return -1;
    char *data = NULL;
    if (r > 0) {
        json_t *o = event_data(s->e, &ev);
        data = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(o);
        if (!data) return -1;
        s->cursor = ev.id;
    } else if (r == 0 && lost) {
        s->cursor = ev.id; /* say it once */
    }
    const char *lostmsg = lost ? "event: lost\ndata: {\"reason\":\"events after Last-Event-ID left the retention\"}\n\n"
                               : "";
    size_t cap = strlen(lostmsg) + (data ? strlen(data) : 0) + 96;
    if (!(s->buf = malloc(cap))) {
        free(data);
        return -1;
    }
    if (r > 0)
        s->len = (size_t)snprintf(s->buf, cap, "%sid: %lld\nevent: %s\ndata: %s\n\n", lostmsg, (long long)ev.id,
                                  ev.type, data);
    else
        s->len = (size_t)snprintf(s->buf, cap, "%s: heartbeat\n\n", lostmsg);
    free(data);
    return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    sse *s = cls;
    (void)pos;
    if (s->off >= s->len && fill(s)) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse *s = cls;
    free(s->buf);
    free(s);
}

int rd_sse_serve(rd_req *r)
{
    const char *last = rd_req_header(r, "Last-Event-ID");
    rd_events_query q;
    rd_body_err be = {0};
    if (!last) last = rd_req_query(r, "last_event_id");
    if (rd_body_events_query(rd_req_query(r, "class"), last, rd_req_query(r, "heartbeat_s"), &q, &be))
        return rd_reply_err(r, 400, be.code, "%s", be.msg);
    sse *s = calloc(1, sizeof *s);
    if (!s) return rd_reply_err(r, 500, "internal", "out of memory");
    s->e = r->e;
    s->cursor = q.has_last ? q.last : rd_events_last(rd_engine_events(r->e));
    if (q.has_cls) snprintf(s->cls, sizeof s->cls, "%s", q.cls), s->has_cls = 1;
    int hb_s = q.heartbeat_s;
    if (r->o->request_deadline_s > 1 && hb_s > r->o->request_deadline_s / 2) hb_s = r->o->request_deadline_s / 2;
    s->hb_ms = hb_s * 1000;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (!resp) {
        free(s);
        return rd_reply_err(r, 500, "internal", "out of memory");
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(r->mc, 200, resp);
    MHD_destroy_response(resp);
    return ret == MHD_YES;
}
