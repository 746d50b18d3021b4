/* errors.c — rd_ecode → HTTP status + error word, one row per code (see
 * errors.h).  Rows are indexed by the code itself, so a missing or misplaced
 * row is caught at compile time (count) and at start (order, see
 * rd_api_status's check in tests/test_routes.c). */
#include "errors.h"

#include <assert.h>

static const struct {
    rd_ecode code;
    int status;
    const char *word;
} table[] = {
    {RD_E_OK, 200, "ok"},
    {RD_E_NOTFOUND, 404, "not_found"},
    {RD_E_CONFLICT, 409, "conflict"},
    {RD_E_NOTREADY, 409, "class_not_ready"},
    {RD_E_BADIMAGE, 422, "invalid_image"},
    {RD_E_TOOLARGE, 413, "image_too_large"},
    {RD_E_LIMIT, 422, "too_many_references"},
    {RD_E_BADREQ, 400, "bad_request"},
    {RD_E_BUSY, 503, "busy"},
    {RD_E_TIMEOUT, 504, "timeout"},
    {RD_E_SHUTDOWN, 503, "shutting_down"},
    {RD_E_FULL, 507, "insufficient_storage"},
    {RD_E_DB, 500, "database_error"},
    {RD_E_INTERNAL, 500, "internal"},
    {RD_E_GEOMETRY, 422, "geometry_mismatch"},
    {RD_E_BADGEO, 422, "bad_geometry"},
};
static_assert(sizeof table / sizeof table[0] == RD_E_COUNT, "every rd_ecode needs a row in api/errors.c");

int rd_api_status(rd_ecode code)
{
    if ((unsigned)code >= RD_E_COUNT || table[code].code != code) return 500;
    return table[code].status;
}

const char *rd_api_code_name(rd_ecode code)
{
    if ((unsigned)code >= RD_E_COUNT || table[code].code != code) return "internal";
    return table[code].word;
}
