/* test_team.c — the worker team's rendezvous and its shared core budget.
 *
 * Rendezvous: thousands of jobs back to back and with pauses (so both the
 * spinning and the sleeping hand-over run), each task counted exactly once.
 * Budget: two teams of 2 on 2 shared cores — while the other is busy a team
 * runs every task on the calling thread; while it is idle the helper takes
 * part; a team not attached to a budget always may.  (The helper-takes-part
 * checks give it 64 ms of work to join: scheduling latency must stay below
 * that.) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "team.h"
#include "testutil.h"

typedef struct {
    atomic_long sum;
    pthread_t caller;
    atomic_int foreign; /* tasks run by another thread than the caller */
    int sleep_us;
} job;

static void task(void *ctx, int i)
{
    job *j = ctx;
    atomic_fetch_add(&j->sum, i + 1);
    if (!pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->foreign, 1);
    if (j->sleep_us) {
        struct timespec ts = {0, j->sleep_us * 1000L};
        nanosleep(&ts, NULL);
    }
}

static int run(rd_team *t, int ntasks, int sleep_us)
{
    job j = {.caller = pthread_self(), .sleep_us = sleep_us};
    atomic_init(&j.sum, 0);
    atomic_init(&j.foreign, 0);
    rd_team_run(t, task, &j, ntasks);
    long want = (long)ntasks * (ntasks + 1) / 2;
    RD_CHECK(atomic_load(&j.sum) == want, "sum %ld, want %ld (%d tasks)", atomic_load(&j.sum), want, ntasks);
    return atomic_load(&j.foreign);
}

int main(void)
{
    rd_err err = {0};
    rd_team *t = rd_team_new(3, &err);
    RD_CHECK(t && rd_team_size(t) == 3, "team: %s", err.msg);
    if (!t) return rd_test_done("test_team");
    for (int k = 0; k < 20000; k++) run(t, 1 + k % 37, 0); /* back to back: the spinning hand-over */
    for (int k = 0; k < 30; k++) {                          /* helpers asleep between jobs */
        struct timespec ts = {0, 3000000L};
        nanosleep(&ts, NULL);
        run(t, 5 + k, 0);
    }
    rd_team_free(t);

    rd_cores *c = rd_cores_new(2, &err);
    rd_team *a = rd_team_new(2, &err), *b = rd_team_new(2, &err);
    RD_CHECK(c && a && b, "shared teams: %s", err.msg);
    if (!c || !a || !b) return rd_test_done("test_team");
    RD_CHECK(run(a, 64, 1000) > 0, "an unattached team uses its helper");
    rd_team_share(a, c);
    rd_team_share(b, c);
    rd_team_busy(a, 1);
    RD_CHECK(run(a, 64, 1000) > 0, "alone on the cores: the helper takes part");
    rd_team_busy(b, 1);
    RD_CHECK(run(a, 64, 1000) == 0, "another worker busy: every task on the caller");
    RD_CHECK(run(b, 64, 1000) == 0, "the other way round too");
    rd_team_busy(b, 1); /* idempotent */
    rd_team_busy(b, 0);
    RD_CHECK(run(a, 64, 1000) > 0, "the other worker done: the helper again");
    rd_team_busy(b, 0); /* idempotent: the count must not go negative */
    rd_team_busy(a, 0);
    rd_team_busy(a, 1);
    RD_CHECK(run(a, 64, 1000) > 0, "count kept exact through repeated marks");
    rd_team_busy(b, 1);
    rd_team_free(a); /* frees while marked busy: leaves the budget */
    RD_CHECK(run(b, 64, 1000) > 0, "a freed team no longer counts");
    rd_team_free(b);
    rd_cores_free(c);
    return rd_test_done("test_team");
}
