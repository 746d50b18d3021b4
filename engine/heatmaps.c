/* heatmaps.c — lazy heatmap rendering and its LRU cache (see heatmaps.h). */
#include "heatmaps.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "heatblob.h"
#include "heatmap.h"
#include "image.h"
#include "jpegenc.h"
#include "resad.h"

#define CACHE_SLOTS 64

typedef struct slot {
    int64_t id;
    int kind;     /* rd_heat_kind */
    int expired;
    uint64_t used; /* LRU clock */
    uint8_t *png; /* NULL = empty */
    size_t len;
} slot;

struct rd_heatcache {
    pthread_mutex_t mu;
    size_t budget, bytes;
    uint64_t clock;
    slot s[CACHE_SLOTS];
};

rd_heatcache *rd_heatcache_new(size_t budget)
{
    rd_heatcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
    return c;
}

void rd_heatcache_free(rd_heatcache *c)
{
    if (!c) return;
    for (int i = 0; i < CACHE_SLOTS; i++) free(c->s[i].png);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void drop(rd_heatcache *c, slot *x)
{
    c->bytes -= x->len;
    free(x->png);
    x->png = NULL;
    x->len = 0;
}

void rd_heatcache_forget(rd_heatcache *c, int64_t id)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (c->s[i].png && c->s[i].id == id) drop(c, &c->s[i]);
    pthread_mutex_unlock(&c->mu);
}

/* A copy of a cached rendering, or 0. */
static int cache_get(rd_heatcache *c, int64_t id, int kind, uint8_t **png, size_t *len, int *expired)
{
    int hit = 0;
    if (!c || !c->budget) return 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CACHE_SLOTS && !hit; i++) {
        slot *x = &c->s[i];
        if (!x->png || x->id != id || x->kind != kind) continue;
        if ((*png = malloc(x->len))) {
            memcpy(*png, x->png, x->len);
            *len = x->len;
            *expired = x->expired;
            x->used = ++c->clock;
            hit = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Keeps a copy, evicting the least recently used until it fits. */
static void cache_put(rd_heatcache *c, int64_t id, int kind, const uint8_t *png, size_t len, int expired)
{
    if (!c || !c->budget || len > c->budget / 4) return;
    uint8_t *copy = malloc(len);
    if (!copy) return;
    memcpy(copy, png, len);
    pthread_mutex_lock(&c->mu);
    slot *victim = NULL;
    for (;;) {
        victim = NULL;
        for (int i = 0; i < CACHE_SLOTS; i++) {
            slot *x = &c->s[i];
            if (x->png && x->id == id && x->kind == kind) drop(c, x); /* a racing renderer's copy */
            if (!x->png) {
                if (!victim || victim->png) victim = x;
            } else if (!victim || (victim->png && x->used < victim->used)) {
                victim = x;
            }
        }
        if (victim->png) drop(c, victim);
        if (c->bytes + len <= c->budget) break;
        /* still over: evict the oldest remaining */
        slot *old = NULL;
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (c->s[i].png && (!old || c->s[i].used < old->used)) old = &c->s[i];
        if (!old) break;
        drop(c, old);
    }
    victim->id = id;
    victim->kind = kind;
    victim->expired = expired;
    victim->png = copy;
    victim->len = len;
    victim->used = ++c->clock;
    c->bytes += len;
    pthread_mutex_unlock(&c->mu);
}

/* img resized to w x h (the model's antialiased bicubic, here an upscale). */
static rd_status upsize(rd_image *img, int w, int h, rd_err *err)
{
    rd_image big = {0};
    rd_arena scratch = {0};
    rd_status st;
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > 1000000000ull)
        return rd_err_set(err, RD_ERR_FORMAT, "stored map has a bad frame size %dx%d", w, h);
    if (!(big.rgb = malloc((size_t)w * (size_t)h * 3))) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    big.w = w;
    big.h = h;
    size_t need = (size_t)w * 3 * (size_t)(img->h + 8) + (size_t)h * 64 * 3 + 4096; /* one horizontal pass + kernels */
    if ((st = rd_arena_init(&scratch, need, err)) == RD_OK && (st = rd_resize_u8(img, w, h, big.rgb, &scratch, err)) == RD_OK) {
        rd_image_release(img);
        *img = big;
        big.rgb = NULL;
    }
    rd_arena_release(&scratch);
    free(big.rgb);
    return st;
}

static int kind_of(const char *k)
{
    if (!strcmp(k, "raw")) return RD_HEAT_RAW;
    if (!strcmp(k, "overlay")) return RD_HEAT_OVERLAY;
    if (!strcmp(k, "mask")) return RD_HEAT_MASK;
    return -1;
}

rd_ecode rd_heatmaps_get(rd_store *s, rd_heatcache *c, int64_t id, const char *kind, uint8_t **png, size_t *len,
                         int *expired, rd_err *err)
{
    int k = kind_of(kind), gone = 0;
    uint8_t *blob = NULL, *jpg = NULL;
    size_t blen = 0, jlen = 0;
    rd_heatblob hb = {0};
    rd_image img = {0};
    rd_png_buf out = {0};
    rd_ecode rc;
    int dummy;
    if (!expired) expired = &dummy;
    *expired = 0;
    *png = NULL;
    *len = 0;
    if (k < 0) {
        rd_err_set(err, RD_ERR_ARG, "no heatmap kind '%s' (overlay, raw, mask)", kind);
        return RD_E_NOTFOUND;
    }
    if (cache_get(c, id, k, png, len, expired)) return RD_E_OK;
    /* a PNG row from before lazy heatmaps */
    rc = rd_store_heatmap(s, id, kind, png, len, err);
    if (rc != RD_E_NOTFOUND) return rc;
    if ((rc = rd_store_heatmap(s, id, "map", &blob, &blen, err)) != RD_E_OK) {
        if (rc == RD_E_NOTFOUND) rd_err_set(err, RD_ERR_ARG, "inspection %lld has no %s heatmap", (long long)id, kind);
        return rc;
    }
    rc = RD_E_INTERNAL;
    if (rd_heatblob_decode(blob, blen, &hb, err) != RD_OK) goto out;
    if (k == RD_HEAT_OVERLAY) {
        rd_ecode ic = rd_store_heatmap(s, id, "image", &jpg, &jlen, err);
        rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
        if (ic == RD_E_OK && rd_image_decode(jpg, jlen, &lim, &img, err) == RD_OK) {
            /* a copy smaller than the frame (a PNG inspected at reduced scale):
             * resized up to the frame's geometry (blurred, aligned) */
            if ((img.w != hb.p.out_w || img.h != hb.p.out_h) && upsize(&img, hb.p.out_w, hb.p.out_h, err) != RD_OK)
                goto out;
        } else if (ic == RD_E_OK || ic == RD_E_NOTFOUND) {
            /* the copy is gone (or unreadable): a neutral frame of the original size */
            size_t n = (size_t)hb.p.out_w * (size_t)hb.p.out_h * 3;
            if (!(img.rgb = malloc(n))) {
                rd_err_set(err, RD_ERR_NOMEM, "out of memory");
                goto out;
            }
            memset(img.rgb, RD_IMAGE_BG, n);
            img.w = hb.p.out_w;
            img.h = hb.p.out_h;
            gone = 1;
        } else {
            rc = ic;
            goto out;
        }
    }
    if (rd_heatmap_render_view((rd_heat_kind)k, hb.map, &hb.view, hb.roi, img.rgb ? &img : NULL, &hb.p, &out, err) !=
        RD_OK)
        goto out;
    cache_put(c, id, k, out.data, out.len, gone);
    *png = out.data;
    *len = out.len;
    *expired = gone;
    out.data = NULL;
    rc = RD_E_OK;
out:
    if (rc == RD_E_INTERNAL) rd_err_prefix(err, "inspection %lld: heatmap", (long long)id);
    rd_png_buf_release(&out);
    rd_image_release(&img);
    rd_heatblob_release(&hb);
    free(blob);
    free(jpg);
    return rc;
}

rd_status rd_heatmaps_encode(const rd_result *res, const rd_image *img, int quality, rd_png_buf *map,
                             rd_png_buf *image, rd_err *err)
{
    rd_heat_params p;
    map->data = image->data = NULL;
    map->len = image->len = 0;
    rd_result_heat_params(res, &p);
    if (img) /* at the frame's displayed full size, whatever scale it was decoded at */
        rd_image_full_size(img, &p.out_w, &p.out_h);
    rd_status st = rd_heatblob_encode(res->map, &res->view, res->roi, &p, &map->data, &map->len, err);
    if (st == RD_OK && quality > 0 && img && (st = rd_jpeg_encode(img, quality, image, err)) != RD_OK)
        rd_png_buf_release(map);
    return st;
}

int rd_heatmaps_keep_upload(const uint8_t *data, size_t len, const rd_image *img)
{
    int fw, fh;
    if (rd_image_sniff(data, len) != RD_IMG_JPEG) return 0;
    if (img->scale_denom > 1) return 1;
    rd_image_full_size(img, &fw, &fh);
    return (uint64_t)len * 8 <= (uint64_t)fw * (uint64_t)fh * RD_HEAT_KEEP_BITS;
}

int rd_heatmaps_keep_parse(const char *t, long *last, long *days)
{
    char word[16];
    long n;
    int used = 0;
    *last = *days = 0;
    if (!strcmp(t, "off")) return 0;
    if (sscanf(t, "last %ld%n", &n, &used) == 1 && !t[used] && n >= 1) {
        *last = n;
        return 0;
    }
    if (sscanf(t, "%ld %15s%n", &n, word, &used) == 2 && !t[used] && n >= 1 &&
        (!strcmp(word, "days") || !strcmp(word, "day"))) {
        *days = n;
        return 0;
    }
    return -1;
}
