/* geoopts.c — geometry options as text, and their validation (see geoopts.h). */
#include "geoopts.h"

#include <stdio.h>
#include <string.h>

void rd_geoopts_format(const rd_geo_opts *o, char *buf, size_t len)
{
    snprintf(buf, len, "s=%d fit=%s roi=%d,%d,%d,%d alpha=%s search=%d", o->s, rd_fit_name(o->fit), o->roi.x,
             o->roi.y, o->roi.w, o->roi.h, o->alpha ? "ignore" : "composite", o->search_tile);
}

int rd_geoopts_parse(const char *text, rd_geo_opts *o)
{
    char fit[16], alpha[16];
    int used = 0;
    memset(o, 0, sizeof *o);
    if (!text || !text[0]) return 0;
    if (sscanf(text, "s=%d fit=%15s roi=%d,%d,%d,%d alpha=%15s search=%d%n", &o->s, fit, &o->roi.x, &o->roi.y,
               &o->roi.w, &o->roi.h, alpha, &o->search_tile, &used) != 8 ||
        text[used] != '\0' || rd_fit_parse(fit, &o->fit))
        return -1;
    if (!strcmp(alpha, "ignore")) o->alpha = 1;
    else if (strcmp(alpha, "composite")) return -1;
    return 0;
}

rd_status rd_geoopts_check(const rd_geo_opts *o, int stride, rd_err *err)
{
    if (o->s < 0 || (o->s > 0 && o->s < stride))
        return rd_err_set(err, RD_ERR_ARG, "geometry size %d: the working short side must be at least %d", o->s,
                          stride);
    if (o->s > RD_GEO_MAX_SIDE)
        return rd_err_set(err, RD_ERR_LIMIT, "geometry size %d: the working short side is at most %d", o->s,
                          RD_GEO_MAX_SIDE);
    if ((unsigned)o->fit >= RD_FIT_COUNT) return rd_err_set(err, RD_ERR_ARG, "geometry fit: none, pad, stretch or crop");
    if (o->alpha != 0 && o->alpha != 1) return rd_err_set(err, RD_ERR_ARG, "geometry alpha: composite or ignore");
    if (o->roi.x < 0 || o->roi.y < 0 || o->roi.w < 0 || o->roi.h < 0 || (o->roi.w == 0) != (o->roi.h == 0) ||
        (o->roi.w == 0 && (o->roi.x || o->roi.y)))
        return rd_err_set(err, RD_ERR_ARG, "geometry roi [%d,%d,%d,%d]: want [x, y, width, height] with x, y >= 0 "
                          "and width, height > 0", o->roi.x, o->roi.y, o->roi.w, o->roi.h);
    if (o->search_tile < -1 || (o->search_tile > 0 && o->search_tile < stride) || o->search_tile > RD_GEO_MAX_SIDE)
        return rd_err_set(err, RD_ERR_ARG, "geometry tile %d: 0 (global search) or %d..%d working pixels",
                          o->search_tile < 0 ? 0 : o->search_tile, stride, RD_GEO_MAX_SIDE);
    return RD_OK;
}
