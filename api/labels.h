/* labels.h — the label routes (operators' good/defect labels, pool membership,
 * a class's threshold policy) and their JSON bodies; the engine side is
 * engine/labels.h.  The body parsers are pure (fuzz/fuzz_json_body). */
#ifndef RD_API_LABELS_H
#define RD_API_LABELS_H

#include <jansson.h>
#include <stddef.h>

#include "bodies.h"

struct rd_req;

/* {"label": "good"|"defect", "join_pool"?: bool} -> label, join (1, 0, or -1 when absent). */
int rd_body_label(const char *text, size_t len, char label[8], int *join, rd_body_err *e);
/* {"threshold_policy"?: "loo"|"fpr:RATE"|"f1", "learn_from_labels"?: bool} (at least one);
 * policy "" / learn -1 when absent. */
int rd_body_label_policy(const char *text, size_t len, char policy[32], int *learn, rd_body_err *e);

int rd_labels_h_put(struct rd_req *r);        /* PUT|POST /v1/inspections/{id}/label */
int rd_labels_h_get(struct rd_req *r);        /* GET /v1/inspections/{id}/label */
int rd_labels_h_delete(struct rd_req *r);     /* DELETE /v1/inspections/{id}/label */
int rd_labels_h_ref_put(struct rd_req *r);    /* PUT /v1/inspections/{id}/reference */
int rd_labels_h_ref_delete(struct rd_req *r); /* DELETE /v1/inspections/{id}/reference */
int rd_labels_h_class(struct rd_req *r);      /* GET /v1/classes/{name}/labels */
int rd_labels_h_policy(struct rd_req *r);     /* PUT /v1/classes/{name}/threshold-policy */
/* GET /v1/classes/{name}: adds "threshold_policy" (and the policy's threshold
 * as "threshold" with source "policy" while it applies) to the class view o. */
void rd_labels_decorate_class(struct rd_req *r, const char *cls, json_t *o);
/* After r changed its class's reference pool (references added or deleted):
 * the class's fpr / f1 threshold, computed with the pool's scores, is stored
 * again (a failure is logged; a loo class is unchanged). */
void rd_labels_pool_changed(struct rd_req *r);

#endif
