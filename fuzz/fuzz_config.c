/* fuzz_config.c — libFuzzer target for resadd's settings (daemon/config.h):
 * the input is a whole config file for rd_config_load (through a memfd, so no
 * disk is touched), and its first line is also split at '=' into one
 * rd_config_set call, the path command-line overrides take. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/config.h"
#include "fuzz.h"

static void check(const rd_config *c)
{
    if (!memchr(c->listen_host, '\0', sizeof c->listen_host) || !memchr(c->data_dir, '\0', sizeof c->data_dir) ||
        !memchr(c->backbone, '\0', sizeof c->backbone) || !memchr(c->log_file, '\0', sizeof c->log_file))
        abort(); /* every string setting stays terminated */
}

static void one_override(const uint8_t *data, size_t size)
{
    rd_config c;
    rd_err e = {0};
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    char *s = malloc(n + 1), *eq;
    if (!s) return;
    memcpy(s, data, n);
    s[n] = '\0';
    rd_config_defaults(&c);
    if ((eq = strchr(s, '='))) {
        *eq = '\0';
        if (rd_config_set(&c, s, eq + 1, &e) != RD_OK && !e.msg[0]) abort();
    } else if (rd_config_set_listen(&c, s, &e) != RD_OK && !e.msg[0]) {
        abort();
    }
    check(&c);
    (void)rd_config_is_loopback(&c);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64];
    rd_config c;
    rd_err e = {0};

    if (fd < 0 && (fd = memfd_create("fuzz_config", 0)) < 0) abort();
    if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rd_config_defaults(&c);
    rd_status st = rd_config_load(&c, path, &e);
    rd_fuzz_note("load", st, &e);
    if (st != RD_OK && !e.msg[0]) abort();
    check(&c);
    one_override(data, size);
    return 0;
}
