/* dashboard.h — the built-in dashboard page (GET /, /dashboard/app.js,
 * /dashboard/style.css): files of api/dashboard/ compiled into the binary. */
#ifndef RD_API_DASHBOARD_H
#define RD_API_DASHBOARD_H

struct rd_req;
/* Answers the asset the request's path names (a route-table handler). */
int rd_dashboard_serve(struct rd_req *r);

#endif
