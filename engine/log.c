/* log.c — journald-friendly logging for resadd (see log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "isotime.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;
static char log_path[1024];
static int log_level = RD_LOG_INFO;

int rd_log_open(const char *path, int level)
{
    log_level = level;
    if (!path || !*path) {
        log_fp = stderr;
        log_path[0] = '\0';
        return 0;
    }
    snprintf(log_path, sizeof log_path, "%s", path);
    FILE *f = fopen(path, "a");
    if (!f) return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    log_fp = f;
    return 0;
}

int rd_log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&log_mu);
    if (log_path[0]) {
        FILE *f = fopen(log_path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            if (log_fp && log_fp != stderr) fclose(log_fp);
            log_fp = f;
        } else {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&log_mu);
    return rc;
}

int rd_log_level_parse(const char *s)
{
    if (!strcasecmp(s, "error")) return RD_LOG_ERR;
    if (!strcasecmp(s, "warning") || !strcasecmp(s, "warn")) return RD_LOG_WARN;
    if (!strcasecmp(s, "info")) return RD_LOG_INFO;
    if (!strcasecmp(s, "debug")) return RD_LOG_DEBUG;
    return -1;
}

void rd_log(int level, const char *fmt, ...)
{
    static const char *const words[8] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
    char line[2048];
    va_list ap;
    if (level > log_level) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    FILE *f = log_fp ? log_fp : stderr;
    if (f != stderr) { /* a log_file has no journal to stamp its lines: UTC, milliseconds */
        struct timeval tv;
        char ts[RD_ISOTIME_LEN];
        gettimeofday(&tv, NULL);
        rd_isotime(tv.tv_sec, (int)(tv.tv_usec / 1000), ts);
        fprintf(f, "%s %s: %s\n", ts, words[level & 7], line);
    } else {
        fprintf(f, "<%d>%s: %s\n", level, words[level & 7], line);
    }
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}
