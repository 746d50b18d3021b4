/* bodies.h — the JSON request bodies of the API, parsed and validated into
 * structs: POST /v1/classes {"name", "description"} and PATCH
 * /v1/classes/{name} {"description", "threshold"}, POST /v1/webhooks
 * {"url", "secret", "events", "class"}, POST /v1/tokens {"scope", "name",
 * "expires_in_s"}; and the query/header values of GET /v1/events (?class=,
 * Last-Event-ID, ?heartbeat_s=) and of an inspection (?threshold=,
 * ?sensitivity=).  The class bodies are checked for nesting depth before
 * jansson parses them (jansson recurses).  On error the functions fill an
 * error word ("bad_json", "bad_name", "bad_request") and a message for the
 * 400 reply. */
#ifndef RD_API_BODIES_H
#define RD_API_BODIES_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

#define RD_BODY_DESC_MAX 4096

typedef struct rd_body_err {
    const char *code;
    char msg[512];
} rd_body_err;

/* Fills e (code, printf-style message) and returns -1: how every body parser
 * here and in api/labels.c reports a refusal. */
int rd_body_fail(rd_body_err *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct rd_class_create_body {
    char name[72];
    char description[RD_BODY_DESC_MAX + 1];
    int has_geo; /* "geometry": {"size", "fit", "roi", "tile", "alpha"} (all optional) */
    rd_geo_opts geo;
} rd_class_create_body;

typedef struct rd_class_patch_body {
    int has_description;
    char description[RD_BODY_DESC_MAX + 1];
    int set_threshold; /* 0 unchanged, 1 set to threshold, 2 back to auto (null) */
    double threshold;
    int has_geo; /* "geometry" as in create: only while the class has no references */
    rd_geo_opts geo;
} rd_class_patch_body;

#define RD_BODY_URL_MAX 1024 /* = RD_STORE_URL_MAX (checked in api/hooks.c) */

typedef struct rd_webhook_body {
    char url[RD_BODY_URL_MAX + 1]; /* http:// or https:// */
    char secret[256];              /* 8 to 255 bytes */
    char events[128];              /* "inspection" (default), "class", "inspection,class" or "*" */
    int has_cls;                   /* 0: every class */
    char cls[72];
} rd_webhook_body;

#define RD_BODY_TOKEN_EXPIRY_MAX (10LL * 365 * 86400)

typedef struct rd_token_body {
    char scope[8];           /* "admin", "inspect" or "read" */
    char name[128];          /* "" when not given */
    long long expires_in_s;  /* 0: never; else 1..RD_BODY_TOKEN_EXPIRY_MAX */
} rd_token_body;

typedef struct rd_events_query {
    int has_cls;
    char cls[72];
    int has_last; /* Last-Event-ID (or ?last_event_id=) given */
    int64_t last;
    int heartbeat_s; /* 1..60, default 15 */
} rd_events_query;

/* Nesting depth of a JSON text (brackets outside strings). */
int rd_body_json_depth(const char *p, size_t n);
int rd_body_class_create(const char *text, size_t len, int max_depth, rd_class_create_body *out, rd_body_err *e);
int rd_body_class_patch(const char *text, size_t len, int max_depth, rd_class_patch_body *out, rd_body_err *e);
int rd_body_webhook(const char *text, size_t len, rd_webhook_body *out, rd_body_err *e);
int rd_body_token(const char *text, size_t len, rd_token_body *out, rd_body_err *e);
/* Each argument NULL when absent. */
int rd_body_events_query(const char *cls, const char *last, const char *heartbeat_s, rd_events_query *out,
                         rd_body_err *e);
/* *threshold / *sensitivity are NAN when absent. */
int rd_body_inspect_query(const char *threshold, const char *sensitivity, double *thr, double *sens, rd_body_err *e);

#endif
