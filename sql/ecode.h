/* ecode.h — the one error vocabulary of resadd's service layers (the store,
 * the engine, the API).  Each code says what went wrong in terms a client can
 * act on; api/errors.c maps every code to an HTTP status and an error word
 * with one table (a static_assert on RD_E_COUNT keeps the two in step).  It
 * lives here, in the lowest layer that returns it, so that nothing includes
 * upward.  rd_err (core/status.h) carries the message beside it. */
#ifndef RD_ECODE_H
#define RD_ECODE_H

typedef enum rd_ecode {
    RD_E_OK = 0,
    RD_E_NOTFOUND,  /* no such class, reference, inspection, route */
    RD_E_CONFLICT,  /* already exists */
    RD_E_NOTREADY,  /* the class has fewer than 2 references */
    RD_E_BADIMAGE,  /* not a decodable JPEG/PNG */
    RD_E_TOOLARGE,  /* image over the pixel limits */
    RD_E_LIMIT,     /* too many references */
    RD_E_BADREQ,    /* a malformed argument */
    RD_E_BUSY,      /* the queue (or pixel budget) is full: retry */
    RD_E_TIMEOUT,   /* a sync request outlived request_timeout_s */
    RD_E_SHUTDOWN,  /* resadd is stopping */
    RD_E_FULL,      /* the disk holding the database is full (SQLITE_FULL) */
    RD_E_DB,        /* the database failed otherwise (I/O, locked, corrupt) */
    RD_E_INTERNAL,  /* a bug or out of memory */
    RD_E_GEOMETRY,  /* an image of another aspect ratio than its class's geometry (and no fit policy) */
    RD_E_BADGEO,    /* geometry options that cannot apply: ROI outside the frame, bad tile, grid over the limits */
    RD_E_COUNT
} rd_ecode;

#endif
