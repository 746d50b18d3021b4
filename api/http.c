/* http.c — routes of the resadd REST API (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <stdarg.h>
#include <unistd.h>

#include "../daemon/log.h"
#include "metrics.h"
#include "sha256.h"

#define MAX_PARTS 64

struct rd_http {
    const rd_config *cfg;
    rd_engine *e;
    rd_store *s;
    struct MHD_Daemon *d;
    int auth;
};

typedef struct part {
    uint8_t *data;
    size_t len, cap;
    char ctype[64];
    int is_file;
} part;

typedef struct conn {
    rd_http *h;
    double t0;
    uint8_t *body;
    size_t len, cap;
    int too_large, bad_multipart, multipart;
    struct MHD_PostProcessor *pp;
    part parts[MAX_PARTS];
    int nparts;
    char route[64];
} conn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- responses ---- */
static enum MHD_Result send_buf(struct MHD_Connection *mc, conn *c, int status, const char *ctype, void *data,
                                size_t len, enum MHD_ResponseMemoryMode mode, const char *location, int retry)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (location) MHD_add_response_header(r, "Location", location);
    if (retry) {
        char b[16];
        snprintf(b, sizeof b, "%d", retry);
        MHD_add_response_header(r, "Retry-After", b);
    }
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"resadd\"");
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    rd_metrics_request(c->route[0] ? c->route : "other", status, now_s() - c->t0);
    return ret;
}

static enum MHD_Result send_json_loc(struct MHD_Connection *mc, conn *c, int status, json_t *o, const char *loc,
                                     int retry)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(o);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    s[n] = '\0';
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    return send_buf(mc, c, status, "application/json", s, n, MHD_RESPMEM_MUST_FREE, loc, retry);
}

static enum MHD_Result send_json(struct MHD_Connection *mc, conn *c, int status, json_t *o)
{
    return send_json_loc(mc, c, status, o, NULL, 0);
}

static enum MHD_Result send_err(struct MHD_Connection *mc, conn *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result send_err(struct MHD_Connection *mc, conn *c, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
    return send_json_loc(mc, c, status, o, NULL, status == 503 ? 1 : 0);
}

static enum MHD_Result send_ecode(struct MHD_Connection *mc, conn *c, rd_ecode code, const rd_err *err)
{
    switch (code) {
    case RD_E_NOTFOUND: return send_err(mc, c, 404, "not_found", "%s", err->msg);
    case RD_E_CONFLICT: return send_err(mc, c, 409, "conflict", "%s", err->msg);
    case RD_E_NOTREADY: return send_err(mc, c, 409, "class_not_ready", "%s", err->msg);
    case RD_E_BADIMAGE: return send_err(mc, c, 422, "invalid_image", "%s", err->msg);
    case RD_E_TOOLARGE: return send_err(mc, c, 413, "image_too_large", "%s", err->msg);
    case RD_E_LIMIT: return send_err(mc, c, 422, "too_many_references", "%s", err->msg);
    case RD_E_BADREQ: return send_err(mc, c, 400, "bad_request", "%s", err->msg);
    case RD_E_BUSY: return send_err(mc, c, 503, "busy", "%s", err->msg);
    case RD_E_TIMEOUT: return send_err(mc, c, 504, "timeout", "%s", err->msg);
    case RD_E_SHUTDOWN: return send_err(mc, c, 503, "shutting_down", "%s", err->msg);
    default: return send_err(mc, c, 500, "internal", "%s", err->msg[0] ? err->msg : "internal error");
    }
}

/* ---- validation ---- */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]))) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-')) return 0;
    return 1;
}

static int parse_id(const char *s, int64_t *out)
{
    char *end;
    if (!s || !*s || !isdigit((unsigned char)*s) || strlen(s) > 18) return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0) return -1;
    *out = v;
    return 0;
}

/* Nesting depth of a JSON text (brackets outside strings). */
static int json_depth(const uint8_t *p, size_t n)
{
    int d = 0, maxd = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (p[i] == '\\') i++;
            else if (p[i] == '"') in_str = 0;
        } else if (p[i] == '"') {
            in_str = 1;
        } else if (p[i] == '[' || p[i] == '{') {
            if (++d > maxd) maxd = d;
        } else if (p[i] == ']' || p[i] == '}') {
            d--;
        }
    }
    return maxd;
}

static const char *header(struct MHD_Connection *mc, const char *k)
{
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, k);
}
static const char *query(struct MHD_Connection *mc, const char *k)
{
    return MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, k);
}

static int ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    return !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Parses a JSON object body; sends the error itself and returns NULL. */
static json_t *json_body(struct MHD_Connection *mc, conn *c, enum MHD_Result *ret)
{
    json_error_t je;
    if (!ctype_is(header(mc, "Content-Type"), "application/json")) {
        *ret = send_err(mc, c, 415, "unsupported_media_type", "send Content-Type: application/json");
        return NULL;
    }
    if (c->len > c->h->cfg->max_json) {
        *ret = send_err(mc, c, 413, "body_too_large", "JSON body is %zu bytes; at most %zu", c->len, c->h->cfg->max_json);
        return NULL;
    }
    if (json_depth(c->body, c->len) > c->h->cfg->max_json_depth) {
        *ret = send_err(mc, c, 400, "bad_json", "JSON nested deeper than %d levels", c->h->cfg->max_json_depth);
        return NULL;
    }
    json_t *o = json_loadb((const char *)c->body, c->len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        *ret = send_err(mc, c, 400, "bad_json", "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *ret = send_err(mc, c, 400, "bad_json", "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* ---- auth ---- */
enum { SCOPE_READ = 1, SCOPE_INSPECT = 2, SCOPE_ADMIN = 3 };

/* 0 = allowed; otherwise a response was sent. */
static int authorize(struct MHD_Connection *mc, conn *c, int need, enum MHD_Result *ret)
{
    char hash[RD_SHA256_HEX], scope[16];
    if (!c->h->auth) return 0;
    const char *a = header(mc, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0 || !a[7]) {
        *ret = send_err(mc, c, 401, "unauthorized", "send Authorization: Bearer <token> (create one with `resadd token create`)");
        return -1;
    }
    const char *tok = a + 7;
    while (*tok == ' ') tok++;
    if (strlen(tok) > 256 || rd_sha256_hex(tok, strlen(tok), hash) != 0 ||
        rd_store_token_scope(c->h->s, hash, scope) != RD_STORE_OK) {
        *ret = send_err(mc, c, 401, "unauthorized", "unknown or revoked token");
        return -1;
    }
    int have = !strcmp(scope, "admin") ? SCOPE_ADMIN : !strcmp(scope, "inspect") ? SCOPE_INSPECT : SCOPE_READ;
    if (have < need) {
        static const char *const names[] = {"", "read", "inspect", "admin"};
        *ret = send_err(mc, c, 403, "forbidden", "this needs a token with scope '%s' (yours: '%s')", names[need], scope);
        return -1;
    }
    return 0;
}

/* ---- image uploads ---- */
static int image_ctype(const char *ct)
{
    return ctype_is(ct, "image/jpeg") || ctype_is(ct, "image/png") || ctype_is(ct, "image/jpg");
}

/* Collects the request's images: the raw body or the multipart file parts. */
static int uploads(struct MHD_Connection *mc, conn *c, rd_upload *u, int max, enum MHD_Result *ret)
{
    const char *ct = header(mc, "Content-Type");
    int n = 0;
    if (c->multipart) {
        if (c->bad_multipart) {
            *ret = send_err(mc, c, 400, "bad_multipart", "malformed multipart/form-data body");
            return -1;
        }
        for (int i = 0; i < c->nparts; i++) {
            if (!c->parts[i].is_file) continue;
            if (c->parts[i].ctype[0] && !image_ctype(c->parts[i].ctype) &&
                !ctype_is(c->parts[i].ctype, "application/octet-stream")) {
                *ret = send_err(mc, c, 415, "unsupported_media_type", "part %d is %s; send image/jpeg or image/png",
                                i + 1, c->parts[i].ctype);
                return -1;
            }
            if (n == max) {
                *ret = send_err(mc, c, 413, "too_many_parts", "at most %d images per request", max);
                return -1;
            }
            u[n].data = c->parts[i].data;
            u[n].len = c->parts[i].len;
            u[n].content_type = c->parts[i].ctype;
            n++;
        }
        if (!n) {
            *ret = send_err(mc, c, 400, "no_image", "the multipart body has no file part");
            return -1;
        }
        return n;
    }
    if (!image_ctype(ct)) {
        *ret = send_err(mc, c, 415, "unsupported_media_type",
                        "send the image as Content-Type image/jpeg or image/png, or as multipart/form-data");
        return -1;
    }
    if (!c->len) {
        *ret = send_err(mc, c, 400, "no_image", "empty body");
        return -1;
    }
    u[0].data = c->body;
    u[0].len = c->len;
    u[0].content_type = ct;
    return 1;
}

/* ---- handlers ---- */
#define ROUTE(s) snprintf(c->route, sizeof c->route, "%s", s)

static enum MHD_Result h_class_create(struct MHD_Connection *mc, conn *c)
{
    enum MHD_Result ret;
    rd_err err = {0};
    json_t *o = json_body(mc, c, &ret), *out = NULL;
    if (!o) return ret;
    json_t *jn = json_object_get(o, "name"), *jd = json_object_get(o, "description");
    if (!json_is_string(jn) || !valid_name(json_string_value(jn))) {
        json_decref(o);
        return send_err(mc, c, 400, "bad_name", "name must match [a-z0-9][a-z0-9_-]{0,63}");
    }
    if (jd && !json_is_string(jd)) {
        json_decref(o);
        return send_err(mc, c, 400, "bad_request", "description must be a string");
    }
    if (jd && json_string_length(jd) > 4096) {
        json_decref(o);
        return send_err(mc, c, 400, "bad_request", "description longer than 4096 bytes");
    }
    rd_ecode code = rd_engine_class_create(c->h->e, json_string_value(jn), jd ? json_string_value(jd) : "", &out, &err);
    json_decref(o);
    if (code != RD_E_OK) return send_ecode(mc, c, code, &err);
    return send_json(mc, c, 201, out);
}

static enum MHD_Result h_class_patch(struct MHD_Connection *mc, conn *c, const char *name)
{
    enum MHD_Result ret;
    rd_err err = {0};
    json_t *o = json_body(mc, c, &ret), *out = NULL;
    if (!o) return ret;
    const char *key;
    json_t *v, *jd = NULL;
    int set_thr = 0;
    double thr = 0;
    json_object_foreach(o, key, v)
    {
        if (!strcmp(key, "description")) {
            if (!json_is_string(v) || json_string_length(v) > 4096) goto bad;
            jd = v;
        } else if (!strcmp(key, "threshold")) {
            if (json_is_null(v)) set_thr = 2;
            else if (json_is_number(v) && isfinite(json_number_value(v))) {
                set_thr = 1;
                thr = json_number_value(v);
            } else goto bad;
        } else {
            enum MHD_Result r = send_err(mc, c, 400, "bad_request", "unknown field '%.64s' (description, threshold)", key);
            json_decref(o);
            return r;
        }
    }
    int rc = rd_store_class_update(c->h->s, name, jd ? json_string_value(jd) : NULL, set_thr, thr, &err);
    json_decref(o);
    if (rc == RD_STORE_NOTFOUND) return send_err(mc, c, 404, "not_found", "%s", err.msg);
    if (rc != RD_STORE_OK) return send_ecode(mc, c, RD_E_INTERNAL, &err);
    rd_ecode code = rd_engine_class_get(c->h->e, name, &out, &err);
    if (code != RD_E_OK) return send_ecode(mc, c, code, &err);
    return send_json(mc, c, 200, out);
bad:
    json_decref(o);
    return send_err(mc, c, 400, "bad_request", "description must be a string; threshold a number or null");
}

static enum MHD_Result h_refs_post(struct MHD_Connection *mc, conn *c, const char *name)
{
    rd_upload u[MAX_PARTS];
    enum MHD_Result ret;
    rd_err err = {0};
    json_t *out = NULL;
    int n = uploads(mc, c, u, MAX_PARTS, &ret);
    if (n < 0) return ret;
    rd_ecode code = rd_engine_register(c->h->e, name, u, n, &out, &err);
    if (code != RD_E_OK) return send_ecode(mc, c, code, &err);
    return send_json(mc, c, 201, out);
}

static enum MHD_Result h_inspect(struct MHD_Connection *mc, conn *c, const char *name)
{
    rd_upload u[MAX_PARTS];
    enum MHD_Result ret;
    rd_err err = {0};
    json_t *out = NULL;
    const char *as = query(mc, "async");
    int async = as && (!strcmp(as, "1") || !strcmp(as, "true"));
    const char *ext = header(mc, "X-Request-Id");
    if (!ext) ext = query(mc, "external_id");
    if (ext && (strlen(ext) > 256 || !*ext)) return send_err(mc, c, 400, "bad_request", "X-Request-Id longer than 256 bytes");
    int n = uploads(mc, c, u, MAX_PARTS, &ret);
    if (n < 0) return ret;
    if (n != 1) return send_err(mc, c, 400, "bad_request", "an inspection takes exactly one image (got %d)", n);
    rd_ecode code = rd_engine_inspect(c->h->e, name, &u[0], ext, async, &out, &err);
    if (code != RD_E_OK) return send_ecode(mc, c, code, &err);
    if (async) {
        char loc[64];
        snprintf(loc, sizeof loc, "/v1/inspections/%lld", (long long)json_integer_value(json_object_get(out, "id")));
        return send_json_loc(mc, c, 202, out, loc, 0);
    }
    return send_json(mc, c, 200, out);
}

static int parse_since(const char *s, char out[32])
{
    size_t n = strlen(s);
    int digits = n > 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) digits = 0;
    if (digits && n <= 12) {
        time_t t = (time_t)strtoll(s, NULL, 10);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        return 0;
    }
    int Y, M, D, h = 0, mi = 0, se = 0;
    if (n < 10 || n > 30 || sscanf(s, "%4d-%2d-%2d", &Y, &M, &D) != 3) return -1;
    if (n > 10 && sscanf(s + 10, "T%2d:%2d:%2d", &h, &mi, &se) < 2) return -1;
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", Y, M, D, h, mi, se);
    return 0;
}

static enum MHD_Result h_insp_list(struct MHD_Connection *mc, conn *c)
{
    rd_store_insp_query q = {.anomalous = -1, .limit = 50};
    char since[32];
    rd_err err = {0};
    const char *v;
    if ((v = query(mc, "class"))) {
        if (!valid_name(v)) return send_err(mc, c, 400, "bad_name", "class must match [a-z0-9][a-z0-9_-]{0,63}");
        q.cls = v;
    }
    if ((v = query(mc, "anomalous"))) {
        if (!strcmp(v, "true") || !strcmp(v, "1")) q.anomalous = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0")) q.anomalous = 0;
        else return send_err(mc, c, 400, "bad_request", "anomalous is true or false");
    }
    if ((v = query(mc, "since"))) {
        if (parse_since(v, since)) return send_err(mc, c, 400, "bad_request", "since is ISO 8601 (2026-01-31T08:00:00Z) or unix seconds");
        q.since = since;
    }
    if ((v = query(mc, "after_id")) && parse_id(v, &q.after_id) && strcmp(v, "0"))
        return send_err(mc, c, 400, "bad_id", "after_id must be a positive integer");
    if ((v = query(mc, "before_id")) && parse_id(v, &q.before_id))
        return send_err(mc, c, 400, "bad_id", "before_id must be a positive integer");
    if ((v = query(mc, "limit"))) {
        int64_t l;
        if (parse_id(v, &l) || l > 1000) return send_err(mc, c, 400, "bad_request", "limit is 1..1000");
        q.limit = (int)l;
    }
    json_t *o = rd_store_insp_list(c->h->s, &q, &err);
    if (!o) return send_ecode(mc, c, RD_E_INTERNAL, &err);
    return send_json(mc, c, 200, o);
}

static enum MHD_Result h_readyz(struct MHD_Connection *mc, conn *c)
{
    int db = rd_store_writable(c->h->s);
    json_t *o = json_pack("{s:s, s:b, s:b, s:s, s:i}", "status", db ? "ready" : "not_ready", "model_loaded", 1,
                          "db_writable", db, "model_id", rd_engine_info(c->h->e)->model_id, "queue_depth",
                          rd_engine_queue_depth(c->h->e));
    return send_json(mc, c, db ? 200 : 503, o);
}

static enum MHD_Result h_metrics(struct MHD_Connection *mc, conn *c)
{
    char *t = rd_metrics_render(rd_engine_queue_depth(c->h->e), rd_engine_queue_capacity(c->h->e),
                                rd_engine_workers(c->h->e), rd_store_writable(c->h->s));
    if (!t) return send_err(mc, c, 500, "internal", "out of memory");
    return send_buf(mc, c, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), MHD_RESPMEM_MUST_FREE,
                    NULL, 0);
}

/* Splits "/v1/classes/x/references/3" into at most 6 segments (in buf). */
static int split(const char *url, char *buf, size_t blen, char **seg, int max)
{
    int n = 0;
    if (strlen(url) >= blen) return -1;
    snprintf(buf, blen, "%s", url);
    for (char *p = strtok(buf, "/"); p; p = strtok(NULL, "/")) {
        if (n == max) return -1;
        seg[n++] = p;
    }
    return n;
}

static enum MHD_Result dispatch(struct MHD_Connection *mc, conn *c, const char *url, const char *m)
{
    char buf[512];
    char *s[8];
    enum MHD_Result ret;
    rd_err err = {0};
    json_t *out = NULL;
    rd_http *h = c->h;
    int n = split(url, buf, sizeof buf, s, 8);
    int GET = !strcmp(m, "GET") || !strcmp(m, "HEAD"), POST = !strcmp(m, "POST"), DEL = !strcmp(m, "DELETE"),
        PATCH = !strcmp(m, "PATCH");
    if (n < 0) return send_err(mc, c, 404, "not_found", "no such route");
    if (c->too_large) {
        ROUTE("too_large");
        return send_err(mc, c, 413, "body_too_large", "the body is over the %zu-byte limit", h->cfg->max_body);
    }
    if (n == 1 && !strcmp(s[0], "healthz") && GET) {
        ROUTE("GET /healthz");
        return send_json(mc, c, 200, json_pack("{s:s}", "status", "ok"));
    }
    if (n == 1 && !strcmp(s[0], "readyz") && GET) {
        ROUTE("GET /readyz");
        return h_readyz(mc, c);
    }
    if (n == 1 && !strcmp(s[0], "metrics") && GET) {
        ROUTE("GET /metrics");
        return h_metrics(mc, c);
    }
    if (n < 2 || strcmp(s[0], "v1")) {
        ROUTE("other");
        return send_err(mc, c, 404, "not_found", "no route %s %s", m, url);
    }
    if (n == 2 && !strcmp(s[1], "openapi.json") && GET) {
        ROUTE("GET /v1/openapi.json");
        return send_buf(mc, c, 200, "application/json", (void *)rd_openapi_json, strlen(rd_openapi_json),
                        MHD_RESPMEM_PERSISTENT, NULL, 0);
    }
    if (!strcmp(s[1], "classes")) {
        if (n == 2) {
            ROUTE(POST ? "POST /v1/classes" : "GET /v1/classes");
            if (POST) {
                if (authorize(mc, c, SCOPE_ADMIN, &ret)) return ret;
                return h_class_create(mc, c);
            }
            if (GET) {
                if (authorize(mc, c, SCOPE_READ, &ret)) return ret;
                rd_ecode code = rd_engine_class_list(h->e, &out, &err);
                return code ? send_ecode(mc, c, code, &err) : send_json(mc, c, 200, out);
            }
            goto method;
        }
        const char *name = s[2];
        if (n == 3) {
            ROUTE(GET ? "GET /v1/classes/{name}" : PATCH ? "PATCH /v1/classes/{name}" : "DELETE /v1/classes/{name}");
            if (authorize(mc, c, GET ? SCOPE_READ : SCOPE_ADMIN, &ret)) return ret;
            if (!valid_name(name)) return send_err(mc, c, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
            if (GET) {
                rd_ecode code = rd_engine_class_get(h->e, name, &out, &err);
                return code ? send_ecode(mc, c, code, &err) : send_json(mc, c, 200, out);
            }
            if (PATCH) return h_class_patch(mc, c, name);
            if (DEL) {
                rd_ecode code = rd_engine_class_delete(h->e, name, &err);
                return code ? send_ecode(mc, c, code, &err) : send_json(mc, c, 200, json_pack("{s:s}", "deleted", name));
            }
            goto method;
        }
        if (!strcmp(s[3], "references")) {
            if (n == 4) {
                ROUTE(POST ? "POST /v1/classes/{name}/references" : "GET /v1/classes/{name}/references");
                if (authorize(mc, c, POST ? SCOPE_ADMIN : SCOPE_READ, &ret)) return ret;
                if (!valid_name(name)) return send_err(mc, c, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
                if (POST) return h_refs_post(mc, c, name);
                if (GET) {
                    json_t *cl = rd_store_class_get(h->s, name, &err);
                    if (!cl) return send_err(mc, c, 404, "not_found", "no class '%s'", name);
                    json_decref(cl);
                    json_t *a = rd_store_ref_list(h->s, name, &err);
                    if (!a) return send_ecode(mc, c, RD_E_INTERNAL, &err);
                    return send_json(mc, c, 200, json_pack("{s:s, s:o}", "class", name, "references", a));
                }
                goto method;
            }
            if (n == 5) {
                int64_t id;
                ROUTE(GET ? "GET /v1/classes/{name}/references/{id}" : "DELETE /v1/classes/{name}/references/{id}");
                if (authorize(mc, c, GET ? SCOPE_READ : SCOPE_ADMIN, &ret)) return ret;
                if (!valid_name(name)) return send_err(mc, c, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
                if (parse_id(s[4], &id)) return send_err(mc, c, 400, "bad_id", "reference ids are positive integers");
                if (GET) {
                    uint8_t *data;
                    size_t len;
                    char ct[64];
                    int rc = rd_store_ref_image(h->s, name, id, &data, &len, ct, &err);
                    if (rc == RD_STORE_NOTFOUND) return send_err(mc, c, 404, "not_found", "%s", err.msg);
                    if (rc) return send_ecode(mc, c, RD_E_INTERNAL, &err);
                    return send_buf(mc, c, 200, ct, data, len, MHD_RESPMEM_MUST_FREE, NULL, 0);
                }
                if (DEL) {
                    rd_ecode code = rd_engine_ref_delete(h->e, name, id, &err);
                    if (code) return send_ecode(mc, c, code, &err);
                    return send_json(mc, c, 200, json_pack("{s:I, s:i}", "deleted", (json_int_t)id, "references",
                                                           rd_store_ref_count(h->s, name)));
                }
                goto method;
            }
        }
        if (n == 4 && !strcmp(s[3], "inspections")) {
            ROUTE("POST /v1/classes/{name}/inspections");
            if (!POST) goto method;
            if (authorize(mc, c, SCOPE_INSPECT, &ret)) return ret;
            if (!valid_name(name)) return send_err(mc, c, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
            return h_inspect(mc, c, name);
        }
    }
    if (!strcmp(s[1], "inspections")) {
        if (n == 2) {
            ROUTE("GET /v1/inspections");
            if (!GET) goto method;
            if (authorize(mc, c, SCOPE_READ, &ret)) return ret;
            return h_insp_list(mc, c);
        }
        int64_t id;
        if (n == 3 || (n == 4 && !strcmp(s[3], "heatmap.png"))) {
            ROUTE(n == 3 ? "GET /v1/inspections/{id}" : "GET /v1/inspections/{id}/heatmap.png");
            if (!GET) goto method;
            if (authorize(mc, c, SCOPE_READ, &ret)) return ret;
            if (parse_id(s[2], &id)) return send_err(mc, c, 400, "bad_id", "inspection ids are positive integers");
            if (n == 3) {
                json_t *o = rd_store_insp_get(h->s, id, &err);
                if (!o) return send_err(mc, c, 404, "not_found", "no inspection %lld", (long long)id);
                return send_json(mc, c, 200, o);
            }
            const char *kind = query(mc, "kind");
            if (!kind) kind = "overlay";
            if (strcmp(kind, "overlay") && strcmp(kind, "raw") && strcmp(kind, "mask"))
                return send_err(mc, c, 400, "bad_request", "kind is overlay, raw or mask");
            uint8_t *png;
            size_t len;
            int rc = rd_store_heatmap(h->s, id, kind, &png, &len, &err);
            if (rc == RD_STORE_NOTFOUND) return send_err(mc, c, 404, "not_found", "%s", err.msg);
            if (rc) return send_ecode(mc, c, RD_E_INTERNAL, &err);
            return send_buf(mc, c, 200, "image/png", png, len, MHD_RESPMEM_MUST_FREE, NULL, 0);
        }
    }
    if (n == 2 && !strcmp(s[1], "stats")) {
        char since[32];
        ROUTE("GET /v1/stats");
        if (!GET) goto method;
        if (authorize(mc, c, SCOPE_READ, &ret)) return ret;
        const char *cls = query(mc, "class"), *sv = query(mc, "since");
        if (cls && !valid_name(cls)) return send_err(mc, c, 400, "bad_name", "class names match [a-z0-9][a-z0-9_-]{0,63}");
        if (sv && parse_since(sv, since)) return send_err(mc, c, 400, "bad_request", "since is ISO 8601 or unix seconds");
        json_t *o = rd_store_stats(h->s, cls, sv ? since : NULL, &err);
        if (!o) return send_ecode(mc, c, RD_E_INTERNAL, &err);
        json_object_set_new(o, "queue_depth", json_integer(rd_engine_queue_depth(h->e)));
        return send_json(mc, c, 200, o);
    }
    if (n == 2 && !strcmp(s[1], "model")) {
        ROUTE("GET /v1/model");
        if (authorize(mc, c, SCOPE_READ, &ret)) return ret;
        const rd_model_info *in = rd_engine_info(h->e);
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:f}", "arch", in->arch, "scorer", in->scorer,
                              "model_id", in->model_id, "size", in->size, "levels", in->nlevels, "backbone_sha256",
                              in->backbone_sha256, "metric", in->metric, "residual", in->resid, "topk",
                              (double)in->topk_frac);
        if (o && in->model_sha256[0]) { /* the learned model: which file, and how it was made */
            json_t *prov = in->model_meta[0] ? json_loads(in->model_meta, 0, NULL) : NULL;
            json_object_set_new(o, "model", json_pack("{s:s, s:s, s:o}", "file", in->model_file, "sha256",
                                                      in->model_sha256, "provenance",
                                                      prov ? prov : json_object()));
        }
        return send_json(mc, c, 200, o);
    }
    ROUTE("other");
    return send_err(mc, c, 404, "not_found", "no route %s %s", m, url);
method:
    return send_err(mc, c, 405, "method_not_allowed", "%s is not allowed on %s", m, url);
}

/* ---- MHD plumbing ---- */
static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size)
{
    conn *c = cls;
    (void)kind;
    (void)key;
    (void)transfer_encoding;
    if (off == 0) {
        if (c->nparts == MAX_PARTS) {
            c->too_large = 1;
            return MHD_NO;
        }
        part *p = &c->parts[c->nparts++];
        p->is_file = filename != NULL;
        snprintf(p->ctype, sizeof p->ctype, "%s", content_type ? content_type : "");
    }
    if (!c->nparts) return MHD_NO;
    part *p = &c->parts[c->nparts - 1];
    if (p->len + size > p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 65536;
        while (nc < p->len + size) nc *= 2;
        uint8_t *q = realloc(p->data, nc);
        if (!q) {
            c->too_large = 1;
            return MHD_NO;
        }
        p->data = q;
        p->cap = nc;
    }
    if (size) memcpy(p->data + p->len, data, size);
    p->len += size;
    return MHD_YES;
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
        *con_cls = c;
        const char *cl = header(mc, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->cfg->max_body) {
            ROUTE("too_large");
            return send_err(mc, c, 413, "body_too_large", "the body is %s bytes; the limit is %zu", cl, h->cfg->max_body);
        }
        if (ctype_is(header(mc, "Content-Type"), "multipart/form-data")) {
            c->multipart = 1;
            c->pp = MHD_create_post_processor(mc, 64 * 1024, post_iter, c);
            if (!c->pp) c->bad_multipart = 1;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_large) return MHD_YES;
        if (c->len + n > h->cfg->max_body) {
            c->too_large = 1;
            return MHD_YES;
        }
        if (c->multipart) {
            c->len += n;
            if (!c->bad_multipart && c->pp && MHD_post_process(c->pp, upload, n) != MHD_YES) c->bad_multipart = 1;
            return MHD_YES;
        }
        if (c->len + n > c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            while (nc < c->len + n) nc *= 2;
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
    if (c->route[0] && !strcmp(c->route, "too_large")) return MHD_YES; /* already answered */
    return dispatch(mc, c, url, method);
}

static void on_done(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    conn *c = *con_cls;
    (void)cls;
    (void)mc;
    (void)toe;
    if (!c) return;
    if (c->pp) MHD_destroy_post_processor(c->pp);
    for (int i = 0; i < c->nparts; i++) free(c->parts[i].data);
    free(c->body);
    free(c);
    *con_cls = NULL;
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

rd_http *rd_http_start(const rd_config *cfg, rd_engine *e, rd_store *s, rd_err *err)
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
    h->cfg = cfg;
    h->e = e;
    h->s = s;
    h->auth = cfg->auth == RD_AUTH_ON || (cfg->auth == RD_AUTH_AUTO && !rd_config_is_loopback(cfg));
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    const char *host = !strcmp(cfg->listen_host, "localhost") ? "127.0.0.1" : cfg->listen_host;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->listen_port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->listen_port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        rd_err_set(err, RD_ERR_ARG, "listen: '%s' is not an IPv4 or IPv6 address", cfg->listen_host);
        free(h);
        return NULL;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    if (!h->d) {
        rd_err_set(err, RD_ERR_IO, "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        free(h);
        return NULL;
    }
    rd_log(RD_LOG_INFO, "listening on %s:%d, auth %s", cfg->listen_host, cfg->listen_port, h->auth ? "on" : "off");
    return h;
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
    free(h);
}
