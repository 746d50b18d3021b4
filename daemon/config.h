/* config.h — resadd's settings: built-in defaults, the config file
 * (`key = value` lines, `#` comments; every key documented in
 * etc/resadd.conf) and command-line overrides, in that order.  The keys are
 * one table in config.c (name, type, field, bounds), like Redis's config.c;
 * main.c turns the result into each layer's option struct. */
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
    char learned_model[1024];  /* "" = the shipped model; "none" = residual-norm */
    int workers;               /* inference threads (each owns an rd_worker) */
    int threads_per_worker;    /* team size of each worker; 0 = cores / workers */
    int queue_size;            /* bounded queue of inference jobs */
    rd_auth_mode auth;
    int metrics_auth;          /* 1: /metrics needs a read token when auth is on */
    size_t max_body;           /* bytes */
    uint64_t max_pixels;
    uint64_t pixel_budget;     /* decoded pixels in flight (requests + queued jobs) */
    int max_side;
    size_t max_json;           /* bytes of a JSON body */
    int max_json_depth;
    int max_references;        /* per class */
    int request_timeout_s;     /* a sync request waits this long for its result */
    int idempotency_window_s;  /* a repeated X-Request-Id / external_id within this replays; 0 = off */
    int webhook_timeout_s;     /* per delivery attempt */
    int webhook_max_attempts;  /* then the delivery is marked failed */
    int webhook_backoff_ms;    /* first retry delay, doubling per attempt */
    int webhook_allow_private; /* 1: webhooks may reach loopback/link-local/private hosts */
    int request_deadline_s;    /* headers + body must arrive within this */
    int max_connections;
    int max_connections_per_client;
    uint64_t min_free;         /* bytes free before the database counts as writable after a full disk */
    long retention_days;       /* 0 = keep forever */
    long retention_max;        /* inspections kept; 0 = unbounded */
    uint64_t retention_max_bytes; /* database pages in use; 0 = unbounded */
    char keep_images[32];      /* image copies for overlays: "off" | "last N" | "N days" */
    int keep_image_quality;    /* their JPEG quality */
    size_t heat_cache;         /* bytes of rendered heatmaps kept in memory */
    size_t pool_memory;        /* loaded reference sets' bytes before the LRU evicts (0 = unbounded) */
    int max_loaded_classes;    /* loaded reference sets before the LRU evicts (0 = unbounded) */
    int log_level;
    char log_file[1024];       /* "" = stderr */
    char tls_cert[1024];       /* PEM certificate (chain); with tls_key: HTTPS */
    char tls_key[1024];        /* PEM private key */
    char cors_origins[1024];   /* "" = no CORS; "*" or space-separated origins */
} rd_config;

void rd_config_defaults(rd_config *c);
/* Reads a config file over c.  Unknown keys and bad values are errors. */
rd_status rd_config_load(rd_config *c, const char *path, rd_err *err) RD_WARN_UNUSED;
/* Parses config text (the file's contents; name is used in messages). */
rd_status rd_config_parse(rd_config *c, const char *text, size_t len, const char *name, rd_err *err) RD_WARN_UNUSED;
/* One key = value (also used for command-line overrides). */
rd_status rd_config_set(rd_config *c, const char *key, const char *value, rd_err *err) RD_WARN_UNUSED;
/* "HOST:PORT" or "[V6]:PORT". */
rd_status rd_config_set_listen(rd_config *c, const char *hostport, rd_err *err) RD_WARN_UNUSED;
/* The table's keys, for tests and --help: rd_config_key(i) for i < rd_config_nkeys(). */
int rd_config_nkeys(void);
const char *rd_config_key(int i);
/* 1 if the listen host is a loopback address (auth = auto then means off). */
int rd_config_is_loopback(const rd_config *c);

#endif
