/* multipart.h — a parser of multipart/form-data bodies (RFC 7578 / 2046) over
 * a buffered body: parts point into the body, nothing is copied.  Any
 * boundary of 1 to 70 characters, a preamble (including a bare CRLF) and an
 * epilogue are accepted; a missing close delimiter, a part without its blank
 * line, or more than max parts is an error. */
#ifndef RD_API_MULTIPART_H
#define RD_API_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

typedef struct rd_mpart {
    const uint8_t *data;
    size_t len;
    int is_file;     /* Content-Disposition had a filename */
    char ctype[64];  /* the part's Content-Type, "" when absent */
} rd_mpart;

/* Copies the boundary parameter of a multipart Content-Type header into out
 * (cap >= 71); 0, or -1 when absent or invalid. */
int rd_multipart_boundary(const char *content_type, char *out, size_t cap);
/* Parses body into parts[0..*n); 0, or -1 with a message in msg (msgcap). */
int rd_multipart_parse(const uint8_t *body, size_t len, const char *boundary, rd_mpart *parts, int max, int *n,
                       char *msg, size_t msgcap);

#endif
