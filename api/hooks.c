/* hooks.c — webhooks over HTTP: create ({"url", "events", "class", "secret"}),
 * list and get (with delivery counts by status and the last attempt's
 * outcome), delete.  Deliveries themselves are engine/webhooks.c's.  The
 * secret is write-only: never shown again. */
#include "hooks.h"

#include <stdio.h>
#include <string.h>

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

static int bad(rd_req *r, json_t *o, const char *msg)
{
    json_decref(o);
    return rd_reply_err(r, 400, "bad_request", "%s", msg);
}

int rd_hooks_create(rd_req *r)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    char events[128] = "";
    if (!o || !json_is_object(o)) return bad(r, o, "the body is a JSON object {url, secret, events, class}");
    const char *url = json_string_value(json_object_get(o, "url"));
    const char *secret = json_string_value(json_object_get(o, "secret"));
    json_t *cls = json_object_get(o, "class"), *ev = json_object_get(o, "events");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    if (strcmp(k, "url") && strcmp(k, "secret") && strcmp(k, "class") && strcmp(k, "events"))
        return bad(r, o, "unknown field (url, secret, events, class)");
    if (!url || strlen(url) > RD_STORE_URL_MAX || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return bad(r, o, "url is an http:// or https:// URL");
    if (!secret || strlen(secret) < 8 || strlen(secret) > 255) return bad(r, o, "secret is 8 to 255 bytes");
    if (cls && !json_is_null(cls) && (!json_is_string(cls) || !rd_route_valid_name(json_string_value(cls))))
        return bad(r, o, "class is a class name or null (every class)");
    if (!ev || json_is_null(ev)) {
        snprintf(events, sizeof events, "inspection");
    } else {
        size_t i;
        json_t *e;
        if (!json_is_array(ev) || !json_array_size(ev)) return bad(r, o, "events is a non-empty array");
        json_array_foreach(ev, i, e)
        {
            const char *s = json_string_value(e);
            if (!s || (strcmp(s, "inspection") && strcmp(s, "class") && strcmp(s, "*")))
                return bad(r, o, "events are \"inspection\", \"class\" or \"*\"");
            if (!strcmp(s, "*")) snprintf(events, sizeof events, "*");
            else if (strcmp(events, "*") && !strstr(events, s))
                snprintf(events + strlen(events), sizeof events - strlen(events), "%s%s", events[0] ? "," : "", s);
        }
    }
    rd_webhook_row *row = malloc(sizeof *row);
    rd_err err = {0};
    if (!row) return bad(r, o, "out of memory");
    rd_ecode code = rd_engine_webhook_add(r->e, url, events, json_is_string(cls) ? json_string_value(cls) : NULL,
                                          secret, row, &err);
    json_decref(o);
    int ret = code != RD_E_OK ? rd_reply_code(r, code, &err) : rd_reply_json(r, 201, view_hook(row));
    free(row);
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
