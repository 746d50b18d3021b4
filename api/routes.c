/* routes.c — the route matcher (see routes.h).  Paths are compared segment
 * by segment in place: a segment is the bytes between two '/', so "a//b"
 * has an empty segment and matches nothing, and a trailing '/' is an empty
 * last segment (no route ends in one). */
#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rd_route_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > RD_NAME_MAX) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-')) return 0;
    return 1;
}

int rd_route_parse_id(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 18) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v <= 0) return -1;
    *out = v;
    return 0;
}

typedef struct seg {
    const char *p;
    size_t n;
} seg;

/* Splits path (after its leading '/') into segments; -1 if too many. */
static int split(const char *path, seg *s, int max)
{
    int n = 0;
    if (*path != '/') return -1;
    const char *p = path + 1;
    for (;;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (n == max) return -1;
        s[n].p = p;
        s[n].n = len;
        n++;
        if (!q) break;
        p = q + 1;
    }
    return n;
}

static int seg_is(const seg *s, const char *lit, size_t n) { return s->n == n && !memcmp(s->p, lit, n); }

/* Does the path's shape fit pattern?  Fills the raw parameter text. */
static int shape(const char *pattern, const seg *s, int ns, char *name, size_t namecap, char *id, size_t idcap,
                 int *has_name, int *has_id)
{
    seg ps[RD_ROUTE_MAX_SEGS];
    int np = split(pattern, ps, RD_ROUTE_MAX_SEGS);
    *has_name = *has_id = 0;
    if (np != ns) return 0;
    for (int i = 0; i < np; i++) {
        if (seg_is(&ps[i], "{name}", 6) || seg_is(&ps[i], "{id}", 4)) {
            int isname = ps[i].n == 6;
            if (!s[i].n) return 0;
            char *dst = isname ? name : id;
            size_t cap = isname ? namecap : idcap;
            size_t k = s[i].n < cap - 1 ? s[i].n : cap - 1;
            memcpy(dst, s[i].p, k);
            dst[k] = '\0';
            if (s[i].n >= cap - 1) dst[cap - 2] = '\x01'; /* too long: never valid */
            if (isname) *has_name = 1;
            else *has_id = 1;
            continue;
        }
        if (s[i].n != ps[i].n || memcmp(s[i].p, ps[i].p, ps[i].n)) return 0;
    }
    return 1;
}

void rd_route_match(const rd_route *table, int n, const char *method, const char *path, rd_match *m)
{
    seg s[RD_ROUTE_MAX_SEGS];
    char name[RD_NAME_MAX + 2], id[24];
    int ns = split(path, s, RD_ROUTE_MAX_SEGS), has_name, has_id;
    const char *want = !strcmp(method, "HEAD") ? "GET" : method;
    memset(m, 0, sizeof *m);
    m->kind = RD_MATCH_NOPATH;
    if (ns < 0) return;
    for (int i = 0; i < n; i++) {
        if (!shape(table[i].pattern, s, ns, name, sizeof name, id, sizeof id, &has_name, &has_id)) continue;
        if (strcmp(table[i].method, want) != 0) {
            if (m->kind == RD_MATCH_NOPATH) m->kind = RD_MATCH_METHOD;
            if (m->kind == RD_MATCH_METHOD && !strstr(m->allow, table[i].method)) {
                size_t l = strlen(m->allow);
                snprintf(m->allow + l, sizeof m->allow - l, "%s%s", l ? ", " : "", table[i].method);
            }
            continue;
        }
        m->route = &table[i];
        if (has_name && !rd_route_valid_name(name)) {
            m->kind = RD_MATCH_BADNAME;
            return;
        }
        if (has_name) memcpy(m->name, name, strlen(name) + 1); /* valid: at most RD_NAME_MAX bytes */
        if (has_id && rd_route_parse_id(id, &m->id)) {
            m->kind = RD_MATCH_BADID;
            return;
        }
        m->kind = RD_MATCH_OK;
        m->allow[0] = '\0';
        return;
    }
}
