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
