/* bodies.h — the JSON request bodies of the API, parsed and validated into
 * structs: POST /v1/classes {"name", "description"} and PATCH
 * /v1/classes/{name} {"description", "threshold"}.  The text is checked for
 * nesting depth before jansson parses it (jansson recurses).  On error the
 * functions fill an error word ("bad_json", "bad_name", "bad_request") and a
 * message for the 400 reply. */
#ifndef RD_API_BODIES_H
#define RD_API_BODIES_H

#include <stddef.h>

#include "geometry.h"

#define RD_BODY_DESC_MAX 4096

typedef struct rd_body_err {
    const char *code;
    char msg[512];
} rd_body_err;

typedef struct rd_class_create_body {
    char name[72];
    char description[RD_BODY_DESC_MAX + 1];
    int has_geo; /* "geometry": {"size", "fit", "roi", "tile", "alpha"} (all optional) */
    rd_geo_opts geo;
} rd_class_create_body;

typedef struct rd_class_patch_body {
    int has_description;
    char description[RD_BODY_DESC_MAX + 1];
    int set_threshold; /* 0 unchanged, 1 set to threshold, 2 back to auto (null) */
    double threshold;
    int has_geo; /* "geometry" as in create: only while the class has no references */
    rd_geo_opts geo;
} rd_class_patch_body;

/* Nesting depth of a JSON text (brackets outside strings). */
int rd_body_json_depth(const char *p, size_t n);
int rd_body_class_create(const char *text, size_t len, int max_depth, rd_class_create_body *out, rd_body_err *e);
int rd_body_class_patch(const char *text, size_t len, int max_depth, rd_class_patch_body *out, rd_body_err *e);

#endif
