/* tokens.c — a fresh API token and its hash (see tokens.h). */
#include "tokens.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "sha256.h"

int rd_token_generate(char tok[RD_TOKEN_LEN + 1], char hash[65])
{
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return -1;
    memcpy(tok, "rd_", 3);
    for (int k = 0; k < 32; k++) snprintf(tok + 3 + 2 * k, 3, "%02x", rnd[k]);
    return rd_sha256_hex(tok, RD_TOKEN_LEN, hash) ? -1 : 0;
}
