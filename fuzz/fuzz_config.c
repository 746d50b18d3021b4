/* fuzz_config.c — libFuzzer target for resadd's settings (daemon/config.h):
 * the input is a whole config file for rd_config_parse (what rd_config_load
 * runs on a file's contents), and its first line is also given as the value
 * of every key in the table through rd_config_set (the path command-line
 * overrides take) and to rd_config_set_listen. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "fuzz.h"

/* Every string setting stays terminated, whatever was set. */
static void check(const rd_config *c)
{
    if (!memchr(c->listen_host, '\0', sizeof c->listen_host) || !memchr(c->data_dir, '\0', sizeof c->data_dir) ||
        !memchr(c->backbone, '\0', sizeof c->backbone) || !memchr(c->log_file, '\0', sizeof c->log_file))
        abort();
    (void)rd_config_is_loopback(c);
}

static void overrides(const uint8_t *data, size_t size)
{
    rd_config c;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    char *v = malloc(n + 1);
    if (!v) return;
    memcpy(v, data, n);
    v[n] = '\0';
    rd_config_defaults(&c);
    for (int i = 0; i < rd_config_nkeys(); i++) {
        rd_err e = {0};
        const char *key = rd_config_key(i);
        if (!key) abort();
        if (rd_config_set(&c, key, v, &e) != RD_OK && !e.msg[0]) abort();
    }
    {
        rd_err e = {0};
        if (rd_config_set_listen(&c, v, &e) != RD_OK && !e.msg[0]) abort();
    }
    check(&c);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_config c;
    rd_err e = {0};
    rd_config_defaults(&c);
    rd_status st = rd_config_parse(&c, (const char *)data, size, "fuzz.conf", &e);
    rd_fuzz_note("parse", st, &e);
    if (st != RD_OK && !e.msg[0]) abort();
    check(&c);
    overrides(data, size);
    return 0;
}
