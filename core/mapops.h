/* mapops.h — 2-D float map operations of the scoring path.
 *
 * Bilinear upsampling with align_corners=True (torch.nn.functional.interpolate
 * semantics) and a separable Gaussian blur with scipy.ndimage.gaussian_filter
 * semantics (truncate 4.0 → radius round(4σ); mode "reflect": d c b a | a b c d).
 * Pure functions over caller memory; no allocation. */
#ifndef RD_MAPOPS_H
#define RD_MAPOPS_H

/* src sh×sw → dst dh×dw (dh, dw ≥ 1). */
void rd_upsample_bilinear_ac(const float *src, int sh, int sw, float *dst, int dh, int dw);

/* Number of taps each side for sigma (round(4σ)). */
int rd_gauss_radius(float sigma);
/* In-place blur of an h×w map; tmp must hold h*w floats.  Runs AVX-512
 * where the CPU has it, else 4-wide vectors: the same result either way. */
void rd_gauss_blur(float *map, int h, int w, float sigma, float *tmp);
/* Tests: on = the portable form even where AVX-512 is (not thread-safe). */
void rd_mapops_force_portable(int on);

#endif
