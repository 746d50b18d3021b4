/* status.h — the one error vocabulary of resadd.
 *
 * Every fallible function returns an rd_status (0 = ok, negative = error) and,
 * when given a non-NULL rd_err, fills it with a message a user can act on
 * ("ref.png: PNG is 100000x100000, over the 40 MP limit").  Library code never
 * prints and never exits; the caller decides what to do with the message. */
#ifndef RD_STATUS_H
#define RD_STATUS_H

#include <stddef.h>

#if defined(__GNUC__)
#define RD_WARN_UNUSED __attribute__((warn_unused_result))
#define RD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RD_WARN_UNUSED
#define RD_PRINTF(a, b)
#endif

typedef enum rd_status {
    RD_OK = 0,
    RD_ERR_NOMEM = -1,       /* allocation failed */
    RD_ERR_IO = -2,          /* open/read/write failed */
    RD_ERR_FORMAT = -3,      /* malformed input bytes (image, model file, JSON) */
    RD_ERR_LIMIT = -4,       /* input over a configured limit (pixels, size) */
    RD_ERR_ARG = -5,         /* invalid argument from the caller/user */
    RD_ERR_UNSUPPORTED = -6, /* well-formed but not handled (CMYK JPEG, unknown arch) */
    RD_ERR_MISMATCH = -7,    /* pieces that do not fit together (model vs backbone) */
    RD_ERR_STATE = -8,       /* operation not valid now (class has no references) */
    RD_ERR_INTERNAL = -9,    /* a bug: should never happen */
    RD_STATUS_COUNT_ = 10
} rd_status;

#define RD_ERR_MSG_MAX 512

typedef struct rd_err {
    rd_status code;
    char msg[RD_ERR_MSG_MAX];
} rd_err;

/* Short stable name of a status ("format", "limit", ...). */
const char *rd_status_str(rd_status st);

/* Fills err (if non-NULL) with code and a printf-style message; returns code
 * so callers can write `return rd_err_set(err, RD_ERR_ARG, "...")`. */
rd_status rd_err_set(rd_err *err, rd_status code, const char *fmt, ...) RD_PRINTF(3, 4);

/* Prepends "prefix: " to err's message (used to add a file name). */
void rd_err_prefix(rd_err *err, const char *fmt, ...) RD_PRINTF(2, 3);

/* Resets err to RD_OK with an empty message. */
void rd_err_clear(rd_err *err);

/* Overflow-checked size arithmetic: return 0 and leave *out untouched on overflow. */
static inline int rd_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}
static inline int rd_add_size(size_t a, size_t b, size_t *out)
{
    if (b > (size_t)-1 - a) return 0;
    *out = a + b;
    return 1;
}

#endif
