/* fuzz_routes.c — libFuzzer target for the route matcher (api/routes.h) on
 * the real route table: the first byte picks a method (GET, HEAD, POST,
 * PATCH, DELETE, PUT, or the next bytes up to a space), the rest is the path.
 * Checks the contract: exactly one outcome; OK and BAD* name a row whose shape
 * fits; OK carries a valid {name} and a positive {id} when the pattern has
 * them; METHOD lists allowed methods and never names a row. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"};
    char method[16], *path;
    rd_match m;
    if (size < 1) return 0;
    if (data[0] < 6 * 40) {
        strcpy(method, methods[data[0] % 6]);
        data++, size--;
    } else { /* a method of its own: bytes up to the first space */
        size_t k = 0;
        data++, size--;
        while (k < size && k < sizeof method - 1 && data[k] != ' ') k++;
        memcpy(method, data, k);
        method[k] = '\0';
        if (memchr(method, '\0', k)) return 0;
        data += k < size ? k + 1 : k;
        size -= k < size ? k + 1 : k;
    }
    path = malloc(size + 1);
    if (!path) return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    rd_route_match(rd_api_routes, rd_api_nroutes, method, path, &m);
    switch (m.kind) {
    case RD_MATCH_OK:
        if (!m.route || !m.route->handler) abort();
        if (strstr(m.route->pattern, "{name}") && !rd_route_valid_name(m.name)) abort();
        if (strstr(m.route->pattern, "{id}") && m.id <= 0) abort();
        if (strcmp(m.route->method, strcmp(method, "HEAD") ? method : "GET")) abort();
        break;
    case RD_MATCH_BADNAME:
    case RD_MATCH_BADID:
        if (!m.route) abort();
        break;
    case RD_MATCH_METHOD:
        if (m.route || !m.allow[0]) abort();
        break;
    case RD_MATCH_NOPATH:
        if (m.route) abort();
        break;
    default: abort();
    }
    int64_t id;
    if (rd_route_parse_id(path, &id) == 0 && id <= 0) abort();
    (void)rd_route_valid_name(path);
    free(path);
    return 0;
}
