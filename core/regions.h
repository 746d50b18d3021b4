/* regions.h — the verdict fields derived from one anomaly map: connected
 * anomalous regions, the anomalous area and a bounded confidence.
 *
 * Regions are the 8-connected components of the grid pixels that are
 * inspected (inside a rectangle) and score >= t.  Each gets its bounding box
 * and pixel count on the grid, its peak value and the peak's position (first
 * in raster order on ties); rd_regions_to_image maps them to the pixels of
 * the original image through the inspection's rd_view.
 *
 * Confidence (rd_confidence): a logistic of the score relative to the
 * threshold t,
 *     confidence = 1 / (1 + exp(−k · (score − t) / |t|)),  k = RD_CONF_K = 4
 * (|t| replaced by 1 when t = 0): exactly 0.5 at score = t, strictly
 * increasing in the score, 0.982 at score = 2t and 0.018 at score = 0.
 * Sensitivity (rd_sensitivity_threshold): s in [0, 1] scales a class's
 * threshold t to t · 2^(1 − 2s): 0.5 keeps t, 1 halves it, 0 doubles it.
 * Pure computation; the only allocation is rd_regions_find's work buffer. */
#ifndef RD_REGIONS_H
#define RD_REGIONS_H

#include "geometry.h"

#define RD_CONF_K 4.0

typedef struct rd_region {
    int x, y, w, h;     /* bounding box (grid pixels, or image pixels after rd_regions_to_image) */
    long area;          /* pixels */
    float peak;         /* the largest map value in the region */
    int peak_x, peak_y; /* its position */
} rd_region;

/* Components of the pixels of map (w×h, row-major) inside `in` (NULL = the
 * whole map) whose value is >= t.  Writes the `max` largest into out, largest
 * area first (ties: earlier first pixel in raster order first), sets *hot to
 * the number of such pixels and *inspected to the pixels inside `in`, and
 * returns the total number of components, or -1 when out of memory. */
int rd_regions_find(const float *map, int w, int h, const rd_rect *in, float t, rd_region *out, int max, long *hot,
                    long *inspected);

/* Maps n grid regions to pixels of the v->img_w×v->img_h image the view was
 * made for: the box covers every image pixel whose grid position falls in the
 * grid box, the area scales by the image pixels per grid pixel (rounded, at
 * least 1), the peak goes to the centre of its grid pixel. */
void rd_regions_to_image(const rd_view *v, rd_region *r, int n);

double rd_confidence(double score, double threshold);
double rd_sensitivity_threshold(double threshold, double sensitivity);

#endif
