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
