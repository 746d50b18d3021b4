/* status.c — rd_status names and rd_err message helpers. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[RD_STATUS_COUNT_] = {
    "ok", "nomem", "io", "format", "limit", "arg", "unsupported", "mismatch", "state", "internal",
};

const char *rd_status_str(rd_status st)
{
    int i = -(int)st;
    if (i < 0 || i >= RD_STATUS_COUNT_) return "unknown";
    return status_names[i];
}

rd_status rd_err_set(rd_err *err, rd_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void rd_err_prefix(rd_err *err, const char *fmt, ...)
{
    char old[RD_ERR_MSG_MAX];
    va_list ap;
    int n;
    if (!err) return;
    memcpy(old, err->msg, sizeof old);
    va_start(ap, fmt);
    n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof err->msg - 2) return;
    err->msg[n] = ':';
    err->msg[n + 1] = ' ';
    memcpy(err->msg + n + 2, old, sizeof err->msg - (size_t)n - 2);
    err->msg[sizeof err->msg - 1] = '\0';
}

void rd_err_clear(rd_err *err)
{
    if (!err) return;
    err->code = RD_OK;
    err->msg[0] = '\0';
}
