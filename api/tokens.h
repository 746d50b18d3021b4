/* tokens.h — the token API (admin): POST /v1/tokens, GET /v1/tokens,
 * DELETE /v1/tokens/{id}; route-table handlers (handlers.c's table). */
#ifndef RD_API_TOKENS_H
#define RD_API_TOKENS_H

struct rd_req;
int rd_tokens_create(struct rd_req *r);
int rd_tokens_list(struct rd_req *r);
int rd_tokens_revoke(struct rd_req *r);

#endif
