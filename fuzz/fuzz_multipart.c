/* fuzz_multipart.c — libFuzzer target for the multipart/form-data parser
 * (api/multipart.h): the input's first line is a Content-Type header value
 * (its boundary parameter is extracted with rd_multipart_boundary), the rest
 * is the body.  Checks the contract: a boundary is 1..70 bytes; on success
 * every part lies inside the body and its content type is terminated; on
 * failure there is a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/multipart.h"
#include "fuzz.h"

#define MAX_PARTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_mpart parts[MAX_PARTS];
    char ct[256], boundary[80], msg[256];
    int n = -1;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hl = nl ? (size_t)(nl - data) : size;
    if (hl >= sizeof ct) return 0;
    memcpy(ct, data, hl);
    ct[hl] = '\0';
    if (strlen(ct) != hl) return 0;
    if (rd_multipart_boundary(ct, boundary, sizeof boundary)) return 0;
    size_t bl = strlen(boundary);
    if (bl < 1 || bl > 70) abort();
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t len = (size_t)(data + size - body);
    /* a copy of exactly len bytes, so ASan sees any read past the body */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, body, len);
    msg[0] = '\0';
    if (rd_multipart_parse(copy, len, boundary, parts, MAX_PARTS, &n, msg, sizeof msg) == 0) {
        if (n < 0 || n > MAX_PARTS) abort();
        for (int i = 0; i < n; i++) {
            if (parts[i].data < copy || parts[i].data + parts[i].len > copy + len) abort();
            if (!memchr(parts[i].ctype, '\0', sizeof parts[i].ctype)) abort();
        }
    } else if (!msg[0]) {
        abort();
    }
    free(copy);
    return 0;
}
