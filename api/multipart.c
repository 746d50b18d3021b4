/* multipart.c — multipart/form-data parsing (see multipart.h). */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int rd_multipart_boundary(const char *ct, char *out, size_t cap)
{
    const char *p = ct ? strcasestr(ct, "boundary=") : NULL;
    size_t n = 0;
    if (!p || cap < 71) return -1;
    p += 9;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"') n++;
        if (p[n] != '"') return -1;
    } else {
        while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') n++;
    }
    if (n < 1 || n > 70) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* 1 if the header value v (n bytes) has the parameter param=. */
static int has_param(const char *v, size_t n, const char *param)
{
    size_t pl = strlen(param);
    for (size_t i = 0; i + pl < n; i++)
        if ((i == 0 || v[i - 1] == ';' || v[i - 1] == ' ' || v[i - 1] == '\t') && !strncasecmp(v + i, param, pl) &&
            v[i + pl] == '=')
            return 1;
    return 0;
}

static int fail(char *msg, size_t cap, const char *what)
{
    snprintf(msg, cap, "malformed multipart/form-data body: %s", what);
    return -1;
}

int rd_multipart_parse(const uint8_t *body, size_t len, const char *boundary, rd_mpart *parts, int max, int *n,
                       char *msg, size_t msgcap)
{
    char delim[80];
    size_t dl = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const uint8_t *end = body + len, *p;
    *n = 0;
    if (dl < 5 || dl > 74) return fail(msg, msgcap, "bad boundary");
    /* the first delimiter: at the very start, or after a CRLF (preamble) */
    if (len >= dl - 2 && !memcmp(body, delim + 2, dl - 2)) {
        p = body + dl - 2;
    } else {
        const uint8_t *q = memmem(body, len, delim, dl);
        if (!q) return fail(msg, msgcap, "no boundary");
        p = q + dl;
    }
    for (;;) {
        /* after a delimiter: "--" closes, else padding and CRLF open a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return fail(msg, msgcap, "no CRLF after a boundary");
        p += 2;
        if (*n == max) return fail(msg, msgcap, "too many parts");
        rd_mpart *part = &parts[*n];
        memset(part, 0, sizeof *part);
        /* headers, up to an empty line */
        for (;;) {
            const uint8_t *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
            if (!eol) return fail(msg, msgcap, "part headers not terminated");
            size_t hl = (size_t)(eol - p);
            const char *h = (const char *)p;
            p = eol + 2;
            if (!hl) break;
            const char *colon = memchr(h, ':', hl);
            if (!colon) return fail(msg, msgcap, "part header without ':'");
            size_t kl = (size_t)(colon - h);
            const char *v = colon + 1;
            size_t vl = hl - kl - 1;
            while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
            if (kl == 19 && !strncasecmp(h, "Content-Disposition", 19)) {
                part->is_file = has_param(v, vl, "filename") || has_param(v, vl, "filename*");
            } else if (kl == 12 && !strncasecmp(h, "Content-Type", 12)) {
                size_t k = vl < sizeof part->ctype - 1 ? vl : sizeof part->ctype - 1;
                memcpy(part->ctype, v, k);
                part->ctype[k] = '\0';
            }
        }
        const uint8_t *q = memmem(p, (size_t)(end - p), delim, dl);
        if (!q) return fail(msg, msgcap, "no closing boundary");
        part->data = p;
        part->len = (size_t)(q - p);
        (*n)++;
        p = q + dl;
    }
}
