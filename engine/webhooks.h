/* webhooks.h — webhook deliveries: one thread follows the event bus
 * (events.h), turns each event into a JSON body (the render callback the
 * composition root injects from api/), stores one pending delivery per
 * matching hook (sql/005_integrator.sql: persisted, so a restart resumes
 * them), and POSTs due deliveries with libcurl, signed
 *   X-Resadd-Signature: sha256=<hex HMAC-SHA256(secret, body)>
 * (libcrypto).  A non-2xx answer, a refused connection or a timeout is
 * retried after backoff_s · 2^(attempts − 1) seconds, until max_attempts;
 * then the delivery is marked failed.  Nothing here runs on the inspection
 * path: publishing an event only writes to the bus's ring.
 *
 * Unless allow_private is set (webhook_allow_private), a webhook may only
 * reach public addresses: rd_webhooks_url_check refuses at registration a
 * host resolving to loopback, link-local, private (RFC 1918, unique local),
 * shared (100.64/10), unspecified, multicast or reserved addresses, and every
 * delivery checks the address it is about to connect to again (libcurl's
 * open-socket callback: DNS may have changed since), a refused one being a
 * failed attempt whose last_error names the address. */
#ifndef RD_WEBHOOKS_H
#define RD_WEBHOOKS_H

#include <sys/socket.h>

#include "events.h"
#include "sql/store.h"

typedef struct rd_webhooks rd_webhooks;

typedef struct rd_webhook_opts {
    int timeout_s;     /* per attempt */
    int max_attempts;
    double backoff_s;  /* first retry delay */
    int allow_private; /* 1: loopback/link-local/private hosts may be reached */
} rd_webhook_opts;

/* Delivery counters since start (for /metrics). */
typedef struct rd_webhook_counts {
    unsigned long delivered, failed_attempts, gave_up, enqueued;
} rd_webhook_counts;

/* render(ctx, ev) returns the malloc'ed JSON body of an event (NULL: skip). */
rd_webhooks *rd_webhooks_start(rd_store *s, rd_events *bus, const rd_webhook_opts *o,
                               char *(*render)(void *ctx, const rd_event *ev), void *ctx, rd_err *err);
/* Joins the thread (pending deliveries stay in the database). */
void rd_webhooks_stop(rd_webhooks *w);
void rd_webhooks_counts(rd_webhooks *w, rd_webhook_counts *out);
/* Wakes the thread (a hook was added). */
void rd_webhooks_kick(rd_webhooks *w);

/* Whether url may be registered: http:// or https:// with a host and, unless
 * allow_private, a host whose every address (getaddrinfo) is public; a host
 * that does not resolve is refused too (it cannot be checked).  RD_E_OK, or
 * RD_E_BADREQ with why in err.  Blocks for the DNS lookup. */
rd_ecode rd_webhooks_url_check(const char *url, int allow_private, rd_err *err);
/* 1 when a webhook may not reach sa without allow_private (the ranges above;
 * an IPv4-mapped or NAT64 IPv6 address by its IPv4), else 0. */
int rd_webhooks_addr_private(const struct sockaddr *sa);

#endif
