/* heatmaps.h — lazy heatmaps (issue 13): an inspection stores its anomaly map
 * compactly (core/heatblob.h) and, while the image retention keeps it, a JPEG
 * copy of the image; the overlay/raw/mask PNGs are rendered on GET, at the
 * original geometry, and the last few renderings are kept in a small
 * in-memory LRU cache bounded in bytes.
 *
 * What a GET returns:
 *   - a row stored as a PNG (databases from before sql/006_storage.sql) is
 *     served as it is;
 *   - raw and mask always render from the stored map;
 *   - overlay renders over the retained image copy; once that copy is gone
 *     (keep_images) it renders over a neutral mid-grey frame of the original
 *     size (RD_IMAGE_BG), so the colours still show the map, and *expired is
 *     set (api/ answers 200 either way; the OpenAPI says so).
 * The service owns one rd_heatcache; everything here is thread-safe. */
#ifndef RD_ENGINE_HEATMAPS_H
#define RD_ENGINE_HEATMAPS_H

#include <stddef.h>
#include <stdint.h>

#include "heatmap.h"
#include "resad.h"
#include "sql/ecode.h"
#include "sql/store.h"

typedef struct rd_heatcache rd_heatcache;

/* budget: bytes of PNGs kept (0 = no cache). */
rd_heatcache *rd_heatcache_new(size_t budget);
void rd_heatcache_free(rd_heatcache *c);
/* Drops every cached rendering of inspection id (NULL cache ok). */
void rd_heatcache_forget(rd_heatcache *c, int64_t id);

/* The PNG (malloc'ed into *png) of heatmap kind ("overlay" | "raw" | "mask")
 * of inspection id; *expired (may be NULL) is 1 for an overlay rendered
 * without the image.  RD_E_NOTFOUND: no such inspection or no map. */
rd_ecode rd_heatmaps_get(rd_store *s, rd_heatcache *c, int64_t id, const char *kind, uint8_t **png, size_t *len,
                         int *expired, rd_err *err);

/* What an inspection stores for its heatmaps: *map the compact map
 * (core/heatblob.h) and, with quality > 0, *image a JPEG of img at that
 * quality (the decoded pixels the overlay is drawn over).  Runs on the worker. */
rd_status rd_heatmaps_encode(const rd_result *res, const rd_image *img, int quality, rd_png_buf *map,
                             rd_png_buf *image, rd_err *err) RD_WARN_UNUSED;

/* Whether an upload of len bytes, decoded into img, is kept as it is for the
 * image copy instead of re-encoding img (rd_heatmaps_encode with quality 0):
 * a JPEG decoded reduced (its pixels are not the frame's), or a JPEG at full
 * size of at most RD_HEAT_KEEP_BITS bits per displayed pixel (about what the
 * q85 re-encode of a photograph takes: the demo's 256² frame is 3.1 bits at
 * q85, 3.7 as uploaded at q90).  The kept copy decodes to exactly the pixels
 * inspected, and costs no encode (~0.2 ms at 256², ~6 ms at 1920×1080). */
#define RD_HEAT_KEEP_BITS 4
int rd_heatmaps_keep_upload(const uint8_t *data, size_t len, const rd_image *img);

/* keep_images setting: "off" | "last N" | "N days" (N ≥ 1).  0 on success
 * with *last / *days (0 = that bound unused); -1 when malformed. */
int rd_heatmaps_keep_parse(const char *text, long *last, long *days);

#endif
