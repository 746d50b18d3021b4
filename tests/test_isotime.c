/* test_isotime.c — core/isotime.c against a naive calendar.
 *
 *  - fixed cases: the epoch, a leap day, the last millisecond of a year,
 *    a time before 1970, milliseconds clamped to 0..999;
 *  - random times over years 1..9999: the text equals one built from a naive
 *    day count (walking years and months one by one, no gmtime) and the texts
 *    sort as the times do (what the store's comparisons of created_at rely on). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "isotime.h"
#include "testutil.h"

static int leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* naive: walk whole years then months from 1970 (backwards for t < 0) */
static void naive(int64_t t, int ms, char out[64])
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t days = t / 86400, secs = t % 86400, y = 1970;
    if (secs < 0) secs += 86400, days--;
    while (days < 0) days += 365 + leap(--y);
    while (days >= 365 + leap(y)) days -= 365 + leap(y++);
    int m = 0;
    while (days >= mdays[m] + (m == 1 && leap(y))) days -= mdays[m] + (m == 1 && leap(y)), m++;
    snprintf(out, 64, "%04lld-%02d-%02lldT%02lld:%02lld:%02lld.%03dZ", (long long)y, m + 1, (long long)days + 1,
             (long long)(secs / 3600), (long long)(secs / 60 % 60), (long long)(secs % 60), ms);
}

int main(void)
{
    static const struct {
        int64_t t;
        int ms;
        const char *want;
    } fixed[] = {
        {0, 0, "1970-01-01T00:00:00.000Z"},
        {951782400, 7, "2000-02-29T00:00:00.007Z"},
        {1798761599, 999, "2026-12-31T23:59:59.999Z"},
        {-1, 500, "1969-12-31T23:59:59.500Z"},
        {86399, -5, "1970-01-01T23:59:59.000Z"},
        {86400, 4321, "1970-01-02T00:00:00.999Z"},
    };
    char got[RD_ISOTIME_LEN], want[64], prev[RD_ISOTIME_LEN] = "";
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        rd_isotime(fixed[i].t, fixed[i].ms, got);
        RD_CHECK(!strcmp(got, fixed[i].want), "t=%lld ms=%d: got '%s', want '%s'", (long long)fixed[i].t,
                 fixed[i].ms, got, fixed[i].want);
    }
    /* years 1..9999: t in [-62135596800, 253402300799] */
    const int64_t lo = -62135596800LL, span = 253402300799LL - lo + 1;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int64_t prev_t = INT64_MIN;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* ascending times, each a random step ahead, so the order check sees the whole range */
        int64_t t = lo + (int64_t)((uint64_t)i * (uint64_t)(span / 20000) + x % (uint64_t)(span / 20000));
        int ms = (int)(x >> 40) % 1000;
        rd_isotime(t, ms, got);
        naive(t, ms, want);
        RD_CHECK(!strcmp(got, want), "t=%lld: got '%s', naive '%s'", (long long)t, got, want);
        RD_CHECK(t <= prev_t || strcmp(prev, got) < 0, "not sorted: '%s' then '%s'", prev, got);
        prev_t = t;
        memcpy(prev, got, sizeof got);
    }
    return rd_test_done("test_isotime");
}
