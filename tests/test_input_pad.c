/* test_input_pad.c — the mirrored input margin (rd_model_opts.input_pad,
 * core/resad.c run_backbone), with the shipped backbone:
 *  - the level shapes, the stride and the grid do not change with the pad;
 *  - features more than 48 px from the frame's edge are those of the unpadded
 *    run, to float rounding, at the stride-4 and stride-8 levels (the stride-16
 *    level's reach spans the frame); at the edge every level differs (the
 *    convolutions see mirrored texture, not zeros);
 *  - the result equals a direct computation: the unpadded backbone run on the
 *    mirrored image itself (made here with testutil's reflect index), cropped;
 *  - a pad that is not a multiple of the stride, or too large, is refused, and
 *    the model id changes with the pad (stored features are not mixed up). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "resad.h"
#include "testutil.h"

#define FW 288
#define FH 160

static void make_frame(rd_image *img, int w, int h, unsigned seed)
{
    float r[6], *nz = malloc((size_t)w * h * sizeof *nz);
    img->w = w;
    img->h = h;
    img->rgb = malloc((size_t)w * h * 3);
    rd_fill_uniform(r, 6, seed, 0.0f, 1.0f);
    rd_fill_uniform(nz, (size_t)w * h, seed + 5, -20.0f, 20.0f);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 120 + 60 * sinf(0.11f * (float)x + r[c]) * cosf(0.09f * (float)y + r[3 + c]) + nz[y * w + x];
                img->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(nz);
}

static rd_model *load(int pad, rd_err *err)
{
    rd_model_opts mo;
    rd_model_opts_default(&mo);
    mo.backbone_path = "models/mobilenet_v2.safetensors";
    mo.size = 160; /* the frame's short side: the working grid is the frame itself, no resampling */
    mo.input_pad = pad;
    return rd_model_load(&mo, err);
}

int main(void)
{
    rd_err err = {0};
    const int P = 32;
    rd_model *m0 = load(0, &err), *mp = load(P, &err);
    RD_CHECK(m0 && mp, "models: %s", err.msg);
    rd_model *bad = load(8, &err);
    RD_CHECK(!bad && err.code == RD_ERR_ARG, "pad 8 (not a multiple of 16) refused");
    rd_model_free(bad);
    bad = load(RD_MAX_INPUT_PAD + 16, &err);
    RD_CHECK(!bad, "a pad past the limit refused");
    rd_model_free(bad);
    if (!m0 || !mp) return rd_test_done("test_input_pad");
    const rd_model_info *i0 = rd_model_get_info(m0), *ip = rd_model_get_info(mp);
    RD_CHECK(ip->input_pad == P && i0->input_pad == 0 && ip->stride == i0->stride && strcmp(ip->model_id, i0->model_id),
             "info: pad %d, stride %d vs %d, ids differ", ip->input_pad, ip->stride, i0->stride);
    for (int l = 0; l < i0->nlevels; l++)
        RD_CHECK(ip->level_h[l] == i0->level_h[l] && ip->level_w[l] == i0->level_w[l], "level %d shape", l);

    rd_worker *w0 = rd_worker_new(m0, &err), *wp = rd_worker_new(mp, &err);
    rd_image img = {0}, big = {0};
    make_frame(&img, FW, FH, 3);
    /* the mirrored frame, built directly */
    big.w = FW + 2 * P;
    big.h = FH + 2 * P;
    big.rgb = malloc((size_t)big.w * big.h * 3);
    for (int y = 0; y < big.h; y++)
        for (int x = 0; x < big.w; x++)
            memcpy(big.rgb + ((size_t)y * big.w + x) * 3,
                   img.rgb + ((size_t)rd_test_reflect(y - P, FH) * FW + rd_test_reflect(x - P, FW)) * 3, 3);
    rd_feats *f0 = NULL, *fp = NULL, *fb = NULL;
    rd_model *mb = NULL;
    {
        rd_model_opts mo;
        rd_model_opts_default(&mo);
        mo.backbone_path = "models/mobilenet_v2.safetensors";
        mo.size = FH + 2 * P;
        mo.input_pad = 0;
        mb = rd_model_load(&mo, &err);
    }
    rd_worker *wb = mb ? rd_worker_new(mb, &err) : NULL;
    RD_CHECK(w0 && wp && wb, "workers: %s", err.msg);
    if (w0 && wp && wb) {
        RD_CHECK(rd_extract(m0, w0, &img, &f0, NULL, &err) == RD_OK, "extract: %s", err.msg);
        RD_CHECK(rd_extract(mp, wp, &img, &fp, NULL, &err) == RD_OK, "extract padded: %s", err.msg);
        RD_CHECK(rd_extract(mb, wb, &big, &fb, NULL, &err) == RD_OK, "extract mirrored frame: %s", err.msg);
    }
    for (int l = 0; f0 && fp && fb && l < f0->nlevels; l++) {
        int h = f0->h[l], wd = f0->w[l], c = f0->c[l], stride = FH / h, off = P / stride;
        /* interior: more than 48 px (this level's reach, generously) from every edge */
        int margin = (48 + stride - 1) / stride;
        double in_err = 0, in_mag = 0, edge_diff = 0, ref_err = 0, ref_mag = 0;
        RD_CHECK(fp->h[l] == h && fp->w[l] == wd && fb->h[l] == h + 2 * off, "level %d shapes", l);
        if (fp->h[l] != h || fp->w[l] != wd || fb->h[l] != h + 2 * off) continue;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < wd; x++)
                for (int k = 0; k < c; k++) {
                    float a = f0->data[l][((size_t)y * wd + x) * c + k], b = fp->data[l][((size_t)y * wd + x) * c + k];
                    float r = fb->data[l][((size_t)(y + off) * fb->w[l] + x + off) * c + k];
                    ref_err = fmax(ref_err, fabs(b - r));
                    ref_mag = fmax(ref_mag, fabs(r));
                    int interior = y >= margin && y < h - margin && x >= margin && x < wd - margin;
                    if (interior) {
                        in_err = fmax(in_err, fabs(a - b));
                        in_mag = fmax(in_mag, fabs(a));
                    } else if (y == 0 || x == 0) {
                        edge_diff = fmax(edge_diff, fabs(a - b));
                    }
                }
        printf("level %d (%dx%d, stride %d): interior max |diff| %.2e of %.2e, edge max |diff| %.3f, vs the mirrored "
               "frame %.2e\n",
               l, h, wd, stride, in_err, in_mag, edge_diff, ref_err);
        RD_CHECK(margin * 2 < h, "level %d has an interior", l);
        if (stride <= 8) /* the coarsest level's reach spans this small frame: no interior there */
            RD_CHECK(in_err <= 1e-4 * in_mag, "level %d: interior features changed by %g", l, in_err);
        RD_CHECK(edge_diff > 1e-2 * in_mag, "level %d: edge features did not change (%g)", l, edge_diff);
        RD_CHECK(ref_err <= 1e-4 * ref_mag, "level %d: padded run vs the mirrored frame, %g", l, ref_err);
    }
    rd_feats_free(f0);
    rd_feats_free(fp);
    rd_feats_free(fb);
    rd_image_release(&img);
    rd_image_release(&big);
    rd_worker_free(w0);
    rd_worker_free(wp);
    rd_worker_free(wb);
    rd_model_free(m0);
    rd_model_free(mp);
    rd_model_free(mb);
    return rd_test_done("test_input_pad");
}
