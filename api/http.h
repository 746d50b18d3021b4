/* http.h — resadd's REST API on libmicrohttpd: the route table (routes.h,
 * handlers.c), bearer-token auth with scopes, limits checked before any body
 * byte is buffered, per-request deadlines and per-client connection caps,
 * JSON views (views.h), errors as {"error": {"code", "message"}} mapped by
 * errors.c.  No SQL and no maths here: requests go to the engine. */
#ifndef RD_HTTP_H
#define RD_HTTP_H

#include <stddef.h>

#include "engine/engine.h"
#include "routes.h"

typedef struct rd_api_opts {
    const char *host;       /* IPv4/IPv6 literal or "localhost" */
    int port;
    int auth;               /* 1: bearer tokens required */
    int metrics_public;     /* 1: /metrics needs no token even with auth on */
    size_t max_body;        /* bytes of an image upload */
    size_t max_json;        /* bytes of a JSON body */
    int max_json_depth;
    int max_connections;
    int max_per_client;     /* connections from one client address */
    int request_deadline_s; /* headers + body must arrive within this */
    const char *tls_cert;   /* PEM text; with tls_key: HTTPS (NULL: plain HTTP) */
    const char *tls_key;
    const char *cors_origins; /* "" or NULL: no CORS headers; "*" or space-separated origins */
} rd_api_opts;

typedef struct rd_http rd_http;

/* Listens; o and e must outlive the returned object. */
rd_http *rd_http_start(const rd_api_opts *o, rd_engine *e, rd_err *err);
/* Stops accepting new connections (shutdown, first step). */
void rd_http_quiesce(rd_http *h);
/* Waits for in-flight requests and frees. */
void rd_http_stop(rd_http *h);

/* The route table (handlers.c) and the OpenAPI 3 document (openapi.c). */
extern const rd_route rd_api_routes[];
extern const int rd_api_nroutes;
extern const char rd_openapi_json[];

#endif
