/* routes.h — the route table's types and its one matcher.  A route is a row
 * {method, pattern, scope, body, handler} (like Redis's command table); a
 * pattern is a path of literal segments and the two parameters {name} (a
 * class name, [a-z0-9][a-z0-9_-]{0,63}) and {id} (a positive integer).
 *
 * rd_route_match answers, for a method and a path, exactly one of: the row
 * (with the parameters validated), "no such path" (404), "the path exists
 * but not for this method" (405, with the allowed methods), or "a parameter
 * is malformed" (400 bad_name / bad_id; only once the path's shape matched).
 * It keeps no state and never writes into the path (no strtok): any number of
 * threads may call it at once.  HEAD matches GET rows. */
#ifndef RD_API_ROUTES_H
#define RD_API_ROUTES_H

#include <stddef.h>
#include <stdint.h>

typedef enum rd_scope { RD_SCOPE_NONE, RD_SCOPE_READ, RD_SCOPE_INSPECT, RD_SCOPE_ADMIN } rd_scope;
/* What a route reads as its body, checked before any body byte is buffered. */
typedef enum rd_body { RD_BODY_NONE, RD_BODY_JSON, RD_BODY_IMAGE } rd_body;

struct rd_req;
typedef int (*rd_handler)(struct rd_req *r);

typedef struct rd_route {
    const char *method;
    const char *pattern;
    rd_scope scope;
    rd_body body;
    rd_handler handler;
} rd_route;

typedef enum rd_match_kind { RD_MATCH_OK, RD_MATCH_NOPATH, RD_MATCH_METHOD, RD_MATCH_BADNAME, RD_MATCH_BADID } rd_match_kind;

#define RD_ROUTE_MAX_SEGS 8
#define RD_NAME_MAX 64

typedef struct rd_match {
    rd_match_kind kind;
    const rd_route *route;      /* OK, BADNAME, BADID: the row */
    char name[RD_NAME_MAX + 1]; /* {name}, when the pattern has one */
    int64_t id;                 /* {id}, when the pattern has one */
    char allow[64];             /* METHOD: "GET, POST" */
} rd_match;

void rd_route_match(const rd_route *table, int n, const char *method, const char *path, rd_match *m);
/* 1 if s is a valid class name. */
int rd_route_valid_name(const char *s);
/* 0 and *out if s is a positive decimal integer of at most 18 digits. */
int rd_route_parse_id(const char *s, int64_t *out);

#endif
