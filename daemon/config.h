/* config.h — resadd's settings: built-in defaults, the config file
 * (`key = value` lines, `#` comments; every key documented in etc/resadd.conf)
 * and command-line overrides, in that order. */
#ifndef RD_CONFIG_H
#define RD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum { RD_AUTH_AUTO, RD_AUTH_ON, RD_AUTH_OFF } rd_auth_mode;

typedef struct rd_config {
    char listen_host[256];
    int listen_port;
    char data_dir[1024];
    char backbone[1024];       /* "" = the shipped default */
    char learned_model[1024];  /* "" = residual-norm scorer */
    int workers;               /* inference threads (each owns an rd_worker) */
    int threads_per_worker;    /* team size of each worker; 0 = cores / workers */
    int queue_size;            /* bounded queue of inference jobs */
    rd_auth_mode auth;
    size_t max_body;           /* bytes */
    uint64_t max_pixels;
    int max_side;
    size_t max_json;           /* bytes of a JSON body */
    int max_json_depth;
    int max_references;        /* per class */
    int request_timeout_s;     /* a sync request waits this long for its result */
    int max_connections;
    long retention_days;       /* 0 = keep forever */
    long retention_max;        /* inspections kept; 0 = unbounded */
    int log_level;
    char log_file[1024];       /* "" = stderr */
} rd_config;

void rd_config_defaults(rd_config *c);
/* Reads a config file over c.  Unknown keys and bad values are errors. */
rd_status rd_config_load(rd_config *c, const char *path, rd_err *err) RD_WARN_UNUSED;
/* One key = value (also used for command-line overrides). */
rd_status rd_config_set(rd_config *c, const char *key, const char *value, rd_err *err) RD_WARN_UNUSED;
/* "HOST:PORT" or "[V6]:PORT". */
rd_status rd_config_set_listen(rd_config *c, const char *hostport, rd_err *err) RD_WARN_UNUSED;
/* 1 if the listen host is a loopback address (auth = auto then means off). */
int rd_config_is_loopback(const rd_config *c);

#endif
