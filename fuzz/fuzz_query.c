/* fuzz_query.c — libFuzzer target for the API's query and header values
 * (api/bodies.h): the first byte picks GET /v1/events (?class=,
 * Last-Event-ID, ?heartbeat_s=) or an inspection's ?threshold= /
 * ?sensitivity= (bit 0) and which values are present (bits 1-3); the rest
 * is the values, separated by newlines.  Checks the contract: a success has
 * a valid class or none, an event id >= 0, a heartbeat of 1..60 s, a finite
 * threshold >= 0 or a sensitivity in [0, 1] (not both); a failure has an
 * error word and a message. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/bodies.h"
#include "api/routes.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_body_err e = {0};
    char *v[3] = {NULL, NULL, NULL};
    if (size < 1) return 0;
    char *text = malloc(size); /* the values, each NUL-terminated in its own bytes */
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char *p = text;
    for (int i = 0; i < 3; i++) {
        char *nl = p ? strchr(p, '\n') : NULL;
        if (p && (data[0] >> (1 + i)) & 1) v[i] = p;
        if (nl) *nl = 0;
        p = nl ? nl + 1 : NULL;
    }
    if (data[0] & 1) {
        double t, s;
        if (rd_body_inspect_query(v[0], v[1], &t, &s, &e) == 0) {
            if (!isnan(t) && !isnan(s)) abort();
            if (!isnan(t) && (!isfinite(t) || t < 0)) abort();
            if (!isnan(s) && (s < 0 || s > 1)) abort();
            if ((v[0] != NULL) != !isnan(t) || (v[1] != NULL) != !isnan(s)) abort();
        } else if (!e.code || !e.msg[0]) {
            abort();
        }
    } else {
        rd_events_query q;
        if (rd_body_events_query(v[0], v[1], v[2], &q, &e) == 0) {
            if (q.has_cls != (v[0] != NULL) || (q.has_cls && !rd_route_valid_name(q.cls))) abort();
            if (q.has_last != (v[1] != NULL) || q.last < 0) abort();
            if (q.heartbeat_s < 1 || q.heartbeat_s > 60) abort();
        } else if (!e.code || !e.msg[0]) {
            abort();
        }
    }
    free(text);
    return 0;
}
