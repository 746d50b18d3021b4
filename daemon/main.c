/* main.c — resadd, the REST inspection daemon, and its composition root:
 * command line and config (daemon/config.c) become each layer's option
 * struct — the store (sql/), the engine (engine/), the API (api/) — which
 * are started in that order and stopped in reverse.  Signals are blocked
 * before any thread starts and handled here with sigtimedwait (which also
 * paces retention pruning).  Also the `resadd token` commands. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errors.h"
#include "api/http.h"
#include "api/sse.h"
#include "api/views.h"
#include "blas.h"
#include "config.h"
#include "defaults.h"
#include "engine/engine.h"
#include "engine/heatmaps.h"
#include "engine/log.h"
#include "engine/tokens.h"
#include "sha256.h"
#include "sql/store.h"

#define DEFAULT_CONFIG RD_SYSCONFDIR "/resadd/resadd.conf"

static void usage(FILE *f)
{
    fputs("usage: resadd [--config PATH] [--listen HOST:PORT] [--data-dir DIR] [--model PATH]\n"
          "              [--learned-model PATH|none] [--workers N]\n"
          "       resadd token create --scope admin|inspect|read [--name TEXT] [--config PATH] [--data-dir DIR]\n"
          "       resadd token list | token revoke ID   [--config PATH] [--data-dir DIR]\n"
          "       resadd --help | --version\n"
          "\n"
          "REST service for few-shot anomaly detection (ResAD).  Register a product class\n"
          "from a few good images, post images of parts, get a score, a verdict and a heatmap.\n"
          "\n"
          "  --config PATH      settings file (default " DEFAULT_CONFIG "; a missing\n"
          "                     default file means built-in defaults)\n"
          "  --listen HOST:PORT address to serve on (default 127.0.0.1:8080)\n"
          "  --data-dir DIR     where resadd.db lives (default /var/lib/resadd)\n"
          "  --model PATH       backbone .safetensors (default: the shipped MobileNetV2)\n"
          "  --learned-model PATH|none\n"
          "                     learned ResAD model (default: the shipped one, scorer\n"
          "                     \"resad\"); none = the residual-norm scorer\n"
          "  --workers N        inference worker threads\n"
          "\n"
          "Authentication: bearer tokens (`resadd token create`); required by default when\n"
          "listening on a non-loopback address.  API: GET /v1/openapi.json.\n"
          "Signals: TERM/INT stop cleanly, HUP reopens the log file.\n",
          f);
}

static int make_dirs(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0750) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(p, 0750) && errno != EEXIST ? -1 : 0;
}

static rd_store *open_store(const rd_config *cfg)
{
    char path[1100];
    rd_err err = {0};
    if (make_dirs(cfg->data_dir)) {
        rd_log(RD_LOG_ERR, "cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
        return NULL;
    }
    snprintf(path, sizeof path, "%s/resadd.db", cfg->data_dir);
    rd_store *s = rd_store_open(path, &err);
    if (!s) rd_log(RD_LOG_ERR, "%s", err.msg);
    else rd_store_set_min_free(s, cfg->min_free);
    return s;
}

/* sha256 of a file into hex; -1 if it cannot be read. */
/* Retention: inspections by age and count, then by the database's size, and
 * the image copies kept for overlays (keep_images, validated at start). */
static void retention(rd_store *store, const rd_config *cfg)
{
    long last = 0, days = 0;
    int n = rd_store_prune(store, cfg->retention_days * 86400L, cfg->retention_max);
    int b = rd_store_prune_bytes(store, cfg->retention_max_bytes);
    if (n > 0 || b > 0) rd_log(RD_LOG_INFO, "retention: %d old inspection(s) removed", (n > 0 ? n : 0) + (b > 0 ? b : 0));
    if (!rd_heatmaps_keep_parse(cfg->keep_images, &last, &days) && (last || days)) {
        int m = rd_store_prune_images(store, last, days * 86400L);
        if (m > 0) rd_log(RD_LOG_DEBUG, "retention: %d image copies removed", m);
    }
}

static int file_sha256(const char *path, char hex[RD_SHA256_HEX])
{
    unsigned char buf[1 << 16];
    size_t n;
    FILE *f = fopen(path, "rb");
    rd_sha256 *h = f ? rd_sha256_new() : NULL;
    if (!h) {
        if (f) fclose(f);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) rd_sha256_update(h, buf, n);
    int bad = ferror(f);
    fclose(f);
    return rd_sha256_final_hex(h, hex) || bad ? -1 : 0;
}

/* resadd --version: the version, then the backbone and learned model this
 * configuration would load, each with its sha256. */
static int print_version(const rd_config *cfg)
{
    char bpath[4096], mbuf[4096], hex[RD_SHA256_HEX];
    const char *bb = cfg->backbone[0] ? cfg->backbone : rd_default_backbone(bpath, sizeof bpath);
    const char *model = NULL;
    int rc = 0;
    printf("resadd %s\n", PACKAGE_VERSION);
    if (!bb) bb = bpath;
    if (file_sha256(bb, hex) == 0) printf("backbone %s sha256 %s\n", bb, hex);
    else printf("backbone %s missing\n", bb), rc = 1;
    if (rd_choose_model(cfg->learned_model[0] ? cfg->learned_model : NULL, !cfg->backbone[0], mbuf, sizeof mbuf,
                        &model))
        printf("learned_model %s missing\n", mbuf), rc = 1;
    else if (!model) printf("learned_model none (scorer residual-norm)\n");
    else if (file_sha256(model, hex) == 0) printf("learned_model %s sha256 %s\n", model, hex);
    else printf("learned_model %s missing\n", model), rc = 1;
    return rc;
}

static int cmd_token(rd_config *cfg, int argc, char **argv, int i)
{
    const char *sub = i < argc ? argv[i] : "";
    const char *scope = NULL, *name = "";
    int64_t revoke = 0;
    rd_err err = {0};
    int rc = 1;
    if (!strcmp(sub, "revoke")) {
        if (i + 1 >= argc || (revoke = strtoll(argv[i + 1], NULL, 10)) <= 0) {
            fprintf(stderr, "resadd: token revoke needs a token id (see `resadd token list`)\n");
            return 2;
        }
    } else if (!strcmp(sub, "create")) {
        for (int k = i + 1; k < argc; k++) {
            if (!strcmp(argv[k], "--scope") && k + 1 < argc) scope = argv[++k];
            else if (!strcmp(argv[k], "--name") && k + 1 < argc) name = argv[++k];
        }
        if (!scope || (strcmp(scope, "admin") && strcmp(scope, "inspect") && strcmp(scope, "read"))) {
            fprintf(stderr, "resadd: token create needs --scope admin, inspect or read\n");
            return 2;
        }
    } else if (strcmp(sub, "list")) {
        fprintf(stderr, "resadd: token commands are create, list and revoke\n");
        return 2;
    }
    rd_store *s = open_store(cfg);
    if (!s) return 1;
    if (!strcmp(sub, "create")) {
        char tok[RD_TOKEN_LEN + 1], hash[RD_SHA256_HEX];
        int64_t id;
        if (rd_token_generate(tok, hash)) {
            fprintf(stderr, "resadd: cannot make a token (getrandom: %s)\n", strerror(errno));
            goto out;
        }
        if (rd_store_token_add(s, name, scope, hash, &id, &err) != RD_E_OK) {
            fprintf(stderr, "resadd: %s\n", err.msg[0] ? err.msg : "cannot hash token");
            goto out;
        }
        printf("%s\n", tok);
        fprintf(stderr, "resadd: token %lld (scope %s) created; it is shown only once\n", (long long)id, scope);
        rc = 0;
    } else if (!strcmp(sub, "list")) {
        rd_token_row *rows = NULL;
        int n = 0;
        if (rd_store_token_list(s, &rows, &n, &err) != RD_E_OK) {
            fprintf(stderr, "resadd: %s\n", err.msg);
            goto out;
        }
        json_t *a = rd_view_tokens(rows, n);
        free(rows);
        json_dumpf(a, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(a);
        rc = 0;
    } else {
        if (rd_store_token_revoke(s, revoke, &err) != RD_E_OK) fprintf(stderr, "resadd: %s\n", err.msg);
        else rc = 0;
    }
out:
    rd_store_close(s);
    return rc;
}

/* TLS: the PEM files' text, alive while the HTTP server runs. */
static char *tls_pem[2];

static int read_pem(const char *path, char **out, rd_err *err)
{
    FILE *f = fopen(path, "rb");
    char *b = malloc(1u << 20);
    size_t n = 0;
    if (!f || !b) {
        rd_err_set(err, RD_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    n = fread(b, 1, (1u << 20) - 1, f);
    if (n == (1u << 20) - 1 || !n || ferror(f)) {
        rd_err_set(err, RD_ERR_ARG, "%s: empty, unreadable or over 1 MiB (want a PEM file)", path);
        goto fail;
    }
    b[n] = '\0';
    fclose(f);
    *out = b;
    return 0;
fail:
    if (f) fclose(f);
    free(b);
    return -1;
}

int main(int argc, char **argv)
{
    static rd_config cfg;
    rd_err err = {0};
    const char *config_path = NULL;
    const char *over_listen = NULL, *over_dir = NULL, *over_model = NULL, *over_workers = NULL,
               *over_learned = NULL;
    int token_at = 0, rc = 1, want_version = 0;
    sigset_t sigs;
    rd_store *store = NULL;
    rd_engine *eng = NULL;
    rd_http *http = NULL;

    rd_blas_autofix(argc, argv);
    rd_config_defaults(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            want_version = 1;
            continue;
        }
        if (!strcmp(a, "token") && !token_at) {
            token_at = i + 1;
            continue;
        }
        if (token_at) {
            if (!strcmp(a, "--config") && v) config_path = argv[++i];
            else if (!strcmp(a, "--data-dir") && v) over_dir = argv[++i];
            continue; /* the token command parses the rest */
        }
        if (!v || strncmp(a, "--", 2)) {
            fprintf(stderr, "resadd: unknown argument '%s' (see resadd --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--config")) config_path = v;
        else if (!strcmp(a, "--listen")) over_listen = v;
        else if (!strcmp(a, "--data-dir")) over_dir = v;
        else if (!strcmp(a, "--model")) over_model = v;
        else if (!strcmp(a, "--learned-model")) over_learned = v;
        else if (!strcmp(a, "--workers")) over_workers = v;
        else {
            fprintf(stderr, "resadd: unknown option '%s' (see resadd --help)\n", a);
            return 2;
        }
        i++;
    }
    if (config_path) {
        if (rd_config_load(&cfg, config_path, &err) != RD_OK) {
            fprintf(stderr, "resadd: %s\n", err.msg);
            return 2;
        }
    } else if (access(DEFAULT_CONFIG, F_OK) == 0 && rd_config_load(&cfg, DEFAULT_CONFIG, &err) != RD_OK) {
        fprintf(stderr, "resadd: %s\n", err.msg);
        return 2;
    }
    if ((over_listen && rd_config_set(&cfg, "listen", over_listen, &err)) ||
        (over_dir && rd_config_set(&cfg, "data_dir", over_dir, &err)) ||
        (over_model && rd_config_set(&cfg, "model", over_model, &err)) ||
        (over_learned && rd_config_set(&cfg, "learned_model", over_learned, &err)) ||
        (over_workers && rd_config_set(&cfg, "workers", over_workers, &err))) {
        fprintf(stderr, "resadd: %s\n", err.msg);
        return 2;
    }
    long keep_last, keep_days;
    if (rd_heatmaps_keep_parse(cfg.keep_images, &keep_last, &keep_days)) {
        fprintf(stderr, "resadd: keep_images: '%s' is not off, \"last N\" or \"N days\"\n", cfg.keep_images);
        return 2;
    }
    if (want_version) return print_version(&cfg);
    if (rd_log_open(cfg.log_file, cfg.log_level)) {
        fprintf(stderr, "resadd: cannot open log file %s: %s\n", cfg.log_file, strerror(errno));
        return 1;
    }
    if (token_at) return cmd_token(&cfg, argc, argv, token_at);

    /* block before any thread exists: every thread inherits the mask */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rd_log(RD_LOG_INFO, "resadd %s starting (config %s)", PACKAGE_VERSION,
           config_path ? config_path : access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : "built-in defaults");
    rd_log(RD_LOG_INFO, "%s", rd_blas_describe());
    if (!(store = open_store(&cfg))) goto out;
    rd_log(RD_LOG_INFO, "database %s/resadd.db, schema version %d", cfg.data_dir, rd_store_schema_version(store));
    rd_engine_opts eo = {.backbone = cfg.backbone,
                         .learned_model = cfg.learned_model,
                         .workers = cfg.workers,
                         .threads_per_worker = cfg.threads_per_worker,
                         .queue_size = cfg.queue_size,
                         .max_pixels = cfg.max_pixels,
                         .pixel_budget = cfg.pixel_budget,
                         .max_side = cfg.max_side,
                         .max_references = cfg.max_references,
                         .request_timeout_s = cfg.request_timeout_s,
                         .keep_images = strcmp(cfg.keep_images, "off") != 0,
                         .keep_image_quality = cfg.keep_image_quality,
                         .heat_cache_bytes = cfg.heat_cache,
                         .pool_memory_bytes = cfg.pool_memory,
                         .max_loaded_classes = cfg.max_loaded_classes,
                         .idempotency_window_s = cfg.idempotency_window_s,
                         .webhook_timeout_s = cfg.webhook_timeout_s,
                         .webhook_max_attempts = cfg.webhook_max_attempts,
                         .webhook_backoff_ms = cfg.webhook_backoff_ms,
                         .webhook_allow_private = cfg.webhook_allow_private,
                         .render_event = rd_api_event_json,
                         .code_name = rd_api_code_name};
    int auth = cfg.auth == RD_AUTH_ON || (cfg.auth == RD_AUTH_AUTO && !rd_config_is_loopback(&cfg));
    rd_api_opts ao = {.host = cfg.listen_host,
                      .port = cfg.listen_port,
                      .auth = auth,
                      .metrics_public = !cfg.metrics_auth,
                      .max_body = cfg.max_body,
                      .max_json = cfg.max_json,
                      .max_json_depth = cfg.max_json_depth,
                      .max_connections = cfg.max_connections,
                      .max_per_client = cfg.max_connections_per_client,
                      .request_deadline_s = cfg.request_deadline_s};
    if (!cfg.tls_cert[0] != !cfg.tls_key[0]) {
        rd_log(RD_LOG_ERR, "tls_cert and tls_key go together: set both (HTTPS) or neither");
        goto out;
    }
    if (cfg.tls_cert[0] && (read_pem(cfg.tls_cert, &tls_pem[0], &err) || read_pem(cfg.tls_key, &tls_pem[1], &err))) {
        rd_log(RD_LOG_ERR, "%s", err.msg);
        goto out;
    }
    ao.tls_cert = tls_pem[0];
    ao.tls_key = tls_pem[1];
    ao.cors_origins = cfg.cors_origins;
    if (auth && !tls_pem[0] && !rd_config_is_loopback(&cfg))
        rd_log(RD_LOG_WARN, "listening on %s without TLS: bearer tokens travel in clear; set tls_cert and tls_key "
               "(etc/resadd.conf) or put a TLS proxy in front", cfg.listen_host);
    if (!(eng = rd_engine_new(&eo, store, &err))) {
        rd_log(RD_LOG_ERR, "%s", err.msg);
        goto out;
    }
    if (!(http = rd_http_start(&ao, eng, &err))) {
        rd_log(RD_LOG_ERR, "%s", err.msg);
        goto out;
    }
    /* retention after HTTP listens: a long DELETE must not delay liveness */
    retention(store, &cfg);
    if (cfg.auth != RD_AUTH_OFF && !rd_config_is_loopback(&cfg) && rd_store_token_count(store) == 0)
        rd_log(RD_LOG_WARN, "auth is on and no token exists: create one with `resadd token create --scope admin`");
    for (int tick = 0;; tick++) {
        /* 1 s ticks: retention every 30, and a model that failed to load stops resadd */
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (rd_engine_failed(eng, &err)) {
            rd_log(RD_LOG_ERR, "stopping: %s", err.msg);
            goto out;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            rd_log(RD_LOG_INFO, "signal %d: stopping", sig);
            break;
        }
        if (sig == SIGHUP) {
            rd_log(RD_LOG_INFO, "SIGHUP: reopening the log");
            if (rd_log_reopen()) rd_log(RD_LOG_ERR, "cannot reopen log file %s", cfg.log_file);
            continue;
        }
        if (sig < 0 && errno == EAGAIN && tick % 30 == 29) {
            retention(store, &cfg);
        }
    }
    rc = 0;
out:
    rd_http_quiesce(http);   /* no new connections */
    rd_engine_stop(eng);     /* queued work runs to completion */
    rd_http_stop(http);      /* in-flight replies are sent */
    rd_engine_free(eng);
    rd_store_close(store);
    free(tls_pem[0]);
    free(tls_pem[1]);
    rd_log(RD_LOG_INFO, "stopped");
    return rc;
}
