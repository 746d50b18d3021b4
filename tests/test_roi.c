/* test_roi.c — a class's ROI mask (issue 9: "pixels outside it are not
 * inspected, never clean"; core/geometry.h rd_geometry_roi_grid, core/resad.h
 * rd_refset_build_roi), with the shipped model on 320×180 camera-shaped frames:
 *  - the mask is sampled onto the 400×224 grid at the inspected share the
 *    image has; another aspect ratio and an all-black mask are refused;
 *  - a strong defect drawn only where the mask is black scores what the clean
 *    frame scores (far below the unmasked set's score for it), the map is 0
 *    there, the score is the map's maximum over inspected pixels, and the
 *    inspected fraction is the mask's share;
 *  - the same defect where the mask is white is still found (scores above
 *    the clean frame by half the threshold, as without the mask);
 *  - a set restored from the masked set's calibration scores bit for bit alike;
 *  - the level statistics come from the inspected part: references whose
 *    masked-out third holds a fixture that changes from part to part (random
 *    blocks) move the masked set's μ/σ far less than the unmasked set's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geometry.h"
#include "image.h"
#include "resad.h"
#include "testutil.h"

#define FW 320
#define FH 180

/* A textured frame (sinusoids + noise), different per seed; defect: 0 none,
 * 1 a bright patch in the right third, 2 the same patch in the left third,
 * 3 the right third covered by random 16-pixel blocks (a varying fixture). */
static void make_frame(rd_image *img, unsigned seed, int defect)
{
    float r[6], *nz = malloc(FW * FH * sizeof *nz);
    img->w = FW;
    img->h = FH;
    img->rgb = malloc(FW * FH * 3);
    rd_fill_uniform(r, 6, seed, 0.0f, 1.0f);
    rd_fill_uniform(nz, FW * FH, seed + 99, -12.0f, 12.0f);
    int x0 = defect == 1 ? 250 : 40;
    for (int y = 0; y < FH; y++)
        for (int x = 0; x < FW; x++)
            for (int ch = 0; ch < 3; ch++) {
                float v = 128 + 50 * sinf(0.2f * (float)x + r[ch]) * cosf(0.15f * (float)y + r[3 + ch]) +
                          nz[y * FW + x];
                if (defect == 3 && x >= 2 * FW / 3)
                    v = 255.0f * (float)((((unsigned)(x / 16) * 7919u + (unsigned)(y / 16) * 104729u + seed * 31u) >> 3) % 5) / 4;
                else if (defect && defect < 3 && x >= x0 && x < x0 + 40 && y > 70 && y < 100)
                    v = 255 - v * 0.3f;
                img->rgb[((size_t)y * FW + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(nz);
}

/* A w×h mask, white left of fraction cut of the width, black right of it. */
static void make_mask(rd_image *m, int w, int h, double cut)
{
    m->w = w;
    m->h = h;
    m->rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memset(m->rgb + ((size_t)y * w + x) * 3, x < cut * w ? 255 : 0, 3);
}

int main(void)
{
    rd_model_opts mo;
    rd_err err = {0};
    rd_model_opts_default(&mo);
    mo.backbone_path = "models/mobilenet_v2.safetensors";
    mo.model_path = "models/resad_mobilenet_v2.safetensors";
    rd_model *m = rd_model_load(&mo, &err);
    if (!m) {
        RD_CHECK(0, "model: %s", err.msg);
        return rd_test_done("test_roi");
    }
    rd_worker *w = rd_worker_new(m, &err);
    rd_geometry geo;
    RD_CHECK(w && rd_model_geometry(m, FW, FH, NULL, &geo, &err) == RD_OK, "geometry: %s", err.msg);
    const size_t n = (size_t)geo.work_w * geo.work_h;
    printf("frame %dx%d on a %dx%d grid\n", FW, FH, geo.work_w, geo.work_h);

    /* the mask on the grid; refusals */
    rd_image mask = {0}, other = {0}, black = {0};
    uint8_t *roi = NULL, *none = NULL;
    double frac = 0;
    make_mask(&mask, 640, 360, 2.0 / 3); /* any size of the frame's aspect */
    make_mask(&other, 640, 480, 2.0 / 3);
    make_mask(&black, 320, 180, 0.0);
    RD_CHECK(rd_geometry_roi_grid(&geo, &mask, &roi, &frac, &err) == RD_OK, "roi grid: %s", err.msg);
    RD_CHECK(fabs(frac - 2.0 / 3) < 0.01, "inspected share %g, want 2/3", frac);
    RD_CHECK(rd_geometry_roi_grid(&geo, &other, &none, NULL, &err) == RD_ERR_MISMATCH && !none &&
                 strstr(err.msg, "640x480") && strstr(err.msg, "320x180"),
             "a 4:3 mask on a 16:9 frame: %s", err.msg);
    RD_CHECK(rd_geometry_roi_grid(&geo, &black, &none, NULL, &err) == RD_ERR_ARG && !none, "an all-black mask");
    if (!m || !w || !roi) return rd_test_done("test_roi");
    for (int y = 0; y < geo.work_h; y++) /* the grid pixel centres left of 2/3 of the width are in */
        for (int x = 0; x < geo.work_w; x++)
            RD_CHECK(roi[(size_t)y * geo.work_w + x] == ((x + 0.5) / geo.work_w < 2.0 / 3), "roi at %d,%d", x, y);

    /* references and queries */
    rd_feats *f[4] = {0}, *clean = NULL, *right = NULL, *left = NULL;
    for (int i = 0; i < 4; i++) {
        rd_image img = {0};
        make_frame(&img, 11u + (unsigned)i, 0);
        RD_CHECK(rd_extract_geo(m, w, &geo, &img, &f[i], NULL, &err) == RD_OK, "reference %d: %s", i, err.msg);
        rd_image_release(&img);
    }
    rd_feats **q[3] = {&clean, &right, &left};
    for (int d = 0; d < 3; d++) {
        rd_image img = {0};
        make_frame(&img, 40u, d);
        RD_CHECK(rd_extract_geo(m, w, &geo, &img, q[d], NULL, &err) == RD_OK, "query %d: %s", d, err.msg);
        rd_image_release(&img);
    }
    rd_refset *plain = rd_refset_build(m, w, f, 4, &err);
    rd_refset *masked = rd_refset_build_roi(m, w, f, 4, roi, &err);
    RD_CHECK(plain && masked && rd_refset_roi(masked) && !rd_refset_roi(plain), "build: %s", err.msg);
    if (plain && masked && clean && right && left) {
        rd_result r[2][3];
        memset(r, 0, sizeof r);
        for (int s = 0; s < 2; s++)
            for (int d = 0; d < 3; d++)
                RD_CHECK(rd_inspect_feats(m, w, s ? masked : plain, *q[d], NAN, &r[s][d], &err) == RD_OK, "inspect: %s",
                         err.msg);
        printf("no mask: clean %.3f, defect right %.3f, left %.3f (threshold %.3f)\n", r[0][0].score, r[0][1].score,
               r[0][2].score, r[0][0].threshold);
        printf("mask:    clean %.3f, defect right %.3f, left %.3f (threshold %.3f); inspected %.3f\n", r[1][0].score,
               r[1][1].score, r[1][2].score, r[1][0].threshold, r[1][1].inspected_frac);
        /* "found": above the clean frame by half the threshold (the verdict itself depends on the set's LOO spread) */
        const float gap = 0.5f * r[0][0].threshold;
        RD_CHECK(r[0][1].score > r[0][0].score + gap && r[0][2].score > r[0][0].score + gap && !r[0][0].anomalous,
                 "the defects are found without a mask");
        RD_CHECK(!r[1][1].anomalous && fabsf(r[1][1].score - r[1][0].score) < 0.25f * r[1][0].threshold,
                 "a defect where the mask is black: %g, the clean frame %g", r[1][1].score, r[1][0].score);
        RD_CHECK(r[1][2].score > r[1][0].score + gap, "a defect where the mask is white is found: %g", r[1][2].score);
        RD_CHECK(fabsf(r[1][1].inspected_frac - (float)frac) < 1e-6f && r[0][1].inspected_frac == 1.0f,
                 "inspected fraction %g", r[1][1].inspected_frac);
        for (int d = 0; d < 3; d++) {
            const rd_result *a = &r[1][d];
            float mx = -INFINITY;
            size_t off = 0;
            for (size_t i = 0; i < n; i++) {
                if (a->roi && !a->roi[i]) off += a->map[i] != 0.0f;
                else if (a->map[i] > mx) mx = a->map[i];
            }
            RD_CHECK(a->roi && !memcmp(a->roi, roi, n), "the result carries the mask");
            RD_CHECK(off == 0, "%zu masked-out map values are not 0", off);
            RD_CHECK(a->score == mx && a->map_max == mx, "score %g, map max over inspected %g", a->score, mx);
        }
        /* restored from the masked set's calibration: the same, bit for bit */
        rd_calib cal;
        rd_refset_get_calib(masked, &cal);
        rd_refset *rest = rd_refset_restore(m, f, 4, &cal, roi, &err);
        RD_CHECK(rest != NULL, "restore: %s", err.msg);
        for (int d = 0; rest && d < 3; d++) {
            rd_result b = {0};
            RD_CHECK(rd_inspect_feats(m, w, rest, *q[d], NAN, &b, &err) == RD_OK, "inspect restored");
            RD_CHECK(b.score == r[1][d].score && !memcmp(b.map, r[1][d].map, n * sizeof(float)),
                     "restored %g vs built %g", b.score, r[1][d].score);
            rd_result_release(&b);
        }
        rd_refset_unref(rest);
        {
            rd_feats *g[4] = {0};
            rd_calib c[4];
            double dm = 0, dp = 0;
            for (int i = 0; i < 4; i++) {
                rd_image img = {0};
                make_frame(&img, 11u + (unsigned)i, 3);
                RD_CHECK(rd_extract_geo(m, w, &geo, &img, &g[i], NULL, &err) == RD_OK, "fixture %d: %s", i, err.msg);
                rd_image_release(&img);
            }
            rd_refset *gp = rd_refset_build(m, w, g, 4, &err), *gm = rd_refset_build_roi(m, w, g, 4, roi, &err);
            RD_CHECK(gp && gm, "build with the fixture: %s", err.msg);
            if (gp && gm) {
                rd_refset_get_calib(plain, &c[0]);
                rd_refset_get_calib(gp, &c[1]);
                rd_refset_get_calib(masked, &c[2]);
                rd_refset_get_calib(gm, &c[3]);
                for (int l = 0; l < c[0].nlevels; l++) {
                    dp += fabs(c[1].mu[l] - c[0].mu[l]) + fabs(c[1].sigma[l] - c[0].sigma[l]);
                    dm += fabs(c[3].mu[l] - c[2].mu[l]) + fabs(c[3].sigma[l] - c[2].sigma[l]);
                    printf("level %d: mu/sigma plain %.3f/%.3f -> %.3f/%.3f, masked %.3f/%.3f -> %.3f/%.3f\n", l,
                           c[0].mu[l], c[0].sigma[l], c[1].mu[l], c[1].sigma[l], c[2].mu[l], c[2].sigma[l], c[3].mu[l],
                           c[3].sigma[l]);
                }
                RD_CHECK(dm < 0.5 * dp, "a varying fixture under the mask moves the level statistics by %g (unmasked %g)",
                         dm, dp);
            }
            rd_refset_unref(gp);
            rd_refset_unref(gm);
            for (int i = 0; i < 4; i++) rd_feats_free(g[i]);
        }
        for (int s = 0; s < 2; s++)
            for (int d = 0; d < 3; d++) rd_result_release(&r[s][d]);
    }
    rd_refset_unref(plain);
    rd_refset_unref(masked);
    for (int i = 0; i < 4; i++) rd_feats_free(f[i]);
    rd_feats_free(clean);
    rd_feats_free(right);
    rd_feats_free(left);
    free(roi);
    rd_image_release(&mask);
    rd_image_release(&other);
    rd_image_release(&black);
    rd_worker_free(w);
    rd_model_free(m);
    return rd_test_done("test_roi");
}
