/* tokens.c — the token API (see tokens.h).  POST takes
 * {"scope": "admin"|"inspect"|"read", "name"?: string, "expires_in_s"?: int}
 * and answers the secret once ("token"); only its SHA-256 is stored.  The CLI
 * (`resadd token create|list|revoke`) works on the same table. */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "req.h"
#include "views.h"

#define MAX_EXPIRY_S (10LL * 365 * 86400)

static json_t *token_view(const rd_token_row *t)
{
    json_t *a = rd_view_tokens(t, 1);
    json_t *o = json_incref(json_array_get(a, 0));
    json_decref(a);
    return o;
}

int rd_tokens_create(rd_req *r)
{
    json_error_t je;
    rd_token_row row;
    rd_err err = {0};
    char tok[68], exp[32];
    const char *exp_at = NULL;
    json_t *b = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    int ret;
    if (!json_is_object(b)) {
        json_decref(b);
        return rd_reply_err(r, 400, "bad_json", "the body is a JSON object {\"scope\", \"name\"?, \"expires_in_s\"?}");
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "scope") && strcmp(k, "name") && strcmp(k, "expires_in_s")) {
            ret = rd_reply_err(r, 400, "bad_request", "unknown field '%.64s' (scope, name, expires_in_s)", k);
            goto out;
        }
    }
    const char *scope = json_string_value(json_object_get(b, "scope"));
    json_t *name = json_object_get(b, "name"), *ein = json_object_get(b, "expires_in_s");
    if (!scope || (strcmp(scope, "admin") && strcmp(scope, "inspect") && strcmp(scope, "read"))) {
        ret = rd_reply_err(r, 400, "bad_request", "scope is admin, inspect or read");
        goto out;
    }
    if (name && (!json_is_string(name) || json_string_length(name) > 127)) {
        ret = rd_reply_err(r, 400, "bad_request", "name is a string of at most 127 bytes");
        goto out;
    }
    if (ein && !json_is_null(ein)) {
        json_int_t s = json_is_integer(ein) ? json_integer_value(ein) : -1;
        if (s < 1 || s > MAX_EXPIRY_S) {
            ret = rd_reply_err(r, 400, "bad_request", "expires_in_s is an integer from 1 to %lld", MAX_EXPIRY_S);
            goto out;
        }
        time_t t = time(NULL) + (time_t)s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        exp_at = exp;
    }
    rd_ecode code = rd_engine_token_create(r->e, name ? json_string_value(name) : "", scope, exp_at, tok, &row, &err);
    if (code != RD_E_OK) {
        ret = rd_reply_code(r, code, &err);
        goto out;
    }
    json_t *o = token_view(&row);
    json_object_set_new(o, "token", json_string(tok));
    ret = rd_reply_json(r, 201, o);
out:
    json_decref(b);
    return ret;
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
