/* hooks.h — the /v1/webhooks routes (admin), internal to api/. */
#ifndef RD_API_HOOKS_H
#define RD_API_HOOKS_H

#include "req.h"

int rd_hooks_create(rd_req *r); /* POST /v1/webhooks */
int rd_hooks_list(rd_req *r);   /* GET /v1/webhooks */
int rd_hooks_get(rd_req *r);    /* GET /v1/webhooks/{id} */
int rd_hooks_delete(rd_req *r); /* DELETE /v1/webhooks/{id} */

#endif
