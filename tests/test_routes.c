/* test_routes.c — the route table and its matcher, the error table and the
 * OpenAPI document:
 *  - every row matches its own pattern, with {name}/{id} validated once
 *    (400 bad_name/bad_id only when the shape matched), 404 vs 405 (with
 *    Allow), HEAD = GET, no trailing-slash or empty-segment surprises;
 *  - the matcher is thread-safe: 4 threads × 250 000 mixed matches give 0
 *    misrouted answers (the old strtok split gave thousands);
 *  - every rd_ecode has a row (static_assert in errors.c) with a sane status;
 *  - every row is documented in the OpenAPI paths and every documented
 *    operation is a row. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/errors.h"
#include "api/http.h"
#include "api/routes.h"
#include "testutil.h"

typedef struct tcase {
    const char *method, *path;
    rd_match_kind kind;
    const char *pattern; /* expected row (OK/BAD*) */
    const char *name;
    long long id;
    const char *allow;
} tcase;

static const tcase cases[] = {
    {"GET", "/healthz", RD_MATCH_OK, "/healthz", "", 0, NULL},
    {"HEAD", "/healthz", RD_MATCH_OK, "/healthz", "", 0, NULL},
    {"POST", "/healthz", RD_MATCH_METHOD, NULL, "", 0, "GET"},
    {"GET", "/v1/model", RD_MATCH_OK, "/v1/model", "", 0, NULL},
    {"POST", "/v1/model", RD_MATCH_METHOD, NULL, "", 0, "GET"},
    {"DELETE", "/v1/model", RD_MATCH_METHOD, NULL, "", 0, "GET"},
    {"GET", "/v1/classes", RD_MATCH_OK, "/v1/classes", "", 0, NULL},
    {"POST", "/v1/classes", RD_MATCH_OK, "/v1/classes", "", 0, NULL},
    {"PUT", "/v1/classes", RD_MATCH_METHOD, NULL, "", 0, "GET, POST"},
    {"GET", "/v1/classes/part-1", RD_MATCH_OK, "/v1/classes/{name}", "part-1", 0, NULL},
    {"PATCH", "/v1/classes/part-1", RD_MATCH_OK, "/v1/classes/{name}", "part-1", 0, NULL},
    {"DELETE", "/v1/classes/part-1", RD_MATCH_OK, "/v1/classes/{name}", "part-1", 0, NULL},
    {"POST", "/v1/classes/abc", RD_MATCH_METHOD, NULL, "", 0, "GET, PATCH, DELETE"},
    {"GET", "/v1/classes/BAD", RD_MATCH_BADNAME, "/v1/classes/{name}", "", 0, NULL},
    {"GET", "/v1/classes/-x", RD_MATCH_BADNAME, "/v1/classes/{name}", "", 0, NULL},
    {"GET", "/v1/classes/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RD_MATCH_BADNAME,
     "/v1/classes/{name}", "", 0, NULL},
    {"GET", "/v1/classes/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RD_MATCH_OK,
     "/v1/classes/{name}", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, NULL},
    {"GET", "/v1/classes/", RD_MATCH_NOPATH, NULL, "", 0, NULL},
    {"GET", "/v1/classes//references", RD_MATCH_NOPATH, NULL, "", 0, NULL},
    {"GET", "/v1/classes/p/references", RD_MATCH_OK, "/v1/classes/{name}/references", "p", 0, NULL},
    {"POST", "/v1/classes/p/references", RD_MATCH_OK, "/v1/classes/{name}/references", "p", 0, NULL},
    {"GET", "/v1/classes/p/references/42", RD_MATCH_OK, "/v1/classes/{name}/references/{id}", "p", 42, NULL},
    {"DELETE", "/v1/classes/p/references/7", RD_MATCH_OK, "/v1/classes/{name}/references/{id}", "p", 7, NULL},
    {"GET", "/v1/classes/p/references/xyz", RD_MATCH_BADID, "/v1/classes/{name}/references/{id}", "p", 0, NULL},
    {"PUT", "/v1/classes/p/roi-mask", RD_MATCH_OK, "/v1/classes/{name}/roi-mask", "p", 0, NULL},
    {"POST", "/v1/classes/p/roi-mask", RD_MATCH_METHOD, NULL, "", 0, "PUT, GET, DELETE"},
    {"POST", "/v1/classes/p/inspections", RD_MATCH_OK, "/v1/classes/{name}/inspections", "p", 0, NULL},
    {"GET", "/v1/classes/p/inspections", RD_MATCH_METHOD, NULL, "", 0, "POST"},
    {"POST", "/v1/classes/P/inspections", RD_MATCH_BADNAME, "/v1/classes/{name}/inspections", "", 0, NULL},
    {"GET", "/v1/inspections", RD_MATCH_OK, "/v1/inspections", "", 0, NULL},
    {"GET", "/v1/inspections/12", RD_MATCH_OK, "/v1/inspections/{id}", "", 12, NULL},
    {"GET", "/v1/inspections/0", RD_MATCH_BADID, "/v1/inspections/{id}", "", 0, NULL},
    {"GET", "/v1/inspections/-1", RD_MATCH_BADID, "/v1/inspections/{id}", "", 0, NULL},
    {"GET", "/v1/inspections/1.5", RD_MATCH_BADID, "/v1/inspections/{id}", "", 0, NULL},
    {"GET", "/v1/inspections/99999999999999999999", RD_MATCH_BADID, "/v1/inspections/{id}", "", 0, NULL},
    {"GET", "/v1/inspections/12/heatmap.png", RD_MATCH_OK, "/v1/inspections/{id}/heatmap.png", "", 12, NULL},
    {"DELETE", "/v1/inspections/12", RD_MATCH_METHOD, NULL, "", 0, "GET"},
    {"GET", "/v1/stats", RD_MATCH_OK, "/v1/stats", "", 0, NULL},
    {"GET", "/v1/openapi.json", RD_MATCH_OK, "/v1/openapi.json", "", 0, NULL},
    {"GET", "/v2/nothing", RD_MATCH_NOPATH, NULL, "", 0, NULL},
    {"GET", "", RD_MATCH_NOPATH, NULL, "", 0, NULL},
    {"GET", "/", RD_MATCH_OK, "/", "", 0, NULL}, /* the dashboard */
    {"POST", "/", RD_MATCH_METHOD, NULL, "", 0, "GET"},
    {"GET", "/dashboard/app.js", RD_MATCH_OK, "/dashboard/app.js", "", 0, NULL},
    {"GET", "//", RD_MATCH_NOPATH, NULL, "", 0, NULL},
    {"GET", "/a/b/c/d/e/f/g/h/i/j/k", RD_MATCH_NOPATH, NULL, "", 0, NULL},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

/* 0 when m is what c expects. */
static int wrong(const tcase *c, const rd_match *m)
{
    if (m->kind != c->kind) return 1;
    if (c->pattern && (!m->route || strcmp(m->route->pattern, c->pattern))) return 2;
    if (c->kind == RD_MATCH_OK && (strcmp(m->name, c->name) || m->id != c->id)) return 3;
    if (c->allow && strcmp(m->allow, c->allow)) return 4;
    if (c->kind == RD_MATCH_OK && strcmp(m->route->method, !strcmp(c->method, "HEAD") ? "GET" : c->method)) return 5;
    return 0;
}

static void *hammer(void *arg)
{
    long bad = 0;
    unsigned seed = (unsigned)(size_t)arg * 2654435761u + 1;
    rd_match m;
    for (int i = 0; i < 250000; i++) {
        seed = seed * 1103515245u + 12345u;
        const tcase *c = &cases[(seed >> 8) % NCASES];
        rd_route_match(rd_api_routes, rd_api_nroutes, c->method, c->path, &m);
        bad += wrong(c, &m) != 0;
    }
    return (void *)bad;
}

static void openapi(void)
{
    json_error_t je;
    json_t *doc = json_loads(rd_openapi_json, 0, &je);
    RD_CHECK(doc != NULL, "openapi JSON: %s", je.text);
    if (!doc) return;
    json_t *paths = json_object_get(doc, "paths");
    int documented = 0;
    for (int i = 0; i < rd_api_nroutes; i++) {
        char m[16];
        const rd_route *r = &rd_api_routes[i];
        size_t k;
        for (k = 0; r->method[k] && k < sizeof m - 1; k++) m[k] = (char)(r->method[k] | 0x20);
        m[k] = '\0';
        json_t *p = json_object_get(paths, r->pattern);
        RD_CHECK(p && json_object_get(p, m), "route %s %s is not in the OpenAPI document", r->method, r->pattern);
    }
    const char *path, *op;
    json_t *item, *v;
    json_object_foreach(paths, path, item)
    {
        json_object_foreach(item, op, v)
        {
            if (!strcmp(op, "parameters")) continue;
            documented++;
            int found = 0;
            for (int i = 0; i < rd_api_nroutes; i++) {
                const rd_route *r = &rd_api_routes[i];
                if (!strcmp(r->pattern, path) && !strcasecmp(r->method, op)) found = 1;
            }
            RD_CHECK(found, "documented %s %s has no route", op, path);
        }
    }
    RD_CHECK(documented == rd_api_nroutes, "%d documented operations, %d routes", documented, rd_api_nroutes);
    json_decref(doc);
}

int main(void)
{
    rd_match m;
    for (int i = 0; i < NCASES; i++) {
        rd_route_match(rd_api_routes, rd_api_nroutes, cases[i].method, cases[i].path, &m);
        int w = wrong(&cases[i], &m);
        RD_CHECK(!w, "%s %s: kind %d (want %d), route %s, name '%s', id %lld, allow '%s' (reason %d)", cases[i].method,
                 cases[i].path, m.kind, cases[i].kind, m.route ? m.route->pattern : "-", m.name, (long long)m.id,
                 m.allow, w);
    }
    /* every row reachable, no two rows alike */
    for (int i = 0; i < rd_api_nroutes; i++) {
        char path[256];
        const rd_route *r = &rd_api_routes[i];
        size_t o = 0;
        for (const char *p = r->pattern; *p && o < sizeof path - 8;) {
            if (!strncmp(p, "{name}", 6)) o += (size_t)snprintf(path + o, sizeof path - o, "n1"), p += 6;
            else if (!strncmp(p, "{id}", 4)) o += (size_t)snprintf(path + o, sizeof path - o, "9"), p += 4;
            else path[o++] = *p++;
        }
        path[o] = '\0';
        rd_route_match(rd_api_routes, rd_api_nroutes, r->method, path, &m);
        RD_CHECK(m.kind == RD_MATCH_OK && m.route == r, "row %s %s is shadowed", r->method, r->pattern);
        RD_CHECK(r->handler != NULL, "row %s %s has no handler", r->method, r->pattern);
    }
    pthread_t t[4];
    long total = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        total += (long)bad;
    }
    printf("4 threads x 250000 matches: %ld misrouted\n", total);
    RD_CHECK(total == 0, "%ld misrouted matches under 4 threads", total);
    /* the error table */
    for (int c = 0; c < RD_E_COUNT; c++) {
        int st = rd_api_status((rd_ecode)c);
        RD_CHECK(st >= 200 && st <= 599, "code %d: status %d", c, st);
        for (int d = 0; d < c; d++)
            RD_CHECK(strcmp(rd_api_code_name((rd_ecode)c), rd_api_code_name((rd_ecode)d)), "codes %d and %d share a word",
                     c, d);
    }
    RD_CHECK(rd_api_status(RD_E_FULL) == 507 && !strcmp(rd_api_code_name(RD_E_FULL), "insufficient_storage"), "507");
    RD_CHECK(rd_api_status(RD_E_NOTFOUND) == 404 && rd_api_status(RD_E_BADREQ) == 400, "404/400 distinct");
    RD_CHECK(rd_api_status((rd_ecode)RD_E_COUNT) == 500, "out of range");
    openapi();
    return rd_test_done("test_routes");
}
