/* team.h — a worker's small, persistent team of helper threads.
 *
 * Some inspection stages are not BLAS calls (the fused nearest-neighbour
 * kernel) but are as heavy; a team lets one inspection use every core it was
 * given without creating threads per call.  The calling thread works too: a
 * team of n has n−1 helper threads.  Tasks are handed out through an atomic
 * counter, so uneven tasks balance themselves.  A team belongs to one worker
 * and is not shared. */
#ifndef RD_TEAM_H
#define RD_TEAM_H

#include "status.h"

typedef struct rd_team rd_team;
typedef void (*rd_team_fn)(void *ctx, int task);

/* nthreads ≥ 1 (1 = no helper threads, run() is a plain loop). */
rd_team *rd_team_new(int nthreads, rd_err *err);
void rd_team_free(rd_team *t);
int rd_team_size(const rd_team *t); /* 1 for NULL */

/* Runs fn(ctx, i) for i in [0, ntasks) across the team; returns when all are
 * done.  t may be NULL (serial). */
void rd_team_run(rd_team *t, rd_team_fn fn, void *ctx, int ntasks);

#endif
