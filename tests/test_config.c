/* test_config.c — the config key table and parser: defaults, every kind of
 * key, units (MiB, KiB, megapixels), quotes, comments, bounds, unknown keys
 * and bad lines with their line numbers, and that the shipped
 * etc/resadd.conf parses and documents every key of the table. */
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "engine/log.h"
#include "testutil.h"

static rd_status parse(rd_config *c, const char *text, rd_err *err)
{
    return rd_config_parse(c, text, strlen(text), "t.conf", err);
}

int main(void)
{
    rd_config c;
    rd_err err = {0};
    rd_config_defaults(&c);
    RD_CHECK(c.listen_port == 8080 && c.workers == 0 && c.max_body == 32u << 20 && c.auth == RD_AUTH_AUTO &&
                 c.metrics_auth == 1 && c.max_connections_per_client > 0,
             "defaults");
    const char *good = "# comment\n"
                       "listen = [::1]:9090\n"
                       "  workers=3  \n"
                       "max_body_mb = 2\n"
                       "max_json_kb = 8\n"
                       "max_megapixels = 5\n"
                       "data_dir = \"/tmp/with space\"\n"
                       "auth = on\n"
                       "metrics_auth = off\n"
                       "log_level = debug\n"
                       "retention_days = 0\n"
                       "min_free_mb = 1\n"
                       "request_deadline_s = 5\n"
                       "\n";
    RD_CHECK(parse(&c, good, &err) == RD_OK, "%s", err.msg);
    RD_CHECK(!strcmp(c.listen_host, "::1") && c.listen_port == 9090, "listen %s %d", c.listen_host, c.listen_port);
    RD_CHECK(c.workers == 3 && c.max_body == 2u << 20 && c.max_json == 8192 && c.max_pixels == 5000000, "numbers");
    RD_CHECK(!strcmp(c.data_dir, "/tmp/with space"), "quoted: %s", c.data_dir);
    RD_CHECK(c.auth == RD_AUTH_ON && c.metrics_auth == 0 && c.log_level == RD_LOG_DEBUG, "words");
    RD_CHECK(c.retention_days == 0 && c.min_free == 1u << 20 && c.request_deadline_s == 5, "more");
    RD_CHECK(!rd_config_is_loopback(&c) || !strcmp(c.listen_host, "::1"), "loopback");
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"workers = many\n", "t.conf:1"},
        {"\n\nworkers = -1\n", "t.conf:3"},
        {"workers = 257\n", "from 0 to 256"},
        {"nope = 1\n", "unknown setting 'nope'"},
        {"just words\n", "expected 'key = value'"},
        {"auth = maybe\n", "auto, on or off"},
        {"metrics_auth = yes\n", "on or off"},
        {"listen = nohost\n", "HOST:PORT"},
        {"listen = :80\n", "no host"},
        {"log_level = loud\n", "log_level"},
        {"max_body_mb = 99999999999999999999\n", "max_body_mb"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rd_config_defaults(&c);
        rd_err_clear(&err);
        RD_CHECK(parse(&c, bad[i].text, &err) != RD_OK && strstr(err.msg, bad[i].want), "'%s': %s", bad[i].text,
                 err.msg);
    }
    char longline[5000];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    RD_CHECK(parse(&c, longline, &err) != RD_OK && strstr(err.msg, "too long"), "long line: %s", err.msg);
    RD_CHECK(rd_config_parse(&c, "workers = 2\0x", 13, "t.conf", &err) != RD_OK, "NUL byte");
    RD_CHECK(rd_config_load(&c, "/nonexistent/resadd.conf", &err) != RD_OK && strstr(err.msg, "/nonexistent"),
             "missing file");
    /* the shipped file parses, and documents every key */
    const char *top = getenv("top_srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/resadd.conf", top ? top : ".");
    size_t len;
    unsigned char *text = rd_read_file(path, &len);
    RD_CHECK(text != NULL, "cannot read %s", path);
    if (text) {
        rd_config_defaults(&c);
        RD_CHECK(rd_config_parse(&c, (const char *)text, len, path, &err) == RD_OK, "%s", err.msg);
        char *t = malloc(len + 1);
        memcpy(t, text, len);
        t[len] = '\0';
        for (int i = 0; i < rd_config_nkeys(); i++) {
            char pat[128];
            snprintf(pat, sizeof pat, "\n%s =", rd_config_key(i));
            char pat2[128];
            snprintf(pat2, sizeof pat2, "\n# %s =", rd_config_key(i));
            RD_CHECK(strstr(t, pat) || strstr(t, pat2), "key %s is not documented in etc/resadd.conf", rd_config_key(i));
        }
        free(t);
        free(text);
    }
    return rd_test_done("test_config");
}
