/* fuzz_json_body.c — libFuzzer target for the API's JSON request bodies
 * (api/bodies.h): the first byte picks the body (its value mod 4: POST
 * /v1/classes, PATCH /v1/classes/{name}, POST /v1/webhooks, POST /v1/tokens)
 * and the nesting limit of the class bodies, the rest is the body text.
 * Checks the contract: a success has a valid class name and a description
 * within its limit, a finite threshold; a webhook an http(s) URL within its
 * limit, a secret of 8..255 bytes, known events, a valid class or none; a
 * token a known scope, a name within 127 bytes, an expiry in range; a failure
 * has an error word and a message. */
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
    int kind = data[0] % 4, depth = 2 + (data[0] / 4) % 31;
    char *text = malloc(size); /* exactly size - 1 bytes used: ASan sees over-reads */
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    if (kind == 0) {
        rd_class_create_body *b = malloc(sizeof *b);
        if (b && rd_body_class_create(text, size - 1, depth, b, &e) == 0) {
            if (!rd_route_valid_name(b->name) || strlen(b->description) > RD_BODY_DESC_MAX) abort();
        } else if (b && (!e.code || !e.msg[0])) {
            abort();
        }
        free(b);
    } else if (kind == 1) {
        rd_class_patch_body *b = malloc(sizeof *b);
        if (b && rd_body_class_patch(text, size - 1, depth, b, &e) == 0) {
            if (b->set_threshold == 1 && !isfinite(b->threshold)) abort();
            if (b->set_threshold < 0 || b->set_threshold > 2) abort();
            if (b->has_description && strlen(b->description) > RD_BODY_DESC_MAX) abort();
        } else if (b && (!e.code || !e.msg[0])) {
            abort();
        }
        free(b);
    } else if (kind == 2) {
        rd_webhook_body *b = malloc(sizeof *b);
        if (b && rd_body_webhook(text, size - 1, b, &e) == 0) {
            size_t ns = strlen(b->secret);
            if (strlen(b->url) > RD_BODY_URL_MAX || (strncmp(b->url, "http://", 7) && strncmp(b->url, "https://", 8)))
                abort();
            if (ns < 8 || ns > 255) abort();
            if (strcmp(b->events, "*") && strcmp(b->events, "inspection") && strcmp(b->events, "class") &&
                strcmp(b->events, "inspection,class") && strcmp(b->events, "class,inspection"))
                abort();
            if (b->has_cls ? !rd_route_valid_name(b->cls) : b->cls[0] != 0) abort();
        } else if (b && (!e.code || !e.msg[0])) {
            abort();
        }
        free(b);
    } else {
        rd_token_body b;
        if (rd_body_token(text, size - 1, &b, &e) == 0) {
            if (strcmp(b.scope, "admin") && strcmp(b.scope, "inspect") && strcmp(b.scope, "read")) abort();
            if (strlen(b.name) > 127) abort();
            if (b.expires_in_s < 0 || b.expires_in_s > RD_BODY_TOKEN_EXPIRY_MAX) abort();
        } else if (!e.code || !e.msg[0]) {
            abort();
        }
    }
    if (rd_body_json_depth(text, size - 1) < 0) abort();
    free(text);
    return 0;
}
