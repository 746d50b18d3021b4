/* views.h — the JSON the API shows (jansson), built from the service's
 * structs: one function per resource, so every reply of a kind has the same
 * fields.  Each returns a new reference (NULL on out of memory). */
#ifndef RD_API_VIEWS_H
#define RD_API_VIEWS_H

#include <jansson.h>

#include "engine/engine.h"

json_t *rd_view_class(const rd_engine_class *c);
json_t *rd_view_classes(const rd_engine_class *c, int n);
json_t *rd_view_refs(const char *cls, const rd_ref_row *rows, int n);
json_t *rd_view_registration(const rd_engine_reg *r);
json_t *rd_view_inspection(const rd_insp_row *r);
/* after: the page came from after_id (adds next and has_more) */
json_t *rd_view_inspections(const rd_insp_page *p, int after);
json_t *rd_view_stats(const char *cls, const char *since, const rd_stats *s, int queue_depth);
json_t *rd_view_model(const rd_model_info *in);
json_t *rd_view_tokens(const rd_token_row *t, int n);
json_t *rd_view_error(const char *code, const char *msg);

#endif
