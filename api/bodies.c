/* bodies.c — JSON request bodies (see bodies.h). */
#include "bodies.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

int rd_body_fail(rd_body_err *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return -1;
}

int rd_body_json_depth(const char *p, size_t n)
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

/* The parsed object, or NULL with e filled. */
static json_t *object(const char *text, size_t len, int max_depth, rd_body_err *e)
{
    json_error_t je;
    if (rd_body_json_depth(text, len) > max_depth) {
        rd_body_fail(e, "bad_json", "JSON nested deeper than %d levels", max_depth);
        return NULL;
    }
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        rd_body_fail(e, "bad_json", "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        rd_body_fail(e, "bad_json", "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* "geometry": {"size": S, "fit": "none|pad|stretch|crop", "roi": [x, y, w, h]
 * or null, "tile": T (0 = global search), "alpha": "composite|ignore"}; the
 * types only (ranges are the engine's: 422 bad_geometry). */
static int geometry(json_t *g, rd_geo_opts *o, rd_body_err *e)
{
    const char *key;
    json_t *v;
    memset(o, 0, sizeof *o);
    if (!json_is_object(g)) return rd_body_fail(e, "bad_request", "geometry must be an object {size, fit, roi, tile, alpha}");
    json_object_foreach(g, key, v)
    {
        if (!strcmp(key, "size") || !strcmp(key, "tile")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
                return rd_body_fail(e, "bad_request", "geometry %s must be a non-negative integer", key);
            if (key[0] == 's') o->s = (int)json_integer_value(v);
            else o->search_tile = json_integer_value(v) == 0 ? -1 : (int)json_integer_value(v);
        } else if (!strcmp(key, "fit")) {
            if (!json_is_string(v) || rd_fit_parse(json_string_value(v), &o->fit))
                return rd_body_fail(e, "bad_request", "geometry fit must be \"none\", \"pad\", \"stretch\" or \"crop\"");
        } else if (!strcmp(key, "alpha")) {
            const char *a = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(a, "composite") && strcmp(a, "ignore"))
                return rd_body_fail(e, "bad_request", "geometry alpha must be \"composite\" or \"ignore\"");
            o->alpha = !strcmp(a, "ignore");
        } else if (!strcmp(key, "roi")) {
            int *f[4] = {&o->roi.x, &o->roi.y, &o->roi.w, &o->roi.h};
            if (json_is_null(v)) continue;
            if (!json_is_array(v) || json_array_size(v) != 4)
                return rd_body_fail(e, "bad_request", "geometry roi must be [x, y, width, height] in frame pixels, or null");
            for (int i = 0; i < 4; i++) {
                json_t *n = json_array_get(v, (size_t)i);
                if (!json_is_integer(n) || json_integer_value(n) < -1000000 || json_integer_value(n) > 1000000)
                    return rd_body_fail(e, "bad_request", "geometry roi must be [x, y, width, height] of integers");
                *f[i] = (int)json_integer_value(n);
            }
        } else {
            return rd_body_fail(e, "bad_request", "unknown geometry field '%.64s' (size, fit, roi, tile, alpha)", key);
        }
    }
    return 0;
}

int rd_body_class_create(const char *text, size_t len, int max_depth, rd_class_create_body *out, rd_body_err *e)
{
    int rc = -1;
    json_t *o = object(text, len, max_depth, e);
    if (!o) return -1;
    json_t *jn = json_object_get(o, "name"), *jd = json_object_get(o, "description");
    memset(out, 0, sizeof *out);
    if (!json_is_string(jn) || !rd_route_valid_name(json_string_value(jn)) ||
        strlen(json_string_value(jn)) != json_string_length(jn)) {
        rd_body_fail(e, "bad_name", "name must match [a-z0-9][a-z0-9_-]{0,63}");
        goto out;
    }
    if (jd && !json_is_string(jd)) {
        rd_body_fail(e, "bad_request", "description must be a string");
        goto out;
    }
    if (jd && json_string_length(jd) > RD_BODY_DESC_MAX) {
        rd_body_fail(e, "bad_request", "description longer than %d bytes", RD_BODY_DESC_MAX);
        goto out;
    }
    if (jd && strlen(json_string_value(jd)) != json_string_length(jd)) {
        rd_body_fail(e, "bad_request", "description contains a NUL character");
        goto out;
    }
    json_t *jg = json_object_get(o, "geometry");
    if (jg && !json_is_null(jg)) {
        if (geometry(jg, &out->geo, e)) goto out;
        out->has_geo = 1;
    }
    snprintf(out->name, sizeof out->name, "%s", json_string_value(jn));
    snprintf(out->description, sizeof out->description, "%s", jd ? json_string_value(jd) : "");
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int rd_body_class_patch(const char *text, size_t len, int max_depth, rd_class_patch_body *out, rd_body_err *e)
{
    int rc = -1;
    const char *key;
    json_t *v, *o = object(text, len, max_depth, e);
    if (!o) return -1;
    memset(out, 0, sizeof *out);
    json_object_foreach(o, key, v)
    {
        if (!strcmp(key, "description")) {
            if (!json_is_string(v) || json_string_length(v) > RD_BODY_DESC_MAX ||
                strlen(json_string_value(v)) != json_string_length(v))
                goto badtype;
            out->has_description = 1;
            snprintf(out->description, sizeof out->description, "%s", json_string_value(v));
        } else if (!strcmp(key, "threshold")) {
            if (json_is_null(v)) {
                out->set_threshold = 2;
            } else if (json_is_number(v) && isfinite(json_number_value(v))) {
                out->set_threshold = 1;
                out->threshold = json_number_value(v);
            } else {
                goto badtype;
            }
        } else if (!strcmp(key, "geometry")) {
            if (json_is_null(v)) memset(&out->geo, 0, sizeof out->geo);
            else if (geometry(v, &out->geo, e)) goto out;
            out->has_geo = 1;
        } else {
            rd_body_fail(e, "bad_request", "unknown field '%.64s' (description, threshold, geometry)", key);
            goto out;
        }
    }
    rc = 0;
    goto out;
badtype:
    rd_body_fail(e, "bad_request", "description must be a string; threshold a number or null");
out:
    json_decref(o);
    return rc;
}

/* POST /v1/webhooks: the checks and messages the handler had inline. */
int rd_body_webhook(const char *text, size_t len, rd_webhook_body *out, rd_body_err *e)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *k, *msg = NULL;
    memset(out, 0, sizeof *out);
    if (!o || !json_is_object(o)) {
        msg = "the body is a JSON object {url, secret, events, class}";
        goto out;
    }
    const char *url = json_string_value(json_object_get(o, "url"));
    const char *secret = json_string_value(json_object_get(o, "secret"));
    json_t *cls = json_object_get(o, "class"), *ev = json_object_get(o, "events");
    json_object_foreach(o, k, v)
    if (strcmp(k, "url") && strcmp(k, "secret") && strcmp(k, "class") && strcmp(k, "events")) {
        msg = "unknown field (url, secret, events, class)";
        goto out;
    }
    if (!url || strlen(url) > RD_BODY_URL_MAX || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        msg = "url is an http:// or https:// URL";
        goto out;
    }
    if (!secret || strlen(secret) < 8 || strlen(secret) > 255) {
        msg = "secret is 8 to 255 bytes";
        goto out;
    }
    if (cls && !json_is_null(cls) && (!json_is_string(cls) || !rd_route_valid_name(json_string_value(cls)))) {
        msg = "class is a class name or null (every class)";
        goto out;
    }
    char *events = out->events;
    size_t cap = sizeof out->events;
    if (!ev || json_is_null(ev)) {
        snprintf(events, cap, "inspection");
    } else {
        size_t i;
        json_t *x;
        if (!json_is_array(ev) || !json_array_size(ev)) {
            msg = "events is a non-empty array";
            goto out;
        }
        json_array_foreach(ev, i, x)
        {
            const char *s = json_string_value(x);
            if (!s || (strcmp(s, "inspection") && strcmp(s, "class") && strcmp(s, "*"))) {
                msg = "events are \"inspection\", \"class\" or \"*\"";
                goto out;
            }
            if (!strcmp(s, "*")) snprintf(events, cap, "*");
            else if (strcmp(events, "*") && !strstr(events, s))
                snprintf(events + strlen(events), cap - strlen(events), "%s%s", events[0] ? "," : "", s);
        }
    }
    snprintf(out->url, sizeof out->url, "%s", url);
    snprintf(out->secret, sizeof out->secret, "%s", secret);
    if (json_is_string(cls)) {
        out->has_cls = 1;
        snprintf(out->cls, sizeof out->cls, "%s", json_string_value(cls));
    }
out:
    json_decref(o);
    return msg ? rd_body_fail(e, "bad_request", "%s", msg) : 0;
}

/* POST /v1/tokens: the checks and messages the handler had inline. */
int rd_body_token(const char *text, size_t len, rd_token_body *out, rd_body_err *e)
{
    json_error_t je;
    json_t *b = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *k;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!json_is_object(b)) {
        json_decref(b);
        return rd_body_fail(e, "bad_json", "the body is a JSON object {\"scope\", \"name\"?, \"expires_in_s\"?}");
    }
    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "scope") && strcmp(k, "name") && strcmp(k, "expires_in_s")) {
            rd_body_fail(e, "bad_request", "unknown field '%.64s' (scope, name, expires_in_s)", k);
            goto out;
        }
    }
    const char *scope = json_string_value(json_object_get(b, "scope"));
    json_t *name = json_object_get(b, "name"), *ein = json_object_get(b, "expires_in_s");
    if (!scope || (strcmp(scope, "admin") && strcmp(scope, "inspect") && strcmp(scope, "read"))) {
        rd_body_fail(e, "bad_request", "scope is admin, inspect or read");
        goto out;
    }
    if (name && (!json_is_string(name) || json_string_length(name) > 127)) {
        rd_body_fail(e, "bad_request", "name is a string of at most 127 bytes");
        goto out;
    }
    if (ein && !json_is_null(ein)) {
        json_int_t s = json_is_integer(ein) ? json_integer_value(ein) : -1;
        if (s < 1 || s > RD_BODY_TOKEN_EXPIRY_MAX) {
            rd_body_fail(e, "bad_request", "expires_in_s is an integer from 1 to %lld", RD_BODY_TOKEN_EXPIRY_MAX);
            goto out;
        }
        out->expires_in_s = (long long)s;
    }
    snprintf(out->scope, sizeof out->scope, "%s", scope);
    snprintf(out->name, sizeof out->name, "%s", name ? json_string_value(name) : "");
    rc = 0;
out:
    json_decref(b);
    return rc;
}

/* A decimal integer >= 0 (the whole string). */
static int parse_i64(const char *v, int64_t *out)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < 0) return -1;
    *out = x;
    return 0;
}

int rd_body_events_query(const char *cls, const char *last, const char *heartbeat_s, rd_events_query *out,
                         rd_body_err *e)
{
    int64_t v;
    memset(out, 0, sizeof *out);
    if (cls && !rd_route_valid_name(cls)) return rd_body_fail(e, "bad_name", "class must match [a-z0-9][a-z0-9_-]{0,63}");
    if (last && parse_i64(last, &out->last)) return rd_body_fail(e, "bad_request", "Last-Event-ID is an event id (integer)");
    out->has_last = last != NULL;
    if (cls) snprintf(out->cls, sizeof out->cls, "%s", cls), out->has_cls = 1;
    out->heartbeat_s = 15;
    if (heartbeat_s) {
        if (parse_i64(heartbeat_s, &v) || v < 1 || v > 60) return rd_body_fail(e, "bad_request", "heartbeat_s is 1..60");
        out->heartbeat_s = (int)v;
    }
    return 0;
}

/* A finite decimal number (the whole string). */
static int parse_num(const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

int rd_body_inspect_query(const char *threshold, const char *sensitivity, double *thr, double *sens, rd_body_err *e)
{
    *thr = NAN;
    *sens = NAN;
    if (threshold && sensitivity) return rd_body_fail(e, "bad_request", "give threshold or sensitivity, not both");
    if (threshold && (parse_num(threshold, thr) || *thr < 0))
        return rd_body_fail(e, "bad_request", "threshold is a number >= 0 (score units)");
    if (sensitivity && (parse_num(sensitivity, sens) || *sens < 0 || *sens > 1))
        return rd_body_fail(e, "bad_request", "sensitivity is a number from 0 to 1 (0.5 = the class's threshold)");
    return 0;
}
