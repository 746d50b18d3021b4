/* sha256.c — thin wrapper over OpenSSL EVP (see sha256.h). */
#include "sha256.h"

#include <openssl/evp.h>
#include <stdio.h>

struct rd_sha256 {
    EVP_MD_CTX *ctx;
    int failed;
};

rd_sha256 *rd_sha256_new(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rd_sha256 *h;
    if (!ctx) return NULL;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    h = (rd_sha256 *)OPENSSL_zalloc(sizeof *h);
    if (!h) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    h->ctx = ctx;
    return h;
}

void rd_sha256_update(rd_sha256 *h, const void *data, size_t len)
{
    if (h && len && EVP_DigestUpdate(h->ctx, data, len) != 1) h->failed = 1;
}

int rd_sha256_final_hex(rd_sha256 *h, char out[RD_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int rc = -1;
    out[0] = '\0';
    if (!h) return -1;
    if (!h->failed && EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32) {
        for (unsigned int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
        rc = 0;
    }
    EVP_MD_CTX_free(h->ctx);
    OPENSSL_free(h);
    return rc;
}

int rd_sha256_hex(const void *data, size_t len, char out[RD_SHA256_HEX])
{
    rd_sha256 *h = rd_sha256_new();
    if (!h) {
        out[0] = '\0';
        return -1;
    }
    rd_sha256_update(h, data, len);
    return rd_sha256_final_hex(h, out);
}
