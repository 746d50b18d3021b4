/* flow_kern.h — elementwise kernels shared by the flow's inference (flow.c) and
 * training (flow_train.c).  Internal to the flow module; exposed only so the
 * two files share one implementation. */
#ifndef RD_FLOW_KERN_H
#define RD_FLOW_KERN_H

#include <stddef.h>

/* h = max(h + a + b, 0) over n floats (first subnet layer: condition rows + ReLU). */
void rd_flow_k_add2_relu(float *h, const float *a, const float *b, int n);
/* dst += src */
void rd_flow_k_vadd(float *restrict dst, const float *restrict src, size_t n);
/* d = h > 0 ? d : 0 (ReLU backward) */
void rd_flow_k_relu_mask(float *restrict d, const float *restrict h, size_t n);
/* Inference coupling of one row: s = clamp·tanh(as), u2 ← u2·e^s + at; returns Σ s. */
float rd_flow_k_couple(float *u2, const float *as, const float *at, int ca, float clamp);
/* One block's subnet at inference over n rows, fused (AVX-512):
 *   a[i] = w2t'·relu(w1t'·u[i][0..cp) + atab[col(i)] + btab[row(i)]) + b2
 * for rows i of u (stride c) at level positions r0 + i of a map w wide;
 * w1t is cp × hid (W1's passive-channel columns, transposed), w2t hid × na
 * (W2 transposed), a is n × na; hbuf is unused (the kernel's own stack
 * buffers hold 8 rows).  Each row is
 * computed alone in a fixed order, so a row's bits do not depend on n, r0 or
 * how a level is split.  Returns 0 — doing nothing — without AVX-512 or when
 * hid is not a multiple of 16 up to 512 or cp > 128: the caller then runs
 * its GEMMs. */
int rd_flow_k_subnet(const float *u, int c, int cp, int n, size_t r0, int w, const float *atab, const float *btab,
                     const float *w1t, int hid, const float *w2t, const float *b2, int na, float *hbuf, float *a);
/* FrEIA SOFTPLUS global scale g(γ) = 0.1·Softplus_{β=0.5}(γ) (threshold 20), and dg/dγ. */
float rd_flow_k_gscale(float gamma);
float rd_flow_k_gscale_deriv(float gamma);
/* Encodings of coordinates 0..n-1 of one axis: n × (p/2) (sin, cos interleaved). */
void rd_flow_k_posenc_axis(int p, int n, float *out);
/* The same at positions i·scale (scale 1 gives rd_flow_k_posenc_axis bit for bit). */
void rd_flow_k_posenc_axis_scaled(int p, int n, float scale, float *out);
/* At positions i·scale + offset (the SHIFT condition's inference grid). */
void rd_flow_k_posenc_axis_affine(int p, int n, float scale, float offset, float *out);

#endif
