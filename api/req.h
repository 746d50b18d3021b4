/* req.h — what a handler sees of one request, and the reply helpers
 * (internal to api/: http.c fills it, handlers.c uses it). */
#ifndef RD_API_REQ_H
#define RD_API_REQ_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

#include "http.h"

typedef struct rd_req {
    struct MHD_Connection *mc;
    rd_engine *e;
    const rd_api_opts *o;
    const char *method, *url;
    const char *name;   /* {name}, validated */
    int64_t id;         /* {id}, validated */
    const uint8_t *body;
    size_t len;
    const char *ctype;  /* Content-Type header or NULL */
    void *conn;         /* http.c's connection state */
} rd_req;

const char *rd_req_header(rd_req *r, const char *k);
const char *rd_req_query(rd_req *r, const char *k);
/* Adds a header to the reply this request will get (k and v must live until
 * the reply is queued; at most 4). */
void rd_req_add_header(rd_req *r, const char *k, const char *v);
/* Signs path for a short-lived URL with this daemon's secret (browser.h). */
int rd_req_sign(rd_req *r, const char *path, long long exp, const char *kind, char out[65]);
int rd_reply_json(rd_req *r, int status, json_t *o);
int rd_reply_json_loc(rd_req *r, int status, json_t *o, const char *location);
int rd_reply_buf(rd_req *r, int status, const char *ctype, void *data, size_t len, int must_free);
int rd_reply_err(rd_req *r, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int rd_reply_code(rd_req *r, rd_ecode code, const rd_err *err);
/* The request's images (raw body or multipart file parts) into u[0..max);
 * returns how many, or -1 after replying. */
int rd_req_uploads(rd_req *r, rd_upload *u, int max);

#endif
