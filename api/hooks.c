/* hooks.c — webhooks over HTTP: create ({"url", "events", "class", "secret"}),
 * list and get (with delivery counts by status and the last attempt's
 * outcome), delete.  Deliveries themselves are engine/webhooks.c's.  The
 * secret is write-only: never shown again. */
#include "hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bodies.h"
#include "views.h"

static json_t *view_hook(const rd_webhook_row *w)
{
    json_t *ev = json_array();
    char buf[sizeof w->events], *save = NULL;
    snprintf(buf, sizeof buf, "%s", w->events);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) json_array_append_new(ev, json_string(t));
    return json_pack("{s:I, s:s, s:o, s:o, s:s, s:{s:I, s:I, s:I, s:o, s:o}}", "id", (json_int_t)w->id, "url", w->url,
                     "events", ev, "class", w->cls[0] ? json_string(w->cls) : json_null(), "created_at",
                     w->created_at, "deliveries", "pending", (json_int_t)w->pending, "delivered",
                     (json_int_t)w->delivered, "failed", (json_int_t)w->failed, "last_status",
                     w->last_status ? json_integer(w->last_status) : json_null(), "last_error",
                     w->last_error[0] ? json_string(w->last_error) : json_null());
}

_Static_assert(RD_BODY_URL_MAX == RD_STORE_URL_MAX, "webhook URL limits differ");

int rd_hooks_create(rd_req *r)
{
    rd_webhook_body *b = malloc(sizeof *b);
    rd_body_err be = {0};
    if (!b) return rd_reply_err(r, 400, "bad_request", "%s", "out of memory");
    if (rd_body_webhook((const char *)r->body, r->len, b, &be)) {
        free(b);
        return rd_reply_err(r, 400, be.code, "%s", be.msg);
    }
    rd_webhook_row *row = malloc(sizeof *row);
    rd_err err = {0};
    int ret;
    if (!row) {
        ret = rd_reply_err(r, 400, "bad_request", "%s", "out of memory");
    } else {
        rd_ecode code = rd_engine_webhook_add(r->e, b->url, b->events, b->has_cls ? b->cls : NULL, b->secret, row, &err);
        ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 201, view_hook(row));
    }
    free(row);
    free(b);
    return ret;
}

int rd_hooks_list(rd_req *r)
{
    rd_webhook_row *rows = NULL;
    int n = 0;
    rd_err err = {0};
    rd_ecode code = rd_engine_webhook_list(r->e, &rows, &n, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, view_hook(&rows[i]));
    free(rows);
    return rd_reply_json(r, 200, json_pack("{s:o}", "webhooks", a));
}

int rd_hooks_get(rd_req *r)
{
    rd_webhook_row *row = malloc(sizeof *row);
    rd_err err = {0};
    if (!row) return rd_reply_err(r, 500, "internal", "out of memory");
    rd_ecode code = rd_engine_webhook_get(r->e, r->id, row, &err);
    int ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 200, view_hook(row));
    free(row);
    return ret;
}

int rd_hooks_delete(rd_req *r)
{
    rd_err err = {0};
    rd_ecode code = rd_engine_webhook_delete(r->e, r->id, &err);
    if (code != RD_E_OK) return rd_reply_code(r, code, &err);
    return rd_reply_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)r->id));
}
