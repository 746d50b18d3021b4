/* arena.c — bump allocator backing each worker's scratch (see arena.h). */
#include "arena.h"

#include <stdlib.h>

rd_status rd_arena_init(rd_arena *a, size_t cap, rd_err *err)
{
    a->base = NULL;
    a->used = a->peak = 0;
    cap = rd_arena_need(cap ? cap : RD_ARENA_ALIGN);
    a->cap = cap;
    if (posix_memalign((void **)&a->base, RD_ARENA_ALIGN, cap) != 0) {
        a->base = NULL;
        a->cap = 0;
        return rd_err_set(err, RD_ERR_NOMEM, "cannot allocate %zu bytes of scratch", cap);
    }
    return RD_OK;
}

void rd_arena_release(rd_arena *a)
{
    if (!a) return;
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *rd_arena_alloc(rd_arena *a, size_t n)
{
    size_t need = rd_arena_need(n ? n : 1);
    void *p;
    if (need < n || a->cap - a->used < need) return NULL;
    p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void rd_arena_rewind(rd_arena *a, size_t mark)
{
    if (mark <= a->used) a->used = mark;
}
