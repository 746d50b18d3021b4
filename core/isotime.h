/* isotime.h — the one formatter of resadd's timestamps: UTC, ISO 8601 with
 * milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ".  Every time resadd stores or
 * compares (created_at, finished_at, expires_at, retention cut-offs, log-file
 * stamps) is written by it, so the texts sort as the times do.  Pure: the
 * caller reads the clock (rd_store_now in sql/ does for "now"). */
#ifndef RD_ISOTIME_H
#define RD_ISOTIME_H

#include <stdint.h>

#define RD_ISOTIME_LEN 32 /* the buffer; years 0..9999 take 24 bytes + NUL, any int year fits */

/* t (seconds since the Unix epoch) plus ms (0..999, clamped) as UTC text in
 * out; the year has at least 4 digits (zero-padded).  A t that gmtime_r
 * cannot represent gives "" (sorts before any time). */
void rd_isotime(int64_t t, int ms, char out[RD_ISOTIME_LEN]);

#endif
