/* sha256.h — SHA-256 as lowercase hex, via OpenSSL's libcrypto (EVP).
 * Identifies model files, stored feature sets and reference images. */
#ifndef RD_SHA256_H
#define RD_SHA256_H

#include <stddef.h>

#define RD_SHA256_HEX 65 /* 64 hex digits + NUL */

/* Returns 0 on success, -1 if libcrypto failed (out is then ""). */
int rd_sha256_hex(const void *data, size_t len, char out[RD_SHA256_HEX]);

/* Incremental form for data in pieces. */
typedef struct rd_sha256 rd_sha256;
rd_sha256 *rd_sha256_new(void);
void rd_sha256_update(rd_sha256 *h, const void *data, size_t len);
/* Writes the hex digest and frees h. Returns 0 on success. */
int rd_sha256_final_hex(rd_sha256 *h, char out[RD_SHA256_HEX]);

#endif
