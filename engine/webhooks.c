/* webhooks.c — the delivery thread (see webhooks.h). */
#include "webhooks.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define BATCH 16

struct rd_webhooks {
    rd_store *s;
    rd_events *bus;
    rd_webhook_opts o;
    char *(*render)(void *ctx, const rd_event *ev);
    void *ctx;
    pthread_t th;
    pthread_mutex_t mu;
    int stopping, kicked;
    rd_webhook_counts n;
    int64_t cursor;
};

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
    (void)p, (void)u;
    return sz * n;
}

/* ---- which addresses a webhook may reach (see webhooks.h) ---- */
/* a (host order): 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
 * 192.0.0/24, 192.168/16, 198.18/15, 224/4 multicast, 240/4 reserved + broadcast */
static int v4_private(uint32_t a)
{
    unsigned b0 = a >> 24, b1 = (a >> 16) & 0xff, b2 = (a >> 8) & 0xff;
    return b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 100 && (b1 & 0xc0) == 64) || (b0 == 169 && b1 == 254) ||
           (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 0 && b2 == 0) || (b0 == 192 && b1 == 168) ||
           (b0 == 198 && (b1 & 0xfe) == 18) || b0 >= 224;
}

int rd_webhooks_addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) return v4_private(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6) return 1; /* nothing else is expected: refused */
    const uint8_t *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    static const uint8_t v4compat[12], v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
                         nat64[12] = {0, 0x64, 0xff, 0x9b};
    /* ::/96 (with :: and ::1), ::ffff:0:0/96 and 64:ff9b::/96 embed an IPv4 address */
    if (!memcmp(b, v4compat, 12) || !memcmp(b, v4mapped, 12) || !memcmp(b, nat64, 12))
        return v4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    return (b[0] == 0xfe && (b[1] & 0x80) == 0x80) /* fe80::/10 link-local, fec0::/10 site-local */ ||
           (b[0] & 0xfe) == 0xfc /* fc00::/7 unique local */ || b[0] == 0xff /* multicast */;
}

static void addr_text(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN])
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || !inet_ntop(sa->sa_family, a, out, INET6_ADDRSTRLEN))
        snprintf(out, INET6_ADDRSTRLEN, "an address of family %d", sa->sa_family);
}

rd_ecode rd_webhooks_url_check(const char *url, int allow_private, rd_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, h[256];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    rd_ecode rc = RD_E_BADREQ;
    if (!u) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return RD_E_INTERNAL;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        rd_err_set(err, RD_ERR_ARG, "webhook url is not a URL with a host: %.200s", url);
        goto out;
    }
    if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
        rd_err_set(err, RD_ERR_ARG, "webhook url is an http:// or https:// URL, not %.32s://", scheme);
        goto out;
    }
    if (allow_private) {
        rc = RD_E_OK;
        goto out;
    }
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') snprintf(h, sizeof h, "%.*s", (int)(n - 2), host + 1);
    else snprintf(h, sizeof h, "%s", host);
    int g = getaddrinfo(h, NULL, &hints, &res);
    if (g) {
        rd_err_set(err, RD_ERR_ARG, "webhook host %.200s does not resolve (%s), so it cannot be checked for private "
                   "addresses (webhook_allow_private = off)", h, gai_strerror(g));
        goto out;
    }
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (rd_webhooks_addr_private(ai->ai_addr)) {
            char a[INET6_ADDRSTRLEN];
            addr_text(ai->ai_addr, a);
            rd_err_set(err, RD_ERR_ARG, "webhook host %.200s resolves to %s, a loopback, link-local or private "
                       "address: refused unless webhook_allow_private = on", h, a);
            goto out;
        }
    rc = RD_E_OK;
out:
    if (res) freeaddrinfo(res);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* libcurl's open-socket callback: the delivery-time check of the address
 * about to be connected to (the host may resolve elsewhere than at registration). */
typedef struct sock_guard {
    int allow_private;
    char refused[INET6_ADDRSTRLEN]; /* "" or the address refused */
} sock_guard;

static curl_socket_t open_guarded(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    sock_guard *g = ctx;
    if (purpose == CURLSOCKTYPE_IPCXN && !g->allow_private && rd_webhooks_addr_private(&a->addr)) {
        addr_text(&a->addr, g->refused);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* One POST: the HTTP status (2xx = delivered), or 0 with why in errbuf. */
static long post(const rd_webhooks *w, const rd_delivery *d, char errbuf[CURL_ERROR_SIZE])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char sig[40 + 2 * EVP_MAX_MD_SIZE], hdr_id[64], hdr_ev[48];
    size_t blen = strlen(d->body);
    if (!HMAC(EVP_sha256(), d->secret, (int)strlen(d->secret), (const unsigned char *)d->body, blen, mac, &maclen)) {
        snprintf(errbuf, CURL_ERROR_SIZE, "HMAC failed");
        return 0;
    }
    int off = snprintf(sig, sizeof sig, "X-Resadd-Signature: sha256=");
    for (unsigned i = 0; i < maclen; i++) off += snprintf(sig + off, sizeof sig - (size_t)off, "%02x", mac[i]);
    snprintf(hdr_id, sizeof hdr_id, "X-Resadd-Delivery: %lld", (long long)d->id);
    snprintf(hdr_ev, sizeof hdr_ev, "X-Resadd-Event: %s", d->event);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    sock_guard guard = {w->o.allow_private, ""};
    long code = 0;
    errbuf[0] = '\0';
    if (!c) {
        snprintf(errbuf, CURL_ERROR_SIZE, "curl_easy_init failed");
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, sig);
    h = curl_slist_append(h, hdr_id);
    h = curl_slist_append(h, hdr_ev);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)w->o.timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)w->o.timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "resadd-webhooks");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_guarded);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &guard);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else if (guard.refused[0])
        snprintf(errbuf, CURL_ERROR_SIZE, "refused: the host resolves to %s, a loopback, link-local or private "
                 "address (webhook_allow_private = off)", guard.refused);
    else if (!errbuf[0]) snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static void deliver_due(rd_webhooks *w, double *next_at)
{
    rd_delivery d[BATCH];
    int n = 0;
    rd_err err = {0};
    if (rd_store_delivery_due(w->s, now_unix(), d, BATCH, &n, next_at, &err) != RD_E_OK) {
        rd_log(RD_LOG_WARN, "webhooks: reading due deliveries: %s", err.msg);
        *next_at = now_unix() + 1;
        return;
    }
    for (int i = 0; i < n; i++) {
        char eb[CURL_ERROR_SIZE], msg[CURL_ERROR_SIZE + 32];
        long code = post(w, &d[i], eb);
        int ok = code >= 200 && code < 300, attempts = d[i].attempts + 1;
        double next = -1;
        if (!ok && attempts < w->o.max_attempts) next = now_unix() + w->o.backoff_s * pow(2.0, attempts - 1);
        if (!ok && code) snprintf(msg, sizeof msg, "HTTP %ld", code);
        else snprintf(msg, sizeof msg, "%s", ok ? "" : eb);
        if (rd_store_delivery_result(w->s, d[i].id, ok, (int)code, msg, next, &err) != RD_E_OK)
            rd_log(RD_LOG_WARN, "webhooks: recording delivery %lld: %s", (long long)d[i].id, err.msg);
        pthread_mutex_lock(&w->mu);
        if (ok) w->n.delivered++;
        else if (next < 0) w->n.failed_attempts++, w->n.gave_up++;
        else w->n.failed_attempts++;
        pthread_mutex_unlock(&w->mu);
        if (!ok)
            rd_log(next < 0 ? RD_LOG_WARN : RD_LOG_INFO, "webhook %lld delivery %lld attempt %d: %s%s",
                   (long long)d[i].webhook_id, (long long)d[i].id, attempts, msg, next < 0 ? "; giving up" : "");
        if (next >= 0 && (*next_at == 0 || next < *next_at)) *next_at = next;
    }
    if (n == BATCH) *next_at = now_unix(); /* more may be due */
    rd_store_delivery_free(d, n);
}

static void *loop(void *arg)
{
    rd_webhooks *w = arg;
    double next_at = 0;
    deliver_due(w, &next_at); /* what a previous run left pending */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int stop = w->stopping, kicked = w->kicked;
        w->kicked = 0;
        pthread_mutex_unlock(&w->mu);
        if (stop) break;
        int wait_ms = 1000;
        double now = now_unix();
        if (kicked) wait_ms = 0;
        else if (next_at > 0) wait_ms = next_at <= now ? 0 : next_at - now < 1 ? (int)((next_at - now) * 1000) + 1 : 1000;
        rd_event ev;
        int lost = 0, r = rd_events_next(w->bus, w->cursor, NULL, wait_ms, &ev, &lost);
        if (lost) rd_log(RD_LOG_WARN, "webhooks: events left the retention before they were queued");
        if (r == 0 && lost) w->cursor = ev.id;
        if (r > 0) {
            w->cursor = ev.id;
            char *body = w->render(w->ctx, &ev);
            if (body) {
                int k = rd_store_delivery_enqueue(w->s, ev.type, ev.cls, body, now_unix());
                if (k < 0) rd_log(RD_LOG_WARN, "webhooks: could not queue event %lld", (long long)ev.id);
                else if (k > 0) {
                    pthread_mutex_lock(&w->mu);
                    w->n.enqueued += (unsigned long)k;
                    pthread_mutex_unlock(&w->mu);
                    next_at = now_unix();
                }
                free(body);
            }
        } else if (r < 0) {
            pthread_mutex_lock(&w->mu);
            int st = w->stopping;
            pthread_mutex_unlock(&w->mu);
            if (st) break;
            struct timespec ts = {0, 50 * 1000000L}; /* the bus is closed: only deliveries left */
            nanosleep(&ts, NULL);
        }
        if (kicked || (next_at > 0 && next_at <= now_unix())) deliver_due(w, &next_at);
    }
    /* the last events (jobs finished during shutdown) are queued, not lost */
    rd_event ev;
    int lost;
    while (rd_events_next(w->bus, w->cursor, NULL, 0, &ev, &lost) > 0) {
        w->cursor = ev.id;
        char *body = w->render(w->ctx, &ev);
        if (body && rd_store_delivery_enqueue(w->s, ev.type, ev.cls, body, now_unix()) < 0)
            rd_log(RD_LOG_WARN, "webhooks: could not queue event %lld", (long long)ev.id);
        free(body);
    }
    return NULL;
}

rd_webhooks *rd_webhooks_start(rd_store *s, rd_events *bus, const rd_webhook_opts *o,
                               char *(*render)(void *ctx, const rd_event *ev), void *ctx, rd_err *err)
{
    rd_webhooks *w = calloc(1, sizeof *w);
    if (!w) return rd_err_set(err, RD_ERR_NOMEM, "out of memory"), NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(w);
        rd_err_set(err, RD_ERR_STATE, "curl_global_init failed");
        return NULL;
    }
    w->s = s;
    w->bus = bus;
    w->o = *o;
    if (w->o.max_attempts < 1) w->o.max_attempts = 1;
    w->render = render;
    w->ctx = ctx;
    w->cursor = rd_events_last(bus);
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->th, NULL, loop, w)) {
        pthread_mutex_destroy(&w->mu);
        curl_global_cleanup();
        free(w);
        rd_err_set(err, RD_ERR_STATE, "cannot start the webhook thread");
        return NULL;
    }
    return w;
}

void rd_webhooks_kick(rd_webhooks *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->kicked = 1;
    pthread_mutex_unlock(&w->mu);
}

void rd_webhooks_stop(rd_webhooks *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    curl_global_cleanup();
    free(w);
}

void rd_webhooks_counts(rd_webhooks *w, rd_webhook_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    *out = w->n;
    pthread_mutex_unlock(&w->mu);
}
