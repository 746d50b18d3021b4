/* geoopts.h — a class's geometry options (core/geometry.h rd_geo_opts: the
 * working short side, fit policy, ROI, search tile, alpha policy) as the one
 * line of text the store keeps per class until its first reference fixes the
 * geometry, and their validation before anything is stored:
 *   "s=320 fit=pad roi=0,0,0,0 alpha=composite search=0"
 * s 0 = the model's size; roi w 0 = the whole frame; search -1 = global
 * nearest-neighbour search, 0 = the default tile, T = tile side. */
#ifndef RD_GEOOPTS_H
#define RD_GEOOPTS_H

#include <stddef.h>

#include "geometry.h"

void rd_geoopts_format(const rd_geo_opts *o, char *buf, size_t len);
/* "" or NULL = defaults.  0 on success, -1 on malformed text. */
int rd_geoopts_parse(const char *text, rd_geo_opts *o);
/* Checks what can be checked before a frame is known (sizes within
 * RD_GEO_MAX_SIDE, a non-negative ROI with both or neither side, a tile of
 * -1, 0 or stride..RD_GEO_MAX_SIDE); RD_ERR_ARG / RD_ERR_LIMIT naming the field. */
rd_status rd_geoopts_check(const rd_geo_opts *o, int stride, rd_err *err) RD_WARN_UNUSED;

#endif
