/* events.h — the in-memory event bus behind GET /v1/events (Server-Sent
 * Events): inspection results and class changes, each with a monotonically
 * increasing id, kept in a ring of the last `capacity` events (the retention
 * a client can resume within with Last-Event-ID).  Publishing never blocks on
 * readers: it copies a few words into the ring under a mutex and signals.
 * Events name what changed (type, class, inspection id, action); api/ turns
 * them into JSON when it sends them.  Ids start at 1000 × the unix time of
 * the start, so they keep increasing across restarts; the ring itself does
 * not survive one (a reader resuming from before it gets a `lost` event and
 * catches up with GET /v1/inspections?after_id=). */
#ifndef RD_EVENTS_H
#define RD_EVENTS_H

#include <stdint.h>

#include "sql/store.h"

typedef struct rd_events rd_events;

typedef struct rd_event {
    int64_t id;
    char type[16];   /* "inspection" | "class" */
    char cls[RD_STORE_NAME_MAX + 8];
    int64_t insp_id; /* inspection events */
    char action[16]; /* class events: created | updated | deleted | references */
} rd_event;

rd_events *rd_events_new(int capacity);
void rd_events_free(rd_events *b);
/* Appends an event; returns its id. */
int64_t rd_events_publish(rd_events *b, const char *type, const char *cls, int64_t insp_id, const char *action);
/* The oldest retained event with id > after whose class is cls (NULL = any)
 * into *out: 1; none within timeout_ms: 0; the bus was closed: -1.  *lost is
 * set to 1 when events after `after` have already left the ring.  On 0,
 * out->id is the cursor to continue from (past lost events). */
int rd_events_next(rd_events *b, int64_t after, const char *cls, int timeout_ms, rd_event *out, int *lost);
/* The id of the newest event (the start's base when none yet). */
int64_t rd_events_last(rd_events *b);
/* Wakes every waiter for good (shutdown). */
void rd_events_close(rd_events *b);

#endif
