/* errors.h — the one mapping from the service's error codes (sql/ecode.h) to
 * what a client sees: an HTTP status and a stable error word for the JSON
 * envelope {"error": {"code", "message"}}.  api/errors.c holds the table;
 * a static_assert there fails the build when a code has no row. */
#ifndef RD_API_ERRORS_H
#define RD_API_ERRORS_H

#include "sql/ecode.h"

/* HTTP status of code (500 for an unknown value). */
int rd_api_status(rd_ecode code);
/* Stable word of code ("not_found", "insufficient_storage", ...). */
const char *rd_api_code_name(rd_ecode code);

#endif
