/* flow_kern.c — the elementwise kernels of the flow (see flow_kern.h): AVX-512
 * versions chosen at run time where the CPU has it, plain C otherwise. */
#include "flow_kern.h"

#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RD_FLOW_X86 1
#endif

/* h = max(h + a + b, 0): the first subnet layer's condition terms and ReLU.
 * Branch-free (the signs are random: a branch mispredicts half the time). */
static void add2_relu_scalar(float *restrict h, const float *restrict a, const float *restrict b, int n)
{
    for (int j = 0; j < n; j++) h[j] = fmaxf(h[j] + a[j] + b[j], 0.0f);
}

#ifdef RD_FLOW_X86
__attribute__((target("avx512f"))) static void add2_relu_avx512(float *restrict h, const float *restrict a,
                                                                 const float *restrict b, int n)
{
    const __m512 zero = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(h + j), _mm512_loadu_ps(a + j)), _mm512_loadu_ps(b + j));
        _mm512_storeu_ps(h + j, _mm512_max_ps(t, zero));
    }
    add2_relu_scalar(h + j, a + j, b + j, n - j);
}

/* e^x for |x| ≲ 80: x = n·ln2 + r, e^r by its degree-6 Taylor polynomial on
 * |r| ≤ ln2/2 (relative error < 2e-7), scaled by 2^n with vscalefps. */
__attribute__((target("avx512f"))) static __m512 exp16(__m512 x)
{
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Affine coupling of one row's active half (inference): s = clamp·tanh(a_s),
 * u2 ← u2·e^s + a_t; returns Σ s.  tanh(a) = sign(a)·(1 − 2/(e^{2|a|} + 1)),
 * |a| clamped at 9 where tanh is 1 in float; absolute error ~1e-7. */
__attribute__((target("avx512f"))) static float couple_avx512(float *u2, const float *as, const float *at, int ca,
                                                              float clamp)
{
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f), cl = _mm512_set1_ps(clamp);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < ca; j += 16) {
        const __mmask16 m = ca - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ca - j)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(m, as + j);
        __m512 ab = _mm512_min_ps(_mm512_abs_ps(a), _mm512_set1_ps(9.0f));
        __m512 e = exp16(_mm512_mul_ps(two, ab));
        __m512 th = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
        /* copy the sign of a */
        th = _mm512_castsi512_ps(_mm512_or_epi32(_mm512_castps_si512(th),
                                                 _mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))));
        __m512 sv = _mm512_mul_ps(cl, th);
        sum = _mm512_mask_add_ps(sum, m, sum, sv);
        __m512 u = _mm512_maskz_loadu_ps(m, u2 + j), t = _mm512_maskz_loadu_ps(m, at + j);
        _mm512_mask_storeu_ps(u2 + j, m, _mm512_fmadd_ps(u, exp16(sv), t));
    }
    return _mm512_reduce_add_ps(sum);
}

/* dst += src */
__attribute__((target("avx512f"))) static void vadd_avx512(float *restrict dst, const float *restrict src, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dst + j, _mm512_add_ps(_mm512_loadu_ps(dst + j), _mm512_loadu_ps(src + j)));
    for (; j < n; j++) dst[j] += src[j];
}

/* d = h > 0 ? d : 0 (ReLU backward) */
__attribute__((target("avx512f"))) static void relu_mask_avx512(float *restrict d, const float *restrict h, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(h + j), _mm512_setzero_ps(), _CMP_GT_OQ);
        _mm512_storeu_ps(d + j, _mm512_maskz_mov_ps(m, _mm512_loadu_ps(d + j)));
    }
    for (; j < n; j++) d[j] = h[j] > 0 ? d[j] : 0.0f;
}

/* The fused subnet (rd_flow_k_subnet): 8 rows at a time.  Their passive
 * channels are first transposed into ut (cp × 8), so a broadcast is one load
 * at a constant offset.  Layer 1: for each 16 hidden units, 8 accumulators
 * start at the condition rows and take cp broadcast-FMAs against one w1t
 * vector, then ReLU into hl (8 rows of SUB_HMAX floats, in L1).  Layer 2: per
 * pair of 16-wide output vectors, 8 × 2 accumulators take hid broadcast-FMAs
 * against two w2t vectors.  A short last tile repeats its last row (computed,
 * not stored). */
#define SUB_R 8
#define SUB_HMAX 512 /* largest hid (the shipped model: 256) */
#define SUB_CPMAX 128
__attribute__((target("avx512f"))) static void subnet512(const float *u, int c, int cp, int n, size_t r0, int w,
                                                         const float *atab, const float *btab, const float *w1t,
                                                         int hid, const float *w2t, const float *b2, int na,
                                                         float *a)
{
    const int nv = (na + 15) / 16;
    float ut[SUB_CPMAX * SUB_R] __attribute__((aligned(64)));
    float hl[SUB_R * SUB_HMAX] __attribute__((aligned(64)));
    for (int i0 = 0; i0 < n; i0 += SUB_R) {
        const int rows = n - i0 < SUB_R ? n - i0 : SUB_R;
        const float *ta[SUB_R], *tb[SUB_R];
        for (int r = 0; r < SUB_R; r++) {
            const int i = i0 + (r < rows ? r : rows - 1);
            const size_t pos = r0 + (size_t)i;
            const float *ur = u + (size_t)i * c;
            for (int k = 0; k < cp; k++) ut[k * SUB_R + r] = ur[k];
            ta[r] = atab + (pos % (size_t)w) * hid;
            tb[r] = btab + (pos / (size_t)w) * hid;
        }
        for (int j = 0; j < hid; j += 16) {
            __m512 acc[SUB_R];
            _Pragma("GCC unroll 8") for (int r = 0; r < SUB_R; r++)
                acc[r] = _mm512_add_ps(_mm512_loadu_ps(ta[r] + j), _mm512_loadu_ps(tb[r] + j));
            const float *uk = ut;
            for (int k = 0; k < cp; k++, uk += SUB_R) {
                const __m512 wv = _mm512_loadu_ps(w1t + (size_t)k * hid + j);
                _Pragma("GCC unroll 8") for (int r = 0; r < SUB_R; r++)
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(uk[r]), wv, acc[r]);
            }
            _Pragma("GCC unroll 8") for (int r = 0; r < SUB_R; r++)
                _mm512_store_ps(hl + r * SUB_HMAX + j, _mm512_max_ps(acc[r], _mm512_setzero_ps()));
        }
        for (int v = 0; v < nv; v += 2) {
            const int l0 = na - 16 * v, l1 = na - 16 * (v + 1);
            const __mmask16 m0 = (__mmask16)(l0 >= 16 ? 0xffff : (1u << l0) - 1u);
            const __mmask16 m1 = (__mmask16)(l1 >= 16 ? 0xffff : l1 <= 0 ? 0 : (1u << l1) - 1u);
            /* 16 named accumulators: arrays of them end up on the stack */
            const __m512 bb0 = _mm512_maskz_loadu_ps(m0, b2 + 16 * v), bb1 = _mm512_maskz_loadu_ps(m1, b2 + 16 * v + 16);
            __m512 p0 = bb0, p1 = bb0, p2 = bb0, p3 = bb0, p4 = bb0, p5 = bb0, p6 = bb0, p7 = bb0;
            __m512 q0 = bb1, q1 = bb1, q2 = bb1, q3 = bb1, q4 = bb1, q5 = bb1, q6 = bb1, q7 = bb1;
            const float *wr = w2t + 16 * v, *hp = hl;
            for (int t = 0; t < hid; t++, wr += na, hp++) {
                const __m512 w0 = _mm512_maskz_loadu_ps(m0, wr), w1 = _mm512_maskz_loadu_ps(m1, wr + 16);
#define SUB_ROW(r, P, Q)                                                 \
    do {                                                                 \
        const __m512 hv = _mm512_set1_ps(hp[(r) * SUB_HMAX]);            \
        P = _mm512_fmadd_ps(hv, w0, P);                                  \
        Q = _mm512_fmadd_ps(hv, w1, Q);                                  \
    } while (0)
                SUB_ROW(0, p0, q0);
                SUB_ROW(1, p1, q1);
                SUB_ROW(2, p2, q2);
                SUB_ROW(3, p3, q3);
                SUB_ROW(4, p4, q4);
                SUB_ROW(5, p5, q5);
                SUB_ROW(6, p6, q6);
                SUB_ROW(7, p7, q7);
#undef SUB_ROW
            }
            const __m512 pr[SUB_R] = {p0, p1, p2, p3, p4, p5, p6, p7}, qr[SUB_R] = {q0, q1, q2, q3, q4, q5, q6, q7};
            for (int r = 0; r < rows; r++) {
                float *ar = a + (size_t)(i0 + r) * na + 16 * v;
                _mm512_mask_storeu_ps(ar, m0, pr[r]);
                _mm512_mask_storeu_ps(ar + 16, m1, qr[r]);
            }
        }
    }
}

/* A load and a bit test of libgcc's CPU model (filled before main). */
static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#endif

void rd_flow_k_add2_relu(float *h, const float *a, const float *b, int n)
{
#ifdef RD_FLOW_X86
    if (have_avx512()) {
        add2_relu_avx512(h, a, b, n);
        return;
    }
#endif
    add2_relu_scalar(h, a, b, n);
}

/* torch.nn.Softplus(beta=0.5, threshold=20) scaled by 0.1 (FrEIA SOFTPLUS). */
float rd_flow_k_gscale(float gamma)
{
    if (0.5f * gamma > 20.0f) return 0.1f * gamma;
    return 0.2f * log1pf(expf(0.5f * gamma));
}

float rd_flow_k_gscale_deriv(float gamma)
{
    if (0.5f * gamma > 20.0f) return 0.1f;
    return 0.1f / (1.0f + expf(-0.5f * gamma));
}

void rd_flow_k_posenc_axis(int p, int n, float *out) { rd_flow_k_posenc_axis_scaled(p, n, 1.0f, out); }

void rd_flow_k_posenc_axis_scaled(int p, int n, float scale, float *out)
{
    rd_flow_k_posenc_axis_affine(p, n, scale, 0.0f, out);
}

void rd_flow_k_posenc_axis_affine(int p, int n, float scale, float offset, float *out)
{
    const int d = p / 2;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d / 2; k++) {
            float div = expf((float)(2 * k) * -(logf(10000.0f) / (float)d));
            float a = ((float)i * scale + offset) * div; /* + 0 is exact: offset 0 = the unshifted bits */
            out[(size_t)i * d + 2 * k] = sinf(a);
            out[(size_t)i * d + 2 * k + 1] = cosf(a);
        }
}

void rd_flow_k_vadd(float *restrict dst, const float *restrict src, size_t n)
{
#ifdef RD_FLOW_X86
    if (have_avx512()) {
        vadd_avx512(dst, src, n);
        return;
    }
#endif
    for (size_t j = 0; j < n; j++) dst[j] += src[j];
}

void rd_flow_k_relu_mask(float *restrict d, const float *restrict h, size_t n)
{
#ifdef RD_FLOW_X86
    if (have_avx512()) {
        relu_mask_avx512(d, h, n);
        return;
    }
#endif
    for (size_t j = 0; j < n; j++) d[j] = h[j] > 0 ? d[j] : 0.0f;
}

static float couple_scalar(float *u2, const float *as, const float *at, int ca, float clamp)
{
    float sum = 0;
    for (int j = 0; j < ca; j++) {
        float s = clamp * tanhf(as[j]);
        sum += s;
        u2[j] = u2[j] * expf(s) + at[j];
    }
    return sum;
}

float rd_flow_k_couple(float *u2, const float *as, const float *at, int ca, float clamp)
{
#ifdef RD_FLOW_X86
    if (have_avx512()) return couple_avx512(u2, as, at, ca, clamp);
#endif
    return couple_scalar(u2, as, at, ca, clamp);
}

int rd_flow_k_subnet(const float *u, int c, int cp, int n, size_t r0, int w, const float *atab, const float *btab,
                     const float *w1t, int hid, const float *w2t, const float *b2, int na, float *hbuf, float *a)
{
#ifdef RD_FLOW_X86
    if (n > 0 && hid % 16 == 0 && hid <= SUB_HMAX && cp <= SUB_CPMAX && have_avx512()) {
        (void)hbuf;
        subnet512(u, c, cp, n, r0, w, atab, btab, w1t, hid, w2t, b2, na, a);
        return 1;
    }
#endif
    (void)u, (void)c, (void)cp, (void)n, (void)r0, (void)w, (void)atab, (void)btab, (void)w1t, (void)hid, (void)w2t;
    (void)b2, (void)na, (void)hbuf, (void)a;
    return 0;
}
