/* test_regions.c — core/regions.c against a naive reference.
 *
 *  - random maps (several densities, with and without an inspected rectangle):
 *    the components found by union-find equal those of a naive flood fill
 *    (explicit stack, 8 neighbours): count, hot pixels, and per region bbox,
 *    area, peak and peak position, in the same largest-first order; the cap
 *    keeps the largest;
 *  - a drawn box maps to the image pixels it covers through a 2x view;
 *  - confidence: exactly 0.5 at the threshold, strictly increasing, in (0, 1);
 *    sensitivity 0.5 keeps the threshold, 1 halves it, 0 doubles it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"
#include "testutil.h"

/* naive: flood fill from each unvisited hot pixel in raster order */
static int naive(const float *m, int w, int h, rd_rect b, float t, rd_region *out, long *first)
{
    int *seen = calloc((size_t)w * h, sizeof *seen), *st = malloc((size_t)w * h * sizeof *st), n = 0;
    for (int y0 = b.y; y0 < b.y + b.h; y0++)
        for (int x0 = b.x; x0 < b.x + b.w; x0++) {
            int i0 = y0 * w + x0;
            if (seen[i0] || !(m[i0] >= t)) continue;
            rd_region r = {x0, y0, 1, 1, 0, m[i0], x0, y0};
            int x1 = x0 + 1, y1 = y0 + 1, sp = 0;
            st[sp++] = i0;
            seen[i0] = 1;
            while (sp) {
                int i = st[--sp], x = i % w, y = i / w;
                r.area++;
                if (x < r.x) r.x = x;
                if (x + 1 > x1) x1 = x + 1;
                if (y + 1 > y1) y1 = y + 1;
                if (m[i] > r.peak || (m[i] == r.peak && i < r.peak_y * w + r.peak_x)) r.peak = m[i], r.peak_x = x, r.peak_y = y;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int nx = x + dx, ny = y + dy;
                        if (nx < b.x || ny < b.y || nx >= b.x + b.w || ny >= b.y + b.h) continue;
                        int j = ny * w + nx;
                        if (!seen[j] && m[j] >= t) seen[j] = 1, st[sp++] = j;
                    }
            }
            r.w = x1 - r.x, r.h = y1 - r.y;
            first[n] = i0;
            out[n++] = r;
        }
    /* largest first, ties by first pixel: insertion sort */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (out[j].area > out[j - 1].area ||
                                  (out[j].area == out[j - 1].area && first[j] < first[j - 1])); j--) {
            rd_region tr = out[j];
            out[j] = out[j - 1], out[j - 1] = tr;
            long tf = first[j];
            first[j] = first[j - 1], first[j - 1] = tf;
        }
    free(seen);
    free(st);
    return n;
}

static void test_random(void)
{
    enum { W = 37, H = 29 };
    static float m[W * H];
    static rd_region a[W * H], b[W * H];
    static long first[W * H];
    const float dens[] = {0.1f, 0.35f, 0.55f, 0.8f};
    for (int trial = 0; trial < 40; trial++) {
        rd_fill_uniform(m, W * H, 1234u + (unsigned)trial, 0.0f, 1.0f);
        float t = 1.0f - dens[trial % 4];
        rd_rect in = trial % 2 ? (rd_rect){3, 2, 30, 20} : (rd_rect){0, 0, W, H};
        long hot, insp, hot_naive = 0;
        int n = rd_regions_find(m, W, H, &in, t, a, W * H, &hot, &insp);
        int nn = naive(m, W, H, in, t, b, first);
        for (int y = in.y; y < in.y + in.h; y++)
            for (int x = in.x; x < in.x + in.w; x++) hot_naive += m[y * W + x] >= t;
        RD_CHECK(n == nn, "trial %d: %d components, naive %d", trial, n, nn);
        RD_CHECK(hot == hot_naive && insp == (long)in.w * in.h, "trial %d: hot %ld/%ld insp %ld", trial, hot,
                 hot_naive, insp);
        for (int i = 0; i < n && i < nn; i++)
            RD_CHECK(!memcmp(&a[i], &b[i], sizeof a[i]), "trial %d region %d: (%d,%d %dx%d a%ld pk %g@%d,%d) vs "
                     "(%d,%d %dx%d a%ld pk %g@%d,%d)", trial, i, a[i].x, a[i].y, a[i].w, a[i].h, a[i].area,
                     a[i].peak, a[i].peak_x, a[i].peak_y, b[i].x, b[i].y, b[i].w, b[i].h, b[i].area, b[i].peak,
                     b[i].peak_x, b[i].peak_y);
        rd_region cap[3];
        RD_CHECK(rd_regions_find(m, W, H, &in, t, cap, 3, &hot, &insp) == nn && (nn < 3 || !memcmp(cap, b, sizeof cap)),
                 "trial %d: the cap keeps the 3 largest", trial);
    }
}

static void test_box_to_image(void)
{
    enum { W = 20, H = 10 };
    float m[W * H] = {0};
    for (int y = 3; y < 6; y++)
        for (int x = 5; x < 9; x++) m[y * W + x] = 1.0f + (float)(x == 7 && y == 4);
    m[0] = 1.0f; /* a one-pixel region in the corner */
    rd_region r[4];
    long hot, insp;
    int n = rd_regions_find(m, W, H, NULL, 0.5f, r, 4, &hot, &insp);
    RD_CHECK(n == 2 && hot == 13 && insp == W * H, "n %d hot %ld", n, hot);
    RD_CHECK(r[0].x == 5 && r[0].y == 3 && r[0].w == 4 && r[0].h == 3 && r[0].area == 12 && r[0].peak == 2.0f &&
             r[0].peak_x == 7 && r[0].peak_y == 4, "grid box %d,%d %dx%d", r[0].x, r[0].y, r[0].w, r[0].h);
    /* the image is 40x20, the grid covers all of it */
    rd_view v = {.img_w = 40, .img_h = 20, .work_w = W, .work_h = H, .src_w = 1, .src_h = 1, .dst_w = W, .dst_h = H};
    rd_regions_to_image(&v, r, n);
    RD_CHECK(r[0].x == 10 && r[0].y == 6 && r[0].w == 8 && r[0].h == 6 && r[0].area == 48 && r[0].peak_x == 15 &&
             r[0].peak_y == 9, "image box %d,%d %dx%d area %ld peak %d,%d", r[0].x, r[0].y, r[0].w, r[0].h,
             r[0].area, r[0].peak_x, r[0].peak_y);
    RD_CHECK(r[1].x == 0 && r[1].y == 0 && r[1].w == 2 && r[1].h == 2 && r[1].area == 4, "corner");
    RD_CHECK(rd_regions_find(m, W, H, &(rd_rect){0, 0, 0, 0}, 0.5f, r, 4, &hot, &insp) == 0 && insp == 0,
             "empty rectangle");
}

static void test_confidence(void)
{
    const double ts[] = {0.37, 1.0, 12.5, 0.0};
    for (int k = 0; k < 4; k++) {
        double t = ts[k], prev = -1;
        RD_CHECK(rd_confidence(t, t) == 0.5, "t %g: %.17g", t, rd_confidence(t, t));
        for (int i = 0; i <= 200; i++) {
            double s = t + (i - 100) * 0.05 * (t ? t : 1), c = rd_confidence(s, t);
            RD_CHECK(c > prev && c > 0 && c < 1, "t %g s %g: %g after %g", t, s, c, prev);
            prev = c;
        }
    }
    RD_CHECK(rd_sensitivity_threshold(3.0, 0.5) == 3.0 && rd_sensitivity_threshold(3.0, 1.0) == 1.5 &&
             rd_sensitivity_threshold(3.0, 0.0) == 6.0, "sensitivity");
}

int main(void)
{
    test_random();
    test_box_to_image();
    test_confidence();
    return rd_test_done("test_regions");
}
