/* dashboard.c — serves the dashboard's static files from the byte arrays
 * daemon/daemon.am generates from api/dashboard/ (dashboard.inc), so the page
 * needs no file on disk, no CDN and no network.  The page itself talks to the
 * API with the token the user enters (see api/dashboard/app.js). */
#include "dashboard.h"

#include <string.h>

#include "dashboard.inc"
#include "req.h"

typedef struct asset {
    const char *path, *ctype;
    const unsigned char *data;
    size_t len;
} asset;

static const asset assets[] = {
    {"/", "text/html; charset=utf-8", rd_dash_index_html, sizeof rd_dash_index_html},
    {"/dashboard/app.js", "text/javascript; charset=utf-8", rd_dash_app_js, sizeof rd_dash_app_js},
    {"/dashboard/style.css", "text/css; charset=utf-8", rd_dash_style_css, sizeof rd_dash_style_css},
};

int rd_dashboard_serve(rd_req *r)
{
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (!strcmp(r->url, assets[i].path))
            return rd_reply_buf(r, 200, assets[i].ctype, (void *)assets[i].data, assets[i].len, 0);
    return rd_reply_err(r, 404, "not_found", "no dashboard file %s", r->url);
}
