/* events.c — the event ring (see events.h). */
#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rd_events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rd_event *ring;
    int cap;
    int64_t last; /* id of the newest event; event k is ring[(k - 1) % cap] */
    int64_t first; /* id of this run's first event */
    int closed;
};

rd_events *rd_events_new(int capacity)
{
    rd_events *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = capacity > 0 ? capacity : 1;
    b->ring = calloc((size_t)b->cap, sizeof *b->ring);
    if (!b->ring) {
        free(b);
        return NULL;
    }
    /* ids continue above the previous run's (unless it averaged more than
     * 1000 events a second): a Last-Event-ID from before a restart is older
     * than this run's first event, so its reader is told it lost events */
    b->last = (int64_t)time(NULL) * 1000;
    b->first = b->last + 1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    return b;
}

void rd_events_free(rd_events *b)
{
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b->ring);
    free(b);
}

int64_t rd_events_publish(rd_events *b, const char *type, const char *cls, int64_t insp_id, const char *action)
{
    pthread_mutex_lock(&b->mu);
    int64_t id = ++b->last;
    rd_event *e = &b->ring[(id - 1) % b->cap];
    memset(e, 0, sizeof *e);
    e->id = id;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->cls, sizeof e->cls, "%s", cls ? cls : "");
    e->insp_id = insp_id;
    snprintf(e->action, sizeof e->action, "%s", action ? action : "");
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return id;
}

int64_t rd_events_last(rd_events *b)
{
    pthread_mutex_lock(&b->mu);
    int64_t id = b->last;
    pthread_mutex_unlock(&b->mu);
    return id;
}

int rd_events_next(rd_events *b, int64_t after, const char *cls, int timeout_ms, rd_event *out, int *lost)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int ret = 0;
    *lost = 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->closed) {
            ret = -1;
            break;
        }
        int64_t oldest = b->last - b->cap + 1 > b->first ? b->last - b->cap + 1 : b->first;
        if (after + 1 < oldest) {
            *lost = 1;
            after = oldest - 1;
        }
        for (int64_t k = after + 1; k <= b->last; k++) {
            const rd_event *e = &b->ring[(k - 1) % b->cap];
            if (!cls || !strcmp(e->cls, cls)) {
                *out = *e;
                ret = 1;
                goto out;
            }
            after = k; /* skipped: not this reader's class */
        }
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT) {
            out->id = after; /* where to continue (past lost or other classes' events) */
            break;
        }
    }
out:
    pthread_mutex_unlock(&b->mu);
    return ret;
}

void rd_events_close(rd_events *b)
{
    pthread_mutex_lock(&b->mu);
    b->closed = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}
