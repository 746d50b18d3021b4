/* knn.c — PatchCore-style nearest-neighbour baseline (see knn.h). */
#include "knn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mapops.h"
#include "pool.h"

struct rd_knn {
    int la, lb;  /* the two levels: la (finer grid) and lb (deeper) */
    int h, w, c; /* patch grid and channels after concatenation */
    rd_pool *bank;
};

/* Bilinear align_corners resampling of an HWC map (h×w×c → oh×ow×c) into dst
 * with row stride dstride floats and channel offset already applied by caller. */
static void upsample_hwc(const float *src, int h, int w, int c, float *dst, int oh, int ow, int dstride)
{
    for (int y = 0; y < oh; y++) {
        float fy = oh > 1 ? (float)y * (float)(h - 1) / (float)(oh - 1) : 0.0f;
        int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float wy = fy - (float)y0;
        for (int x = 0; x < ow; x++) {
            float fx = ow > 1 ? (float)x * (float)(w - 1) / (float)(ow - 1) : 0.0f;
            int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            float wx = fx - (float)x0;
            const float *a = src + ((size_t)y0 * w + x0) * c, *b = src + ((size_t)y0 * w + x1) * c;
            const float *cc = src + ((size_t)y1 * w + x0) * c, *d = src + ((size_t)y1 * w + x1) * c;
            float *o = dst + ((size_t)y * ow + x) * dstride;
            for (int k = 0; k < c; k++)
                o[k] = (1 - wy) * ((1 - wx) * a[k] + wx * b[k]) + wy * ((1 - wx) * cc[k] + wx * d[k]);
        }
    }
}

/* Concatenated, 3×3-averaged patch features of f: h×w×c floats (malloc'ed). */
static float *patches(const rd_knn *b, const rd_feats *f)
{
    const int h = b->h, w = b->w, c = b->c, ca = f->c[b->la];
    size_t n = (size_t)h * w * c;
    float *cat = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    if (!cat || !out) goto fail;
    for (size_t i = 0; i < (size_t)h * w; i++) memcpy(cat + i * c, f->data[b->la] + i * ca, ca * sizeof(float));
    upsample_hwc(f->data[b->lb], f->h[b->lb], f->w[b->lb], f->c[b->lb], cat + ca, h, w, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *o = out + ((size_t)y * w + x) * c;
            memset(o, 0, c * sizeof(float));
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    const float *s = cat + ((size_t)yy * w + xx) * c;
                    for (int k = 0; k < c; k++) o[k] += s[k];
                }
            for (int k = 0; k < c; k++) o[k] *= 1.0f / 9.0f;
        }
    free(cat);
    return out;
fail:
    free(cat);
    free(out);
    return NULL;
}

rd_knn *rd_knn_new(const rd_model *m, rd_feats *const *refs, int k, rd_err *err)
{
    const rd_model_info *in = rd_model_get_info(m);
    rd_knn *b = calloc(1, sizeof *b);
    float *pt[64] = {0};
    const float *blocks[64];
    size_t rows[64];
    if (!b) goto nomem;
    if (k < 1 || k > 64) {
        rd_err_set(err, RD_ERR_ARG, "knn: 1 to 64 references");
        goto fail;
    }
    b->la = in->nlevels >= 2 ? in->nlevels - 2 : 0;
    b->lb = in->nlevels - 1;
    /* the grid is the references' own (any working geometry), all alike */
    b->h = refs[0]->h[b->la];
    b->w = refs[0]->w[b->la];
    b->c = in->level_c[b->la] + (b->lb != b->la ? in->level_c[b->lb] : 0);
    if (b->lb == b->la) b->c = in->level_c[b->la];
    for (int i = 0; i < k; i++)
        if (refs[i]->h[b->la] != b->h || refs[i]->w[b->la] != b->w) {
            rd_err_set(err, RD_ERR_MISMATCH, "knn: reference %d has a %dx%d grid, reference 1 %dx%d", i + 1,
                       refs[i]->w[b->la], refs[i]->h[b->la], b->w, b->h);
            goto fail;
        }
    for (int i = 0; i < k; i++) {
        pt[i] = patches(b, refs[i]);
        if (!pt[i]) goto nomem;
        blocks[i] = pt[i];
        rows[i] = (size_t)b->h * b->w;
    }
    b->bank = rd_pool_new(blocks, rows, k, b->c, RD_POOL_L2, err);
    if (!b->bank) goto fail;
    for (int i = 0; i < k; i++) free(pt[i]);
    return b;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "knn: out of memory");
fail:
    for (int i = 0; i < 64; i++) free(pt[i]);
    rd_knn_free(b);
    return NULL;
}

void rd_knn_free(rd_knn *b)
{
    if (!b) return;
    rd_pool_free(b->bank);
    free(b);
}

rd_status rd_knn_score(const rd_model *m, const rd_knn *b, const rd_feats *f, float *map, int map_w, int map_h,
                       float *score, rd_err *err)
{
    const size_t n = (size_t)b->h * b->w, ss = (size_t)map_w * map_h;
    (void)m;
    if (f->h[b->la] != b->h || f->w[b->la] != b->w || map_w < 1 || map_h < 1)
        return rd_err_set(err, RD_ERR_MISMATCH, "knn: image grid %dx%d, references %dx%d", f->w[b->la], f->h[b->la],
                          b->w, b->h);
    float *q = patches(b, f), *d2 = malloc(n * sizeof(float)), *tmp = malloc(ss * sizeof(float));
    int32_t *idx = malloc(n * sizeof(int32_t));
    rd_arena a = {0};
    rd_status st = RD_OK;
    if (!q || !d2 || !tmp || !idx) {
        st = rd_err_set(err, RD_ERR_NOMEM, "knn: out of memory");
        goto out;
    }
    st = rd_arena_init(&a, rd_pool_scratch_bytes(b->c, n), err);
    if (st != RD_OK) goto out;
    st = rd_pool_nearest(b->bank, q, n, idx, d2, NULL, &a, err);
    if (st != RD_OK) goto out;
    for (size_t i = 0; i < n; i++) d2[i] = sqrtf(d2[i]);
    rd_upsample_bilinear_ac(d2, b->h, b->w, map, map_h, map_w);
    rd_gauss_blur(map, map_h, map_w, 4.0f, tmp);
    *score = map[0];
    for (size_t i = 1; i < ss; i++)
        if (map[i] > *score) *score = map[i];
out:
    rd_arena_release(&a);
    free(q);
    free(d2);
    free(tmp);
    free(idx);
    return st;
}
