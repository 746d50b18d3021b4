/* arena.h — per-worker scratch memory.
 *
 * A worker owns one arena sized once at model load (rd_graph_plan and friends
 * report how many bytes they need); inference takes aligned slices from it with
 * rd_arena_alloc and gives everything back with rd_arena_reset.  Nothing in the
 * hot path calls malloc.  An arena is not thread-safe: one per worker. */
#ifndef RD_ARENA_H
#define RD_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RD_ARENA_ALIGN 64

typedef struct rd_arena {
    uint8_t *base;
    size_t cap;  /* bytes */
    size_t used; /* bytes handed out since the last reset */
    size_t peak; /* high-water mark, for sizing */
} rd_arena;

/* Allocates cap bytes of backing store.  Caller releases with rd_arena_release. */
rd_status rd_arena_init(rd_arena *a, size_t cap, rd_err *err) RD_WARN_UNUSED;
void rd_arena_release(rd_arena *a);

/* Returns RD_ARENA_ALIGN-aligned memory for n bytes, or NULL when the arena is
 * exhausted (a sizing bug: callers turn it into RD_ERR_INTERNAL). */
void *rd_arena_alloc(rd_arena *a, size_t n);
static inline float *rd_arena_floats(rd_arena *a, size_t n)
{
    return (n > ((size_t)-1) / sizeof(float)) ? NULL : (float *)rd_arena_alloc(a, n * sizeof(float));
}

/* Bytes an allocation of n bytes consumes (n rounded up to the alignment). */
static inline size_t rd_arena_need(size_t n)
{
    return (n + RD_ARENA_ALIGN - 1) / RD_ARENA_ALIGN * RD_ARENA_ALIGN;
}

/* Marks let a stage free its temporaries: m = rd_arena_mark(a); ...; rd_arena_rewind(a, m). */
static inline size_t rd_arena_mark(const rd_arena *a) { return a->used; }
void rd_arena_rewind(rd_arena *a, size_t mark);
static inline void rd_arena_reset(rd_arena *a) { rd_arena_rewind(a, 0); }

#endif
