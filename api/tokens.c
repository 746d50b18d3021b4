/* tokens.c — the token API (see tokens.h).  POST takes
 * {"scope": "admin"|"inspect"|"read", "name"?: string, "expires_in_s"?: int}
 * and answers the secret once ("token"); only its SHA-256 is stored.  The CLI
 * (`resadd token create|list|revoke`) works on the same table. */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bodies.h"
#include "req.h"
#include "views.h"
#include "isotime.h"

static json_t *token_view(const rd_token_row *t)
{
    json_t *a = rd_view_tokens(t, 1);
    json_t *o = json_incref(json_array_get(a, 0));
    json_decref(a);
    return o;
}

int rd_tokens_create(rd_req *r)
{
    rd_token_body b;
    rd_body_err be = {0};
    rd_token_row row;
    rd_err err = {0};
    char tok[68], exp[RD_ISOTIME_LEN];
    const char *exp_at = NULL;
    if (rd_body_token((const char *)r->body, r->len, &b, &be)) return rd_reply_err(r, 400, be.code, "%s", be.msg);
    if (b.expires_in_s) {
        rd_isotime((int64_t)time(NULL) + (int64_t)b.expires_in_s, 0, exp);
        exp_at = exp;
    }
    rd_ecode code = rd_engine_token_create(r->e, b.name, b.scope, exp_at, tok, &row, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = token_view(&row);
    json_object_set_new(o, "token", json_string(tok));
    return rd_reply_json(r, 201, o);
}

int rd_tokens_list(rd_req *r)
{
    rd_token_row *rows = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_engine_token_list(r->e, &rows, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *o = json_pack("{s:o}", "tokens", rd_view_tokens(rows, n));
    free(rows);
    return rd_reply_json(r, 200, o);
}

int rd_tokens_revoke(rd_req *r)
{
    rd_err err = {0};
    rd_ecode code = rd_engine_token_revoke(r->e, r->id, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, json_pack("{s:I}", "revoked", (json_int_t)r->id));
}
