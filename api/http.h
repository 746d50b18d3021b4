/* http.h — resadd's REST API on libmicrohttpd: routing, bearer-token auth
 * with scopes, body limits, JSON (jansson) and multipart/form-data (MHD's
 * post processor) parsing, errors as {"error": {"code", "message"}}.  No
 * maths here: requests go to the engine (daemon/engine.h). */
#ifndef RD_HTTP_H
#define RD_HTTP_H

#include "../daemon/config.h"
#include "../daemon/engine.h"
#include "../daemon/store.h"

typedef struct rd_http rd_http;

rd_http *rd_http_start(const rd_config *cfg, rd_engine *e, rd_store *s, rd_err *err);
/* Stops accepting new connections (shutdown, first step). */
void rd_http_quiesce(rd_http *h);
/* Waits for in-flight requests and frees. */
void rd_http_stop(rd_http *h);
/* The OpenAPI 3 document (static JSON text). */
extern const char rd_openapi_json[];

#endif
