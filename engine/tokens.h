/* tokens.h — making API tokens: "rd_" + 64 hex digits of getrandom(2), and
 * the SHA-256 (hex) that is all the store keeps of one.  Used by the CLI
 * (`resadd token create`) and by POST /v1/tokens (rd_engine_token_create). */
#ifndef RD_ENGINE_TOKENS_H
#define RD_ENGINE_TOKENS_H

#define RD_TOKEN_LEN 67 /* "rd_" + 64 hex */

/* 0 with tok (RD_TOKEN_LEN + 1 bytes) and hash (65 bytes) filled; -1 when the
 * system has no randomness to give or hashing failed. */
int rd_token_generate(char tok[RD_TOKEN_LEN + 1], char hash[65]);

#endif
