/* refblob.h — the compact stored form of a class's reference set (issue 13:
 * thousands of classes, each loaded from the database on its first use).
 *
 * Two pieces, both pure computation:
 *   fp16   IEEE binary16 <-> fp32, round to nearest even.  Reference features
 *          are stored as fp16 (rd_feats_serialize_f16 in resad.h): half the
 *          bytes of fp32.  For |x| in the normal range [2^-14, 65504] the
 *          rounding error is at most |x|·2^-11 (half an ulp), below 2^-14 at
 *          most 2^-25 (subnormal spacing / 2).  Uses F16C where the CPU has
 *          it (checked at run time); the portable path gives the same bits.
 *   calib  a reference set's calibration — the per-level mean/sd of the
 *          leave-one-out position scores, the k leave-one-out image scores
 *          and the threshold they give — as a little-endian blob, so a cold
 *          load rebuilds only the pools (no leave-one-out search). */
#ifndef RD_REFBLOB_H
#define RD_REFBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define RD_F16_MAX 65504.0f

uint16_t rd_f16_from_f32(float x);
float rd_f16_to_f32(uint16_t h);
/* n values each way (F16C when available). */
void rd_f16_encode(const float *x, uint16_t *out, size_t n);
void rd_f16_decode(const uint16_t *h, float *out, size_t n);
/* 1 if every value is finite and |x| <= RD_F16_MAX (so fp16 keeps it finite). */
int rd_f16_fits(const float *x, size_t n);
/* x := fp32(fp16(x)) in place: exactly what a stored-and-loaded value becomes. */
void rd_f16_round(float *x, size_t n);
/* Forces the portable path (tests compare both); not thread-safe. */
void rd_f16_force_portable(int on);
/* "f16c" or "portable": what rd_f16_encode/decode use on this CPU. */
const char *rd_f16_kernel(void);

#define RD_CALIB_MAX_SHOTS 64
/* Bump when rd_refset_build's calibration changes: stored calibrations of an
 * older version are then ignored (recomputed). */
#define RD_CALIB_VERSION 1

typedef struct rd_calib {
    int k, nlevels;
    float mu[RD_MAX_LEVELS], sigma[RD_MAX_LEVELS]; /* per level (sigma > 0) */
    float loo[RD_CALIB_MAX_SHOTS];                 /* k leave-one-out image scores */
    float threshold;                               /* the default threshold they give */
} rd_calib;

/* "RDCB", version 1, k, nlevels, threshold, mu[L], sigma[L], loo[k] (u32 LE each). */
rd_status rd_calib_serialize(const rd_calib *c, uint8_t **blob, size_t *len, rd_err *err) RD_WARN_UNUSED;
/* Any bytes are safe: RD_ERR_FORMAT when malformed (wrong size, k outside
 * 2..64, levels outside 1..RD_MAX_LEVELS, non-finite values, sigma <= 0). */
rd_status rd_calib_deserialize(const uint8_t *blob, size_t len, rd_calib *out, rd_err *err) RD_WARN_UNUSED;

#endif
