/* isotime.c — UTC ISO 8601 timestamps with milliseconds (see isotime.h). */
#include "isotime.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void rd_isotime(int64_t t, int ms, char out[RD_ISOTIME_LEN])
{
    time_t tt = (time_t)t;
    struct tm tm;
    out[0] = '\0';
    if ((int64_t)tt != t || !gmtime_r(&tt, &tm)) return;
    /* %04d rather than strftime's %Y: the same text for years 1000..9999,
     * and years below 1000 still sort (strftime writes "999") */
    /* formatted into a buffer wide enough for any int fields (gcc's
     * -Wformat-truncation cannot see that gmtime_r's fields are bounded),
     * copied only when it fits */
    char buf[96];
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms < 0 ? 0 : ms > 999 ? 999 : ms);
    if (n > 0 && n < RD_ISOTIME_LEN) memcpy(out, buf, (size_t)n + 1);
}
