/* refblob.c — fp16 conversion and the stored calibration blob (see refblob.h). */
#include "refblob.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define CALIB_MAGIC 0x42434452u /* "RDCB" little-endian */
#define CALIB_VERSION 1u

static int force_portable;

void rd_f16_force_portable(int on) { force_portable = on; }

#if defined(__x86_64__)
/* CPUID leaf 1: F16C (ecx bit 29), AVX (28), OSXSAVE (27), and the OS saves
 * the YMM state (XCR0 bits 1-2).  Read by CPUID because clang 14's
 * __builtin_cpu_supports does not know "f16c". */
static int cpu_f16c(void)
{
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if ((c & (7u << 27)) != (7u << 27)) return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u;
}
#endif

static int have_f16c(void)
{
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) cached = cpu_f16c();
    return cached && !force_portable;
#else
    return 0;
#endif
}

const char *rd_f16_kernel(void) { return have_f16c() ? "f16c" : "portable"; }

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t rd_f16_from_f32(float x)
{
    uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    uint16_t h;
    if (a >= 0x47800000u) {                  /* >= 65536 (or inf/NaN): inf, NaN stays a quiet NaN */
        h = a > 0x7f800000u ? (uint16_t)(0x7e00u | ((a >> 13) & 0x3ffu)) : 0x7c00u;
    } else if (a < 0x38800000u) {            /* below 2^-14: subnormal or zero */
        /* Adding 0.5 moves the 10 subnormal mantissa bits to the bottom of
         * the sum's mantissa, rounded to nearest even by the FPU itself. */
        const uint32_t magic = 126u << 23;   /* 0.5 */
        h = (uint16_t)(f32_bits(bits_f32(a) + bits_f32(magic)) - magic);
    } else {                                 /* normal: rebias, round to nearest even on bit 13 */
        uint32_t odd = (a >> 13) & 1u;
        a += 0xc8000000u + 0xfffu + odd;     /* (15 − 127) << 23, plus the rounding bias */
        h = (uint16_t)(a >> 13);             /* a carry into exponent 31 is inf: correct */
    }
    return (uint16_t)(h | sign);
}

float rd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return bits_f32(sign | f32_bits((float)m * 0x1p-24f)); /* zero or subnormal: exact */
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) static size_t encode_f16c(const float *x, uint16_t *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}

__attribute__((target("avx,f16c"))) static size_t decode_f16c(const uint16_t *h, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    return i;
}
#endif

void rd_f16_encode(const float *x, uint16_t *out, size_t n)
{
    size_t i = 0;
#if defined(__x86_64__)
    if (have_f16c()) i = encode_f16c(x, out, n);
#endif
    for (; i < n; i++) out[i] = rd_f16_from_f32(x[i]);
}

void rd_f16_decode(const uint16_t *h, float *out, size_t n)
{
    size_t i = 0;
#if defined(__x86_64__)
    if (have_f16c()) i = decode_f16c(h, out, n);
#endif
    for (; i < n; i++) out[i] = rd_f16_to_f32(h[i]);
}

int rd_f16_fits(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(x[i]) <= RD_F16_MAX)) return 0; /* NaN fails too */
    return 1;
}

void rd_f16_round(float *x, size_t n)
{
    uint16_t buf[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        rd_f16_encode(x + i, buf, m);
        rd_f16_decode(buf, x + i, m);
    }
}

/* ---- calibration blob ---- */
static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t calib_len(int k, int nlevels) { return 4 * (5 + 2 * (size_t)nlevels + (size_t)k); }

rd_status rd_calib_serialize(const rd_calib *c, uint8_t **blob, size_t *len, rd_err *err)
{
    uint8_t *b, *p;
    *blob = NULL;
    *len = 0;
    if (c->k < 2 || c->k > RD_CALIB_MAX_SHOTS || c->nlevels < 1 || c->nlevels > RD_MAX_LEVELS)
        return rd_err_set(err, RD_ERR_ARG, "calibration of %d shots, %d levels cannot be stored", c->k, c->nlevels);
    if (!(b = malloc(calib_len(c->k, c->nlevels))))
        return rd_err_set(err, RD_ERR_NOMEM, "out of memory serializing a calibration");
    put_u32(b, CALIB_MAGIC);
    put_u32(b + 4, CALIB_VERSION);
    put_u32(b + 8, (uint32_t)c->k);
    put_u32(b + 12, (uint32_t)c->nlevels);
    put_u32(b + 16, f32_bits(c->threshold));
    p = b + 20;
    for (int l = 0; l < c->nlevels; l++, p += 4) put_u32(p, f32_bits(c->mu[l]));
    for (int l = 0; l < c->nlevels; l++, p += 4) put_u32(p, f32_bits(c->sigma[l]));
    for (int i = 0; i < c->k; i++, p += 4) put_u32(p, f32_bits(c->loo[i]));
    *blob = b;
    *len = calib_len(c->k, c->nlevels);
    return RD_OK;
}

rd_status rd_calib_deserialize(const uint8_t *blob, size_t len, rd_calib *out, rd_err *err)
{
    rd_calib c;
    const uint8_t *p;
    uint32_t k, nl;
    memset(&c, 0, sizeof c);
    if (!blob || len < 20 || get_u32(blob) != CALIB_MAGIC || get_u32(blob + 4) != CALIB_VERSION)
        return rd_err_set(err, RD_ERR_FORMAT, "stored calibration: bad header");
    k = get_u32(blob + 8);
    nl = get_u32(blob + 12);
    if (k < 2 || k > RD_CALIB_MAX_SHOTS || nl < 1 || nl > RD_MAX_LEVELS)
        return rd_err_set(err, RD_ERR_FORMAT, "stored calibration: %u shots, %u levels", k, nl);
    if (len != calib_len((int)k, (int)nl))
        return rd_err_set(err, RD_ERR_FORMAT, "stored calibration: %zu bytes, expected %zu", len,
                          calib_len((int)k, (int)nl));
    c.k = (int)k;
    c.nlevels = (int)nl;
    c.threshold = bits_f32(get_u32(blob + 16));
    p = blob + 20;
    for (int l = 0; l < c.nlevels; l++, p += 4) c.mu[l] = bits_f32(get_u32(p));
    for (int l = 0; l < c.nlevels; l++, p += 4) c.sigma[l] = bits_f32(get_u32(p));
    for (int i = 0; i < c.k; i++, p += 4) c.loo[i] = bits_f32(get_u32(p));
    int ok = isfinite(c.threshold);
    for (int l = 0; l < c.nlevels; l++) ok = ok && isfinite(c.mu[l]) && isfinite(c.sigma[l]) && c.sigma[l] > 0;
    for (int i = 0; i < c.k; i++) ok = ok && isfinite(c.loo[i]);
    if (!ok) return rd_err_set(err, RD_ERR_FORMAT, "stored calibration: non-finite value or sigma <= 0");
    *out = c;
    return RD_OK;
}
