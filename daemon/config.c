/* config.c — parsing resadd.conf and overrides (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void rd_config_defaults(rd_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    snprintf(c->data_dir, sizeof c->data_dir, "/var/lib/resadd");
    c->workers = 1;
    c->threads_per_worker = 0;
    c->queue_size = 64;
    c->auth = RD_AUTH_AUTO;
    c->max_body = 32u << 20;
    c->max_pixels = 40000000ull;
    c->max_side = 30000;
    c->max_json = 65536;
    c->max_json_depth = 16;
    c->max_references = 16;
    c->request_timeout_s = 30;
    c->max_connections = 128;
    c->retention_days = 30;
    c->retention_max = 1000000;
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

#define STR_KEY(k, field)                                                      \
    if (!strcmp(key, k)) {                                                     \
        if (strlen(v) >= sizeof c->field)                                      \
            return rd_err_set(err, RD_ERR_ARG, "%s: value too long", key);     \
        snprintf(c->field, sizeof c->field, "%s", v);                          \
        return RD_OK;                                                          \
    }
#define INT_KEY(k, field, lo, hi, mult)                                                                \
    if (!strcmp(key, k)) {                                                                             \
        long x;                                                                                        \
        if (parse_long(v, lo, hi, &x))                                                                 \
            return rd_err_set(err, RD_ERR_ARG, "%s: '%s' is not an integer from %ld to %ld", key, v,   \
                              (long)(lo), (long)(hi));                                                 \
        c->field = (__typeof__(c->field))x * (mult);                                                   \
        return RD_OK;                                                                                  \
    }

rd_status rd_config_set(rd_config *c, const char *key, const char *v, rd_err *err)
{
    if (!strcmp(key, "listen")) return rd_config_set_listen(c, v, err);
    STR_KEY("data_dir", data_dir)
    STR_KEY("model", backbone)
    STR_KEY("backbone", backbone)
    STR_KEY("learned_model", learned_model)
    STR_KEY("log_file", log_file)
    INT_KEY("workers", workers, 1, 256, 1)
    INT_KEY("threads_per_worker", threads_per_worker, 0, 256, 1)
    INT_KEY("queue_size", queue_size, 1, 100000, 1)
    INT_KEY("max_body_mb", max_body, 1, 4096, (size_t)1 << 20)
    INT_KEY("max_megapixels", max_pixels, 1, 1000, 1000000ull)
    INT_KEY("max_side", max_side, 16, 100000, 1)
    INT_KEY("max_json_kb", max_json, 1, 16384, 1024)
    INT_KEY("max_json_depth", max_json_depth, 2, 1000, 1)
    INT_KEY("max_references", max_references, 2, 64, 1)
    INT_KEY("request_timeout_s", request_timeout_s, 1, 3600, 1)
    INT_KEY("max_connections", max_connections, 4, 100000, 1)
    INT_KEY("retention_days", retention_days, 0, 100000, 1)
    INT_KEY("retention_max_inspections", retention_max, 0, 1000000000, 1)
    if (!strcmp(key, "auth")) {
        if (!strcmp(v, "auto")) c->auth = RD_AUTH_AUTO;
        else if (!strcmp(v, "on")) c->auth = RD_AUTH_ON;
        else if (!strcmp(v, "off")) c->auth = RD_AUTH_OFF;
        else return rd_err_set(err, RD_ERR_ARG, "auth: '%s' is not auto, on or off", v);
        return RD_OK;
    }
    if (!strcmp(key, "log_level")) {
        int l = rd_log_level_parse(v);
        if (l < 0) return rd_err_set(err, RD_ERR_ARG, "log_level: '%s' is not error, warning, info or debug", v);
        c->log_level = l;
        return RD_OK;
    }
    return rd_err_set(err, RD_ERR_ARG, "unknown setting '%s'", key);
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

rd_status rd_config_load(rd_config *c, const char *path, rd_err *err)
{
    char line[4096];
    int lineno = 0;
    rd_status st = RD_OK;
    FILE *f = fopen(path, "r");
    if (!f) return rd_err_set(err, RD_ERR_IO, "cannot read config %s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *s, *eq;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = rd_err_set(err, RD_ERR_FORMAT, "%s:%d: line too long", path, lineno);
            break;
        }
        s = trim(line);
        if (!*s || *s == '#') continue;
        eq = strchr(s, '=');
        if (!eq) {
            st = rd_err_set(err, RD_ERR_FORMAT, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        if ((st = rd_config_set(c, key, val, err)) != RD_OK) {
            rd_err_prefix(err, "%s:%d", path, lineno);
            break;
        }
    }
    fclose(f);
    return st;
}
