/* fuzz_json_body.c — libFuzzer target for the API's JSON request bodies
 * (api/bodies.h): the first byte picks POST /v1/classes (class create) or
 * PATCH /v1/classes/{name} (class patch) and the nesting limit, the rest is
 * the body text.  Checks the contract: a success has a valid class name and a
 * description within its limit, a finite threshold; a failure has an error
 * word and a message. */
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
    if (size < 1) return 0;
    int patch = data[0] & 1, depth = 2 + (data[0] >> 1) % 31;
    char *text = malloc(size); /* exactly size - 1 bytes used: ASan sees over-reads */
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    if (!patch) {
        rd_class_create_body *b = malloc(sizeof *b);
        if (b && rd_body_class_create(text, size - 1, depth, b, &e) == 0) {
            if (!rd_route_valid_name(b->name) || strlen(b->description) > RD_BODY_DESC_MAX) abort();
        } else if (b && (!e.code || !e.msg[0])) {
            abort();
        }
        free(b);
    } else {
        rd_class_patch_body *b = malloc(sizeof *b);
        if (b && rd_body_class_patch(text, size - 1, depth, b, &e) == 0) {
            if (b->set_threshold == 1 && !isfinite(b->threshold)) abort();
            if (b->set_threshold < 0 || b->set_threshold > 2) abort();
            if (b->has_description && strlen(b->description) > RD_BODY_DESC_MAX) abort();
        } else if (b && (!e.code || !e.msg[0])) {
            abort();
        }
        free(b);
    }
    if (rd_body_json_depth(text, size - 1) < 0) abort();
    free(text);
    return 0;
}
