/* team.h — a worker's small, persistent team of helper threads.
 *
 * Some inspection stages are not BLAS calls (the fused nearest-neighbour
 * kernel) but are as heavy; a team lets one inspection use every core it was
 * given without creating threads per call.  The calling thread works too: a
 * team of n has n−1 helper threads.  Tasks are handed out through an atomic
 * counter, so uneven tasks balance themselves.  A team belongs to one worker
 * and is not shared.
 *
 * Rendezvous: a helper that finished a job spins briefly (20 µs of clock
 * time, RD_TEAM_SPIN_NS) for the next one before sleeping on a condition
 * variable, and the caller spins the same way for the helpers to finish — a
 * backbone pass is ~60 jobs a few hundred microseconds apart, and a futex
 * wake-up per job costs more than the spin on a virtual machine.  The bound is
 * time, not polls: on a loaded machine a spinning thread takes the core from
 * the thread it waits for.
 *
 * Cores shared by several workers (rd_cores): each team of n may use its
 * helpers only while n cores are free, counting one core for every worker
 * inside a job (rd_team_busy).  With 2 workers × 2 threads on 2 cores, one
 * inspection at a time runs on both cores (lowest latency) and two at a time
 * run one core each (no oversubscription, no rendezvous cost).  The check is
 * made per job, so a worker adapts between stages. */
#ifndef RD_TEAM_H
#define RD_TEAM_H

#include "status.h"

typedef struct rd_team rd_team;
typedef struct rd_cores rd_cores;
typedef void (*rd_team_fn)(void *ctx, int task);

/* nthreads ≥ 1 (1 = no helper threads, run() is a plain loop). */
rd_team *rd_team_new(int nthreads, rd_err *err);
void rd_team_free(rd_team *t);
int rd_team_size(const rd_team *t); /* 1 for NULL */

/* Runs fn(ctx, i) for i in [0, ntasks) across the team; returns when all are
 * done.  t may be NULL (serial). */
void rd_team_run(rd_team *t, rd_team_fn fn, void *ctx, int ntasks);

/* A budget of ncores cores (≥ 1) shared by the teams attached to it; it must
 * outlive them.  rd_team_share attaches t (before its first run; NULL
 * detaches).  rd_team_busy(t, 1 / 0) marks t's owner entering / leaving a job:
 * only a team marked busy counts against the budget. */
rd_cores *rd_cores_new(int ncores, rd_err *err);
void rd_cores_free(rd_cores *c);
void rd_team_share(rd_team *t, rd_cores *c);
void rd_team_busy(rd_team *t, int busy);

#endif
