/* http.c — resadd's HTTP plumbing on libmicrohttpd (see http.h): one thread
 * per connection, the route table's matcher run as soon as the headers are
 * in, then auth and the body's type and size checked before any body byte is
 * buffered; the handler runs once the body is complete.
 *
 * Slow clients: MHD's own timeout only counts idle time, so a client that
 * trickles one byte a second would hold its connection (and, in numbers,
 * every slot) forever.  A watchdog thread therefore closes (shutdown(2))
 * every connection whose request has not arrived in full within
 * request_deadline_s of the connection's start or of its previous reply;
 * the handler phase (waiting for inference) is exempt.  With a cap on
 * connections per client address, one client cannot take every slot. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "browser.h"
#include "errors.h"
#include "metrics.h"
#include "multipart.h"
#include "req.h"
#include "sha256.h"
#include "views.h"

#define MAX_PARTS 64
#define SMALL_BODY 65536  /* what a route without a body may still send */
#define MAX_URL 8192
#define MAX_ARGS 64

typedef struct slot {
    int used, busy;
    MHD_socket fd;
    double start;
} slot;

struct rd_http {
    const rd_api_opts *o;
    rd_engine *e;
    struct MHD_Daemon *d;
    /* the deadline watchdog */
    pthread_mutex_t mu;
    slot *slots;
    int nslots;
    pthread_t wd;
    int wd_started, stopping;
    pthread_cond_t wd_cv;
    unsigned char secret[32]; /* signs short-lived image URLs (browser.h) */
};

typedef struct conn {
    rd_http *h;
    double t0;
    rd_match m;
    int answered;     /* a reply was queued before the body */
    int too_large;
    size_t limit;     /* body bytes this route may send */
    uint8_t *body;
    size_t len, cap;
    char route[64];
    char method[8], url[256]; /* for the audit line */
    int64_t who;              /* the token's id; 0 = none (auth off or an open route) */
    char scope[16];
    const char *xhdr[4][2]; /* extra reply headers a handler added (rd_req_add_header) */
    int nxhdr;
} conn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The audit log: one line for every change that succeeded (classes,
 * thresholds, references, tokens, webhooks: every POST, PATCH, PUT or DELETE
 * except inspections) with who made it; log lines carry when. */
static void audit(const conn *c, int status)
{
    if (status >= 400 || !c->m.route || !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD") ||
        !strcmp(c->m.route->pattern, "/v1/classes/{name}/inspections"))
        return;
    if (c->who)
        rd_log(RD_LOG_INFO, "audit: %s %s -> %d by token %lld (%s)", c->method, c->url, status, (long long)c->who,
               c->scope);
    else
        rd_log(RD_LOG_INFO, "audit: %s %s -> %d by anyone (auth off)", c->method, c->url, status);
}

/* CORS: the allowed origin (cors_origins "*" or a space-separated list), or NULL. */
static const char *cors_origin(struct MHD_Connection *mc, const rd_http *h)
{
    const char *list = h->o->cors_origins, *o = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Origin");
    size_t n = o ? strlen(o) : 0;
    if (!list || !*list || !o || !n) return NULL;
    if (!strcmp(list, "*")) return "*";
    for (const char *p = list; (p = strstr(p, o)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) return o;
    return NULL;
}

static void cors(struct MHD_Connection *mc, const conn *c, struct MHD_Response *r)
{
    const char *o = cors_origin(mc, c->h);
    if (!o) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", o);
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers",
                            "ETag, Location, Retry-After, Idempotent-Replay, X-Request-Id");
}

int rd_req_sign(rd_req *r, const char *path, long long exp, const char *kind, char out[65])
{
    const conn *c = r->conn;
    return rd_browser_sign(c->h->secret, sizeof c->h->secret, path, exp, kind, out);
}

/* A signed URL (browser.h) in place of a token: GET image routes only. */
static int signed_ok(struct MHD_Connection *mc, const conn *c, const char *url)
{
    const char *exp = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "exp");
    const char *sig = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "sig");
    const char *kind = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "kind");
    char want[RD_SIGN_HEX], *end;
    if (!exp || !sig || strcmp(c->method, "GET") || !rd_browser_signable(c->m.route->pattern)) return 0;
    long long e = strtoll(exp, &end, 10);
    if (*end || end == exp || e < (long long)time(NULL) || strlen(sig) != 64) return 0;
    if (rd_browser_sign(c->h->secret, sizeof c->h->secret, url, e, kind ? kind : "", want)) return 0;
    unsigned char d = 0; /* compared in constant time */
    for (int i = 0; i < 64; i++) d |= (unsigned char)(want[i] ^ sig[i]);
    return d == 0;
}

/* ---- replies ---- */
static enum MHD_Result queue(struct MHD_Connection *mc, conn *c, int status, const char *ctype, void *data,
                             size_t len, int must_free, const char *location, int retry, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    int own_cc = 0;
    for (int i = 0; i < c->nxhdr; i++) own_cc |= !strcasecmp(c->xhdr[i][0], "Cache-Control");
    if (!own_cc) MHD_add_response_header(r, "Cache-Control", "no-store");
    cors(mc, c, r);
    if (location) MHD_add_response_header(r, "Location", location);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (retry) {
        char b[16];
        snprintf(b, sizeof b, "%d", retry);
        MHD_add_response_header(r, "Retry-After", b);
    }
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"resadd\"");
    for (int i = 0; i < c->nxhdr; i++) MHD_add_response_header(r, c->xhdr[i][0], c->xhdr[i][1]);
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    rd_metrics_request(c->route[0] ? c->route : "other", status, now_s() - c->t0);
    audit(c, status);
    return ret;
}

static enum MHD_Result queue_json(struct MHD_Connection *mc, conn *c, int status, json_t *o, const char *loc,
                                  const char *allow)
{
    /* 9 significant digits: a float (scores, thresholds) round-trips, so a
     * client can send back exactly the value it was shown */
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    return queue(mc, c, status, "application/json", s, n, 1, loc, status == 503 ? 1 : 0, allow);
}

static enum MHD_Result queue_err(struct MHD_Connection *mc, conn *c, int status, const char *code, const char *allow,
                                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result queue_err(struct MHD_Connection *mc, conn *c, int status, const char *code, const char *allow,
                                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return queue_json(mc, c, status, rd_view_error(code, msg), NULL, allow);
}

const char *rd_req_header(rd_req *r, const char *k) { return MHD_lookup_connection_value(r->mc, MHD_HEADER_KIND, k); }
const char *rd_req_query(rd_req *r, const char *k)
{
    return MHD_lookup_connection_value(r->mc, MHD_GET_ARGUMENT_KIND, k);
}

void rd_req_add_header(rd_req *r, const char *k, const char *v)
{
    conn *c = r->conn;
    if (c->nxhdr < (int)(sizeof c->xhdr / sizeof *c->xhdr)) c->xhdr[c->nxhdr][0] = k, c->xhdr[c->nxhdr++][1] = v;
}

int rd_reply_json(rd_req *r, int status, json_t *o) { return queue_json(r->mc, r->conn, status, o, NULL, NULL); }
int rd_reply_json_loc(rd_req *r, int status, json_t *o, const char *loc)
{
    return queue_json(r->mc, r->conn, status, o, loc, NULL);
}
int rd_reply_buf(rd_req *r, int status, const char *ctype, void *data, size_t len, int must_free)
{
    return queue(r->mc, r->conn, status, ctype, data, len, must_free, NULL, 0, NULL);
}

int rd_reply_err(rd_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return queue_json(r->mc, r->conn, status, rd_view_error(code, msg), NULL, NULL);
}

int rd_reply_code(rd_req *r, rd_ecode code, const rd_err *err)
{
    const char *msg = err && err->msg[0] ? err->msg : rd_api_code_name(code);
    return rd_reply_err(r, rd_api_status(code), rd_api_code_name(code), "%s", msg);
}

/* ---- request checks ---- */
static int ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    return !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int image_ctype(const char *ct)
{
    return ctype_is(ct, "image/jpeg") || ctype_is(ct, "image/png") || ctype_is(ct, "image/jpg");
}

int rd_req_uploads(rd_req *r, rd_upload *u, int max)
{
    rd_mpart parts[MAX_PARTS];
    char boundary[80], msg[256] = "";
    int np = 0, n = 0;
    if (!ctype_is(r->ctype, "multipart/form-data")) {
        if (!r->len) return rd_reply_err(r, 400, "no_image", "empty body"), -1;
        u[0].data = r->body;
        u[0].len = r->len;
        u[0].content_type = r->ctype;
        return 1;
    }
    if (rd_multipart_boundary(r->ctype, boundary, sizeof boundary) ||
        rd_multipart_parse(r->body, r->len, boundary, parts, MAX_PARTS, &np, msg, sizeof msg)) {
        if (np == MAX_PARTS) return rd_reply_err(r, 413, "too_many_parts", "at most %d parts per request", MAX_PARTS), -1;
        return rd_reply_err(r, 400, "bad_multipart", "%s", np >= 0 && msg[0] ? msg : "malformed multipart/form-data body"),
               -1;
    }
    for (int i = 0; i < np; i++) {
        if (!parts[i].is_file) continue;
        if (parts[i].ctype[0] && !image_ctype(parts[i].ctype) && !ctype_is(parts[i].ctype, "application/octet-stream"))
            return rd_reply_err(r, 415, "unsupported_media_type", "part %d is %s; send image/jpeg or image/png", i + 1,
                                parts[i].ctype),
                   -1;
        if (n == max) return rd_reply_err(r, 413, "too_many_parts", "at most %d images per request", max), -1;
        u[n].data = parts[i].data;
        u[n].len = parts[i].len;
        u[n].content_type = parts[i].ctype;
        n++;
    }
    if (!n) return rd_reply_err(r, 400, "no_image", "the multipart body has no file part"), -1;
    return n;
}

/* Checks the token against the scope; 0 = allowed, else a reply was queued. */
static int authorize(struct MHD_Connection *mc, conn *c, rd_scope need, enum MHD_Result *ret)
{
    static const char *const names[] = {"", "read", "inspect", "admin"};
    char hash[RD_SHA256_HEX], scope[16];
    if (!c->h->o->auth || need == RD_SCOPE_NONE) return 0;
    const char *a = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!a && need == RD_SCOPE_READ && signed_ok(mc, c, c->url)) {
        snprintf(c->scope, sizeof c->scope, "signed-url");
        return 0;
    }
    if (!a || strncasecmp(a, "Bearer ", 7) != 0 || !a[7]) {
        *ret = queue_err(mc, c, 401, "unauthorized", NULL,
                         "send Authorization: Bearer <token> (create one with `resadd token create`)");
        return -1;
    }
    const char *tok = a + 7;
    while (*tok == ' ') tok++;
    rd_ecode rc = RD_E_NOTFOUND;
    if (strlen(tok) <= 256 && rd_sha256_hex(tok, strlen(tok), hash) == 0)
        rc = rd_engine_token_auth(c->h->e, hash, scope, &c->who);
    if (rc != RD_E_OK && rc != RD_E_NOTFOUND) {
        *ret = queue_err(mc, c, rd_api_status(rc), rd_api_code_name(rc), NULL, "cannot check the token: database error");
        return -1;
    }
    if (rc != RD_E_OK) {
        *ret = queue_err(mc, c, 401, "unauthorized", NULL, "unknown, expired or revoked token");
        return -1;
    }
    snprintf(c->scope, sizeof c->scope, "%s", scope);
    rd_scope have = !strcmp(scope, "admin") ? RD_SCOPE_ADMIN : !strcmp(scope, "inspect") ? RD_SCOPE_INSPECT : RD_SCOPE_READ;
    if (have < need) {
        *ret = queue_err(mc, c, 403, "forbidden", NULL, "this needs a token with scope '%s' (yours: '%s')", names[need],
                         scope);
        return -1;
    }
    return 0;
}

static enum MHD_Result count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)key;
    (void)value;
    return ++*(int *)cls > MAX_ARGS ? MHD_NO : MHD_YES;
}

/* Everything decided from the request line and headers alone; MHD_YES with
 * c->answered when a reply was queued. */
static enum MHD_Result on_headers(struct MHD_Connection *mc, conn *c, const char *url, const char *method)
{
    rd_http *h = c->h;
    enum MHD_Result ret = MHD_YES;
    int nargs = 0;
    c->answered = 1;
    if (strlen(url) > MAX_URL || MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, count_arg, &nargs) > MAX_ARGS)
        return queue_err(mc, c, 414, "uri_too_long", NULL, "the URL is longer than %d bytes or has more than %d "
                         "query parameters", MAX_URL, MAX_ARGS);
    if (!strcmp(method, "OPTIONS") && cors_origin(mc, h)) { /* a CORS preflight */
        rd_route_match(rd_api_routes, rd_api_nroutes, "OPTIONS", url, &c->m);
        if (c->m.kind != RD_MATCH_METHOD) return queue_err(mc, c, 404, "not_found", NULL, "no route %s", url);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Access-Control-Allow-Origin", cors_origin(mc, h));
        MHD_add_response_header(r, "Vary", "Origin");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", c->m.allow);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, X-Request-Id, Last-Event-ID, If-None-Match");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        enum MHD_Result ret = MHD_queue_response(mc, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    rd_route_match(rd_api_routes, rd_api_nroutes, method, url, &c->m);
    if (c->m.route) snprintf(c->route, sizeof c->route, "%s %s", c->m.route->method, c->m.route->pattern);
    if (c->m.kind == RD_MATCH_NOPATH) return queue_err(mc, c, 404, "not_found", NULL, "no route %s %s", method, url);
    if (c->m.kind == RD_MATCH_METHOD)
        return queue_err(mc, c, 405, "method_not_allowed", c->m.allow, "%s is not allowed on %s (allowed: %s)", method,
                         url, c->m.allow);
    const rd_route *rt = c->m.route;
    rd_scope need = rt->handler && !strcmp(rt->pattern, "/metrics") && h->o->metrics_public ? RD_SCOPE_NONE : rt->scope;
    if (authorize(mc, c, need, &ret)) return ret;
    if (c->m.kind == RD_MATCH_BADNAME)
        return queue_err(mc, c, 400, "bad_name", NULL, "class names match [a-z0-9][a-z0-9_-]{0,63}");
    if (c->m.kind == RD_MATCH_BADID) return queue_err(mc, c, 400, "bad_id", NULL, "ids are positive integers");
    const char *ct = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Type");
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    c->limit = rt->body == RD_BODY_IMAGE ? h->o->max_body : rt->body == RD_BODY_JSON ? h->o->max_json : SMALL_BODY;
    if (rt->body == RD_BODY_JSON && !ctype_is(ct, "application/json"))
        return queue_err(mc, c, 415, "unsupported_media_type", NULL, "send Content-Type: application/json");
    if (rt->body == RD_BODY_IMAGE && !image_ctype(ct) && !ctype_is(ct, "multipart/form-data"))
        return queue_err(mc, c, 415, "unsupported_media_type", NULL,
                         "send the image as Content-Type image/jpeg or image/png, or as multipart/form-data");
    if (declared > c->limit) {
        snprintf(c->route, sizeof c->route, "too_large");
        return queue_err(mc, c, 413, "body_too_large", NULL, "the body is %llu bytes; the limit is %zu", declared,
                         c->limit);
    }
    c->answered = 0;
    return MHD_YES;
}

static slot *conn_slot(struct MHD_Connection *mc, rd_http *h)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    intptr_t k = ci ? (intptr_t)ci->socket_context : 0;
    return k > 0 && k <= h->nslots ? &h->slots[k - 1] : NULL;
}

static void slot_busy(rd_http *h, struct MHD_Connection *mc, int busy)
{
    slot *s = conn_slot(mc, h);
    if (!s) return;
    pthread_mutex_lock(&h->mu);
    s->busy = busy;
    if (!busy) s->start = now_s(); /* the next request's deadline counts from this reply */
    pthread_mutex_unlock(&h->mu);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    rd_http *h = cls;
    conn *c = *con_cls;
    (void)version;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->h = h;
        c->t0 = now_s();
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->url, sizeof c->url, "%s", url);
        *con_cls = c;
        return on_headers(mc, c, url, method);
    }
    if (c->answered) { /* answered from the headers: the body is not kept */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_large) return MHD_YES;
        if (c->len + n > c->limit) {
            c->too_large = 1;
            free(c->body);
            c->body = NULL;
            c->len = c->cap = 0;
            return MHD_YES;
        }
        if (c->len + n > c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            while (nc < c->len + n) nc *= 2;
            if (nc > c->limit) nc = c->limit;
            uint8_t *q = realloc(c->body, nc + 1);
            if (!q) {
                c->too_large = 1;
                return MHD_YES;
            }
            c->body = q;
            c->cap = nc;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        return MHD_YES;
    }
    c->answered = 1;
    if (c->too_large) {
        snprintf(c->route, sizeof c->route, "too_large");
        return queue_err(mc, c, 413, "body_too_large", NULL, "the body is over the %zu-byte limit", c->limit);
    }
    slot_busy(h, mc, 1);
    rd_req r = {.mc = mc,
                .e = h->e,
                .o = h->o,
                .method = method,
                .url = url,
                .name = c->m.name,
                .id = c->m.id,
                .body = c->body ? c->body : (const uint8_t *)"",
                .len = c->len,
                .ctype = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Type"),
                .conn = c};
    return c->m.route->handler(&r) ? MHD_YES : MHD_NO;
}

static void on_done(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    conn *c = *con_cls;
    (void)toe;
    slot_busy(cls, mc, 0);
    if (!c) return;
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- the deadline watchdog ---- */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rd_http *h = cls;
    pthread_mutex_lock(&h->mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = NULL;
        for (int i = 0; ci && i < h->nslots; i++)
            if (!h->slots[i].used) {
                h->slots[i] = (slot){.used = 1, .fd = ci->connect_fd, .start = now_s()};
                *socket_context = (void *)(intptr_t)(i + 1);
                break;
            }
    } else {
        intptr_t k = (intptr_t)*socket_context;
        if (k > 0 && k <= h->nslots) h->slots[k - 1].used = 0;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&h->mu);
}

static void *watchdog(void *arg)
{
    rd_http *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wd_cv, &h->mu, &ts);
        double now = now_s();
        for (int i = 0; i < h->nslots; i++) {
            slot *s = &h->slots[i];
            /* the fd stays open while its slot is used: MHD closes it after the CLOSED notice */
            if (s->used && !s->busy && now - s->start > h->o->request_deadline_s) {
                shutdown(s->fd, SHUT_RDWR);
                s->start = now + 3600; /* once */
                rd_log(RD_LOG_DEBUG, "http: closed a connection past its %d s request deadline",
                       h->o->request_deadline_s);
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char b[512];
    (void)cls;
    vsnprintf(b, sizeof b, fmt, ap);
    size_t n = strlen(b);
    while (n && b[n - 1] == '\n') b[--n] = '\0';
    rd_log(RD_LOG_DEBUG, "http: %s", b);
}

rd_http *rd_http_start(const rd_api_opts *o, rd_engine *e, rd_err *err)
{
    rd_http *h = calloc(1, sizeof *h);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (!h) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    h->o = o;
    h->e = e;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->wd_cv, NULL);
    if (getrandom(h->secret, sizeof h->secret, 0) != (ssize_t)sizeof h->secret) {
        rd_err_set(err, RD_ERR_INTERNAL, "getrandom failed: %s", strerror(errno));
        goto fail;
    }
    h->nslots = o->max_connections + 8;
    h->slots = calloc((size_t)h->nslots, sizeof *h->slots);
    if (!h->slots) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    const char *host = !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        rd_err_set(err, RD_ERR_ARG, "listen: '%s' is not an IPv4 or IPv6 address", o->host);
        goto fail;
    }
    if (pthread_create(&h->wd, NULL, watchdog, h) != 0) {
        rd_err_set(err, RD_ERR_INTERNAL, "cannot start the HTTP watchdog thread");
        goto fail;
    }
    h->wd_started = 1;
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key},
                                   {MHD_OPTION_END, 0, NULL}};
    int use_tls = o->tls_cert && o->tls_key;
    if (use_tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        rd_err_set(err, RD_ERR_ARG, "tls_cert/tls_key are set but this libmicrohttpd has no TLS support");
        goto fail;
    }
    if (use_tls) flags |= MHD_USE_TLS;
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            h, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_ARRAY, use_tls ? tls : &tls[2],
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_per_client,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->request_deadline_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024, MHD_OPTION_END);
    if (!h->d) {
        rd_err_set(err, RD_ERR_IO, "cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
        goto fail;
    }
    rd_log(RD_LOG_INFO, "listening on %s://%s:%d, auth %s, /metrics %s", use_tls ? "https" : "http", o->host, o->port,
           o->auth ? "on" : "off",
           o->auth && !o->metrics_public ? "needs a read token" : "open");
    return h;
fail:
    rd_http_stop(h);
    return NULL;
}

void rd_http_quiesce(rd_http *h)
{
    if (h && h->d) {
        MHD_socket fd = MHD_quiesce_daemon(h->d);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
}

void rd_http_stop(rd_http *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    if (h->wd_started) {
        pthread_mutex_lock(&h->mu);
        h->stopping = 1;
        pthread_cond_signal(&h->wd_cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->wd, NULL);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->wd_cv);
    free(h->slots);
    free(h);
}
