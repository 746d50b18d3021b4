/* config.c — resadd.conf and overrides (see config.h).  Every key is a row
 * of one table: its name, how to parse it, where it goes and its bounds.
 * Adding a setting is adding a row (and its paragraph in etc/resadd.conf;
 * tests/test_config.c checks that every row is documented there). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/log.h"

typedef enum { K_STR, K_INT, K_SIZE, K_U64, K_LONG, K_LISTEN, K_AUTH, K_ONOFF, K_LOGLEVEL } ktype;

typedef struct key {
    const char *name;
    ktype type;
    size_t off, size; /* field in rd_config */
    long lo, hi;      /* K_INT/K_SIZE/K_U64/K_LONG bounds, in the file's unit */
    uint64_t mult;    /* file unit -> field unit */
} key;

#define F(f) offsetof(rd_config, f), sizeof(((rd_config *)0)->f)
static const key keys[] = {
    {"listen", K_LISTEN, 0, 0, 0, 0, 0},
    {"data_dir", K_STR, F(data_dir), 0, 0, 0},
    {"model", K_STR, F(backbone), 0, 0, 0},
    {"backbone", K_STR, F(backbone), 0, 0, 0},
    {"learned_model", K_STR, F(learned_model), 0, 0, 0},
    {"log_file", K_STR, F(log_file), 0, 0, 0},
    {"workers", K_INT, F(workers), 0, 256, 1},
    {"threads_per_worker", K_INT, F(threads_per_worker), 0, 256, 1},
    {"queue_size", K_INT, F(queue_size), 1, 100000, 1},
    {"max_body_mb", K_SIZE, F(max_body), 1, 4096, 1u << 20},
    {"max_megapixels", K_U64, F(max_pixels), 1, 1000, 1000000u},
    {"max_inflight_megapixels", K_U64, F(pixel_budget), 1, 100000, 1000000u},
    {"max_side", K_INT, F(max_side), 16, 100000, 1},
    {"max_json_kb", K_SIZE, F(max_json), 1, 16384, 1024},
    {"max_json_depth", K_INT, F(max_json_depth), 2, 1000, 1},
    {"max_references", K_INT, F(max_references), 2, 64, 1},
    {"request_timeout_s", K_INT, F(request_timeout_s), 1, 3600, 1},
    {"idempotency_window_s", K_INT, F(idempotency_window_s), 0, 31536000, 1},
    {"webhook_timeout_s", K_INT, F(webhook_timeout_s), 1, 300, 1},
    {"webhook_max_attempts", K_INT, F(webhook_max_attempts), 1, 100, 1},
    {"webhook_backoff_ms", K_INT, F(webhook_backoff_ms), 10, 3600000, 1},
    {"webhook_allow_private", K_ONOFF, F(webhook_allow_private), 0, 0, 0},
    {"request_deadline_s", K_INT, F(request_deadline_s), 1, 3600, 1},
    {"max_connections", K_INT, F(max_connections), 4, 100000, 1},
    {"max_connections_per_client", K_INT, F(max_connections_per_client), 1, 100000, 1},
    {"min_free_mb", K_U64, F(min_free), 0, 1000000, 1u << 20},
    {"retention_days", K_LONG, F(retention_days), 0, 100000, 1},
    {"retention_max_inspections", K_LONG, F(retention_max), 0, 1000000000, 1},
    {"retention_max_bytes", K_U64, F(retention_max_bytes), 0, 1000000000000000L, 1},
    {"keep_images", K_STR, F(keep_images), 0, 0, 0},
    {"keep_image_quality", K_INT, F(keep_image_quality), 1, 100, 1},
    {"heatmap_cache_mb", K_SIZE, F(heat_cache), 0, 4096, 1u << 20},
    {"pool_memory_mb", K_SIZE, F(pool_memory), 0, 1048576, 1u << 20},
    {"max_loaded_classes", K_INT, F(max_loaded_classes), 0, 10000000, 1},
    {"auth", K_AUTH, F(auth), 0, 0, 0},
    {"metrics_auth", K_ONOFF, F(metrics_auth), 0, 0, 0},
    {"tls_cert", K_STR, F(tls_cert), 0, 0, 0},
    {"tls_key", K_STR, F(tls_key), 0, 0, 0},
    {"cors_origins", K_STR, F(cors_origins), 0, 0, 0},
    {"log_level", K_LOGLEVEL, F(log_level), 0, 0, 0},
};
#undef F

int rd_config_nkeys(void) { return (int)(sizeof keys / sizeof *keys); }
const char *rd_config_key(int i) { return i >= 0 && i < rd_config_nkeys() ? keys[i].name : NULL; }

void rd_config_defaults(rd_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    snprintf(c->data_dir, sizeof c->data_dir, "/var/lib/resadd");
    c->workers = 0;
    c->threads_per_worker = 0;
    c->queue_size = 64;
    c->auth = RD_AUTH_AUTO;
    c->metrics_auth = 1;
    c->max_body = 32u << 20;
    c->max_pixels = 40000000ull;
    c->pixel_budget = 120000000ull;
    c->max_side = 30000;
    c->max_json = 65536;
    c->max_json_depth = 16;
    c->max_references = 16;
    c->request_timeout_s = 30;
    c->idempotency_window_s = 86400;
    c->webhook_timeout_s = 5;
    c->webhook_max_attempts = 8;
    c->webhook_backoff_ms = 1000;
    c->request_deadline_s = 60;
    c->max_connections = 256;
    c->max_connections_per_client = 64;
    c->min_free = 8u << 20;
    c->retention_days = 30;
    c->retention_max = 1000000;
    snprintf(c->keep_images, sizeof c->keep_images, "last 1000");
    c->keep_image_quality = 85;
    c->heat_cache = 8u << 20;
    c->pool_memory = (size_t)2048 << 20;
    c->max_loaded_classes = 0;
    c->log_level = RD_LOG_INFO;
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

rd_status rd_config_set_listen(rd_config *c, const char *hp, rd_err *err)
{
    const char *colon = strrchr(hp, ':');
    long port;
    size_t hl;
    if (!colon || parse_long(colon + 1, 0, 65535, &port))
        return rd_err_set(err, RD_ERR_ARG, "listen: '%s' is not HOST:PORT (e.g. 127.0.0.1:8080)", hp);
    hl = (size_t)(colon - hp);
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        hp++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof c->listen_host)
        return rd_err_set(err, RD_ERR_ARG, "listen: '%s' has no host (use 0.0.0.0:PORT for all)", hp);
    memcpy(c->listen_host, hp, hl);
    c->listen_host[hl] = '\0';
    c->listen_port = (int)port;
    return RD_OK;
}

int rd_config_is_loopback(const rd_config *c)
{
    return !strncmp(c->listen_host, "127.", 4) || !strcmp(c->listen_host, "::1") ||
           !strcmp(c->listen_host, "localhost");
}

rd_status rd_config_set(rd_config *c, const char *name, const char *v, rd_err *err)
{
    const key *k = NULL;
    long x;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(keys[i].name, name)) k = &keys[i];
    if (!k) return rd_err_set(err, RD_ERR_ARG, "unknown setting '%s'", name);
    char *field = (char *)c + k->off;
    switch (k->type) {
    case K_LISTEN: return rd_config_set_listen(c, v, err);
    case K_STR:
        if (strlen(v) >= k->size) return rd_err_set(err, RD_ERR_ARG, "%s: value too long", name);
        memcpy(field, v, strlen(v) + 1);
        return RD_OK;
    case K_INT:
    case K_SIZE:
    case K_U64:
    case K_LONG:
        if (parse_long(v, k->lo, k->hi, &x))
            return rd_err_set(err, RD_ERR_ARG, "%s: '%s' is not an integer from %ld to %ld", name, v, k->lo, k->hi);
        if (k->type == K_INT) *(int *)(void *)field = (int)x;
        else if (k->type == K_SIZE) *(size_t *)(void *)field = (size_t)x * (size_t)k->mult;
        else if (k->type == K_U64) *(uint64_t *)(void *)field = (uint64_t)x * k->mult;
        else *(long *)(void *)field = x;
        return RD_OK;
    case K_AUTH:
        if (!strcmp(v, "auto")) c->auth = RD_AUTH_AUTO;
        else if (!strcmp(v, "on")) c->auth = RD_AUTH_ON;
        else if (!strcmp(v, "off")) c->auth = RD_AUTH_OFF;
        else return rd_err_set(err, RD_ERR_ARG, "auth: '%s' is not auto, on or off", v);
        return RD_OK;
    case K_ONOFF:
        if (!strcmp(v, "on") || !strcmp(v, "true")) *(int *)(void *)field = 1;
        else if (!strcmp(v, "off") || !strcmp(v, "false")) *(int *)(void *)field = 0;
        else return rd_err_set(err, RD_ERR_ARG, "%s: '%s' is not on or off (or true or false)", name, v);
        return RD_OK;
    case K_LOGLEVEL: {
        int l = rd_log_level_parse(v);
        if (l < 0) return rd_err_set(err, RD_ERR_ARG, "log_level: '%s' is not error, warning, info or debug", v);
        c->log_level = l;
        return RD_OK;
    }
    }
    return rd_err_set(err, RD_ERR_INTERNAL, "%s: unhandled key type", name);
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

rd_status rd_config_parse(rd_config *c, const char *text, size_t len, const char *name, rd_err *err)
{
    char line[4096];
    int lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (ll >= sizeof line) return rd_err_set(err, RD_ERR_FORMAT, "%s:%d: line too long", name, lineno);
        if (memchr(text + pos, '\0', ll)) return rd_err_set(err, RD_ERR_FORMAT, "%s:%d: NUL byte", name, lineno);
        memcpy(line, text + pos, ll);
        line[ll] = '\0';
        pos += ll + (nl ? 1 : 0);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) return rd_err_set(err, RD_ERR_FORMAT, "%s:%d: expected 'key = value'", name, lineno);
        *eq = '\0';
        char *k = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        rd_status st = rd_config_set(c, k, val, err);
        if (st != RD_OK) {
            rd_err_prefix(err, "%s:%d", name, lineno);
            return st;
        }
    }
    return RD_OK;
}

rd_status rd_config_load(rd_config *c, const char *path, rd_err *err)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    rd_status st;
    if (!f) return rd_err_set(err, RD_ERR_IO, "cannot read config %s: %s", path, strerror(errno));
    for (;;) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 8192;
            char *p = nc <= (1u << 20) ? realloc(buf, nc) : NULL;
            if (!p) {
                free(buf);
                fclose(f);
                return rd_err_set(err, RD_ERR_LIMIT, "config %s: larger than 1 MiB", path);
            }
            buf = p;
            cap = nc;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    st = rd_config_parse(c, buf ? buf : "", len, path, err);
    free(buf);
    return st;
}
