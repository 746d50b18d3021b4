/* rng.h — a small deterministic random source for model initialisation.
 *
 * splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, good enough to draw
 * initial weights and Haar rotations reproducibly from a seed on every
 * platform (no libc rand, no global state).  Header-only: static inline. */
#ifndef RD_RNG_H
#define RD_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct rd_rng {
    uint64_t s;
} rd_rng;

static inline void rd_rng_seed(rd_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

static inline uint64_t rd_rng_u64(rd_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rd_rng_uniform(rd_rng *r) { return (double)(rd_rng_u64(r) >> 11) * 0x1.0p-53; }

/* Standard normal (Box–Muller, one value per call). */
static inline double rd_rng_normal(rd_rng *r)
{
    double u1 = rd_rng_uniform(r), u2 = rd_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
