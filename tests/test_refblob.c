/* test_refblob.c — a class's reference set in its stored form (core/refblob.h,
 * rd_feats_serialize_f16 and rd_refset_restore in core/resad.h; issue 13):
 *  - fp16: the F16C and portable conversions give the same bits (every one of
 *    the 65536 halves decoded, 2^20 floats over many magnitudes encoded, ties
 *    included); the rounding error is at most |x|·2^-11 in the normal range
 *    and 2^-25 below it; 65520 and up become inf, NaN stays NaN;
 *  - features: serialize_f16 → deserialize gives exactly rd_feats_round_f16
 *    of the features (bit-exact), re-serializing gives the same bytes, the
 *    blob is about half the fp32 one, an fp32 (version 2) blob still loads,
 *    every truncation of an fp16 blob is refused;
 *  - calibration: serialize → deserialize is bit-exact; malformed blobs
 *    (every truncation, k or levels out of range, non-finite, sigma <= 0) fail;
 *  - a set restored from the stored calibration scores test features exactly
 *    like the set built with the leave-one-out search (score, threshold, map
 *    bit for bit), with the shipped model at 224. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "refblob.h"
#include "resad.h"
#include "testutil.h"

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static void test_f16(void)
{
    static uint16_t h[65536];
    static float a[65536], b[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    rd_f16_force_portable(0);
    rd_f16_decode(h, a, 65536);
    rd_f16_force_portable(1);
    rd_f16_decode(h, b, 65536);
    int diff = 0, back = 0;
    for (int i = 0; i < 65536; i++) {
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan ? !(isnan(a[i]) && isnan(b[i])) : bits(a[i]) != bits(b[i])) diff++;
        if (!nan && rd_f16_from_f32(b[i]) != (uint16_t)i) back++;
    }
    RD_CHECK(diff == 0, "%d halves decode differently (kernel %s)", diff, "f16c vs portable");
    RD_CHECK(back == 0, "%d halves do not survive half -> float -> half", back);

    /* floats over every magnitude (random bit patterns of finite floats) + ties */
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    uint16_t *p = malloc(N * sizeof *p), *q = malloc(N * sizeof *q);
    unsigned s = 12345;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        uint32_t u = s;
        if (i % 4 == 0) u = (s & 0x80000000u) | ((112u + s % 32) << 23) | (s & 0x7fe000u) | 0x1000u; /* exact tie */
        else if (i % 4 == 1) u = (s & 0x807fffffu) | ((100u + (s >> 8) % 50) << 23);                /* 2^-27..2^22 */
        if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu; /* keep it finite */
        x[i] = from_bits(u);
    }
    rd_f16_force_portable(0);
    rd_f16_encode(x, p, N);
    rd_f16_force_portable(1);
    rd_f16_encode(x, q, N);
    rd_f16_force_portable(0);
    int ediff = 0, bound = 0, over = 0;
    for (int i = 0; i < N; i++) {
        if (p[i] != q[i]) ediff++;
        float ax = fabsf(x[i]), r = rd_f16_to_f32(q[i]);
        if (ax >= 65520.0f) {
            over += !isinf(r);
            continue;
        }
        double err = fabs((double)r - x[i]);
        double lim = ax >= 0x1p-14f ? ax * 0x1p-11 : 0x1p-25;
        if (!(err <= lim)) bound++;
    }
    RD_CHECK(ediff == 0, "%d of %d floats encode differently (f16c vs portable)", ediff, N);
    RD_CHECK(bound == 0, "%d floats rounded beyond the stated bound", bound);
    RD_CHECK(over == 0, "%d floats >= 65520 not inf", over);
    RD_CHECK(rd_f16_from_f32(65504.0f) == 0x7bff && rd_f16_from_f32(65519.0f) == 0x7bff &&
                 rd_f16_from_f32(65520.0f) == 0x7c00 && rd_f16_from_f32(-INFINITY) == 0xfc00,
             "range edges");
    RD_CHECK(isnan(rd_f16_to_f32(rd_f16_from_f32(NAN))), "NaN stays NaN");
    RD_CHECK(rd_f16_from_f32(0x1p-25f) == 0 && rd_f16_from_f32(0x1.8p-25f) == 1 && rd_f16_from_f32(0x1p-24f) == 1,
             "subnormal rounding to nearest even");
    float big[3] = {1.0f, 70000.0f, 2.0f};
    RD_CHECK(!rd_f16_fits(big, 3) && rd_f16_fits(big, 1), "rd_f16_fits");
    printf("fp16: %s and portable agree on 65536 halves and %d floats; error <= |x|*2^-11 (normal), 2^-25 (below)\n",
           "f16c", N);
    free(x);
    free(p);
    free(q);
}

static void test_calib_blob(void)
{
    rd_calib c = {.k = 5, .nlevels = 3, .threshold = 2.5f}, d;
    uint8_t *b = NULL;
    size_t len = 0;
    for (int l = 0; l < 3; l++) c.mu[l] = 0.1f * (float)l - 0.3f, c.sigma[l] = 1.0f / (3.0f + (float)l);
    for (int i = 0; i < 5; i++) c.loo[i] = 1.0f + 0.1234567f * (float)i;
    RD_CHECK(rd_calib_serialize(&c, &b, &len, NULL) == RD_OK && len == 4 * (5 + 6 + 5), "serialize (%zu bytes)", len);
    RD_CHECK(rd_calib_deserialize(b, len, &d, NULL) == RD_OK, "deserialize");
    RD_CHECK(d.k == 5 && d.nlevels == 3 && bits(d.threshold) == bits(c.threshold) &&
                 !memcmp(d.mu, c.mu, 3 * sizeof(float)) && !memcmp(d.sigma, c.sigma, 3 * sizeof(float)) &&
                 !memcmp(d.loo, c.loo, 5 * sizeof(float)),
             "calibration round trip is bit-exact");
    int bad = 0;
    for (size_t n = 0; n < len; n++) bad += rd_calib_deserialize(b, n, &d, NULL) == RD_OK;
    RD_CHECK(bad == 0, "%d truncations accepted", bad);
    const struct { size_t off; uint32_t v; } flips[] = {
        {0, 0}, {4, 2}, {8, 1}, {8, 65}, {12, 0}, {12, RD_MAX_LEVELS + 1}, {16, 0x7fc00000u}, /* NaN threshold */
        {20 + 12, 0}, /* sigma[0] = 0 */ {20 + 12, 0xbf800000u}, /* sigma[0] = -1 */ {20 + 24, 0x7f800000u}};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        uint8_t t[64];
        memcpy(t, b, len);
        for (int k = 0; k < 4; k++) t[flips[i].off + k] = (uint8_t)(flips[i].v >> (8 * k));
        RD_CHECK(rd_calib_deserialize(t, len, &d, NULL) != RD_OK, "malformed field at %zu accepted", flips[i].off);
    }
    c.k = 1;
    uint8_t *b2 = NULL;
    RD_CHECK(rd_calib_serialize(&c, &b2, &len, NULL) != RD_OK && !b2, "a 1-shot calibration is refused");
    free(b);
}

/* A textured 256² frame (a few sinusoids + noise), different per seed. */
static void make_image(rd_image *img, unsigned seed, int defect)
{
    float r[6], *nz;
    img->w = img->h = 256;
    img->rgb = malloc(256 * 256 * 3);
    nz = malloc(256 * 256 * sizeof *nz);
    rd_fill_uniform(r, 6, seed, 0.0f, 1.0f);
    rd_fill_uniform(nz, 256 * 256, seed + 99, -12.0f, 12.0f);
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++)
            for (int ch = 0; ch < 3; ch++) {
                float v = 128 + 50 * sinf(0.2f * (float)x + r[ch]) * cosf(0.15f * (float)y + r[3 + ch]) +
                          nz[y * 256 + x];
                if (defect && x > 100 && x < 140 && y > 110 && y < 130) v = 255 - v * 0.3f;
                img->rgb[((size_t)y * 256 + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(nz);
}

static size_t feats_count(const rd_feats *f, int l) { return (size_t)f->h[l] * f->w[l] * f->c[l]; }

static void test_refset(void)
{
    rd_model_opts mo;
    rd_err err = {0};
    rd_model_opts_default(&mo);
    mo.backbone_path = "models/mobilenet_v2.safetensors";
    mo.model_path = "models/resad_mobilenet_v2.safetensors";
    rd_model *m = rd_model_load(&mo, &err);
    if (!m) {
        RD_CHECK(0, "model: %s", err.msg);
        return;
    }
    rd_worker *w = rd_worker_new(m, &err);
    RD_CHECK(w != NULL, "worker: %s", err.msg);
    if (!w) return;
    rd_feats *f[5] = {0}, *g[5] = {0};
    for (int i = 0; i < 5; i++) {
        rd_image img = {0};
        make_image(&img, 7u + (unsigned)i, i == 4);
        RD_CHECK(rd_extract(m, w, &img, &f[i], NULL, &err) == RD_OK, "extract %d: %s", i, err.msg);
        rd_image_release(&img);
    }
    /* features: stored form */
    size_t total16 = 0, total32 = 0, vals = 0;
    double maxrel = 0;
    for (int i = 0; i < 4 && f[i]; i++) {
        uint8_t *b16 = NULL, *b32 = NULL, *again = NULL;
        size_t n16 = 0, n32 = 0, nagain = 0;
        rd_feats *back = NULL, *back32 = NULL;
        RD_CHECK(rd_feats_serialize_f16(f[i], &b16, &n16, &err) == RD_OK && rd_feats_blob_f16(b16, n16), "f16 blob");
        RD_CHECK(rd_feats_serialize(f[i], &b32, &n32, &err) == RD_OK && !rd_feats_blob_f16(b32, n32), "f32 blob");
        RD_CHECK(rd_feats_deserialize(m, b16, n16, &back, &err) == RD_OK, "load f16: %s", err.msg);
        RD_CHECK(rd_feats_deserialize(m, b32, n32, &back32, &err) == RD_OK, "load f32 (version 2): %s", err.msg);
        total16 += n16;
        total32 += n32;
        int trunc = 0;
        for (size_t n = 0; n < n16; n += 1 + n / 7) {
            rd_feats *t = NULL;
            trunc += rd_feats_deserialize(m, b16, n, &t, NULL) == RD_OK;
            rd_feats_free(t);
        }
        RD_CHECK(trunc == 0, "%d truncated fp16 blobs accepted", trunc);
        g[i] = back; /* the stored form: what a cold load gets */
        for (int l = 0; back && back32 && l < f[i]->nlevels; l++) {
            size_t n = feats_count(f[i], l);
            RD_CHECK(!memcmp(back32->data[l], f[i]->data[l], n * sizeof(float)), "fp32 blob is exact");
            for (size_t k = 0; k < n; k++) {
                float x = f[i]->data[l][k], d = fabsf(back->data[l][k] - x);
                if (fabsf(x) >= 0x1p-14f && d / fabsf(x) > maxrel) maxrel = d / fabsf(x);
                RD_CHECK(d <= (fabsf(x) >= 0x1p-14f ? fabsf(x) * 0x1p-11f : 0x1p-25f), "level %d value %zu", l, k);
            }
            vals += n;
        }
        rd_feats_round_f16(f[i]);
        for (int l = 0; back && l < f[i]->nlevels; l++)
            RD_CHECK(!memcmp(back->data[l], f[i]->data[l], feats_count(f[i], l) * sizeof(float)),
                     "stored fp16 == rd_feats_round_f16, bit for bit (level %d)", l);
        RD_CHECK(rd_feats_serialize_f16(back, &again, &nagain, &err) == RD_OK && nagain == n16 &&
                     !memcmp(again, b16, n16),
                 "re-serializing the loaded features gives the same bytes");
        rd_feats_free(back32);
        free(b16);
        free(b32);
        free(again);
    }
    printf("features: %zu values, fp16 blob %.1f KiB vs fp32 %.1f KiB per reference (ratio %.3f), max relative "
           "rounding %.2e (bound %.2e)\n",
           vals, total16 / 4 / 1024.0, total32 / 4 / 1024.0, (double)total16 / (double)total32, maxrel, 0x1p-11);
    RD_CHECK((double)total16 / (double)total32 < 0.51, "fp16 blob about half");

    /* built (leave-one-out) vs restored (stored calibration): same scores */
    rd_refset *built = rd_refset_build(m, w, f, 4, &err);
    RD_CHECK(built != NULL, "build: %s", err.msg);
    if (built && g[0] && g[1] && g[2] && g[3]) {
        rd_calib cal, cal2;
        uint8_t *cb = NULL;
        size_t cl = 0;
        rd_refset_get_calib(built, &cal);
        RD_CHECK(rd_calib_serialize(&cal, &cb, &cl, &err) == RD_OK && rd_calib_deserialize(cb, cl, &cal2, &err) == RD_OK,
                 "calibration blob");
        rd_refset *rest = rd_refset_restore(m, g, 4, &cal2, NULL, &err);
        RD_CHECK(rest != NULL, "restore: %s", err.msg);
        rd_calib bad = cal2;
        bad.k = 3;
        RD_CHECK(!rd_refset_restore(m, g, 4, &bad, NULL, &err), "a calibration of other shots is refused");
        if (rest) {
            RD_CHECK(bits(rd_refset_threshold(rest)) == bits(rd_refset_threshold(built)), "threshold %g vs %g",
                     rd_refset_threshold(rest), rd_refset_threshold(built));
            RD_CHECK(rd_refset_bytes(rest) == rd_refset_bytes(built) && rd_refset_bytes(rest) > 0, "bytes");
            RD_CHECK(!rd_refset_in_use(rest), "not in use");
            rd_refset_ref(rest);
            RD_CHECK(rd_refset_in_use(rest), "in use while a second reference is held");
            rd_refset_unref(rest);
            for (int t = 0; t < 2; t++) {
                rd_feats *q = t ? f[4] : g[0];
                rd_result ra = {0}, rb = {0};
                RD_CHECK(rd_inspect_feats(m, w, built, q, NAN, &ra, &err) == RD_OK, "inspect built: %s", err.msg);
                RD_CHECK(rd_inspect_feats(m, w, rest, q, NAN, &rb, &err) == RD_OK, "inspect restored: %s", err.msg);
                RD_CHECK(bits(ra.score) == bits(rb.score) && ra.map_w == rb.map_w && ra.map_h == rb.map_h &&
                             !memcmp(ra.map, rb.map, (size_t)ra.map_w * ra.map_h * sizeof(float)),
                         "image %d: restored %g vs built %g", t, rb.score, ra.score);
                printf("%s: score %.6f (built) %.6f (restored), threshold %.4f; set %.2f MiB in memory\n",
                       t ? "defect" : "reference", ra.score, rb.score, rd_refset_threshold(rest),
                       rd_refset_bytes(rest) / 1048576.0);
                rd_result_release(&ra);
                rd_result_release(&rb);
            }
            rd_refset_unref(rest);
        }
        free(cb);
    }
    rd_refset_unref(built);
    for (int i = 0; i < 5; i++) {
        rd_feats_free(f[i]);
        rd_feats_free(g[i]);
    }
    rd_worker_free(w);
    rd_model_free(m);
}

int main(void)
{
    test_f16();
    test_calib_blob();
    test_refset();
    return rd_test_done("test_refblob");
}
