/* team.c — persistent helper threads with a spin-then-sleep, generation-counted
 * rendezvous and an optional shared core budget (see team.h). */
#include "team.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#ifndef RD_TEAM_SPIN_NS
#define RD_TEAM_SPIN_NS 20000 /* spin this long (20 µs) before sleeping */
#endif

struct rd_cores {
    int n;
    atomic_int busy; /* teams inside a job */
};

struct rd_team {
    int n; /* threads including the caller */
    pthread_t *threads;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen; /* incremented per job */
    atomic_int quit;
    atomic_int pending; /* helpers still working on the current job */
    int sleepers;       /* under mu: helpers waiting on go */
    int waiting;        /* under mu: the caller waits on done */
    rd_team_fn fn;
    void *ctx;
    int ntasks;
    atomic_int next;
    rd_cores *cores;
    int busy; /* marked busy against cores */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spins until ready(t, arg) for at most RD_TEAM_SPIN_NS; 1 = it became ready.
 * Time-bounded, not count-bounded: on a loaded machine a spinning thread takes
 * the core from the very thread it waits for, so the spin must stay short. */
static int spin_until(int (*ready)(rd_team *, unsigned long), rd_team *t, unsigned long arg)
{
    long long end = 0;
    for (int i = 0;; i++) {
        if (ready(t, arg)) return 1;
        if ((i & 63) == 0) {
            long long now = now_ns();
            if (!end) end = now + RD_TEAM_SPIN_NS;
            else if (now > end) return 0;
        }
        cpu_relax();
    }
}

/* a helper's wait: a job after generation `seen`, or quit */
static int new_job(rd_team *t, unsigned long seen) { return atomic_load(&t->gen) != seen || atomic_load(&t->quit); }
/* the caller's wait: every helper done with the job */
static int all_done(rd_team *t, unsigned long unused)
{
    (void)unused;
    return atomic_load(&t->pending) <= 0;
}

static void work(rd_team *t)
{
    int i;
    while ((i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed)) < t->ntasks) t->fn(t->ctx, i);
}

static void *helper(void *arg)
{
    rd_team *t = arg;
    unsigned long seen = 0;
    for (;;) {
        if (!spin_until(new_job, t, seen)) {
            pthread_mutex_lock(&t->mu);
            t->sleepers++;
            while (atomic_load(&t->gen) == seen && !atomic_load(&t->quit)) pthread_cond_wait(&t->go, &t->mu);
            t->sleepers--;
            pthread_mutex_unlock(&t->mu);
        }
        if (atomic_load(&t->quit)) break;
        seen = atomic_load(&t->gen); /* one ahead: the caller waits for pending = 0 before the next */
        work(t);
        if (atomic_fetch_sub(&t->pending, 1) == 1) {
            pthread_mutex_lock(&t->mu);
            if (t->waiting) pthread_cond_signal(&t->done);
            pthread_mutex_unlock(&t->mu);
        }
    }
    return NULL;
}

rd_team *rd_team_new(int nthreads, rd_err *err)
{
    rd_team *t = calloc(1, sizeof *t);
    sigset_t all, old;
    if (!t) goto nomem;
    t->n = nthreads < 1 ? 1 : nthreads;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->go, NULL);
    pthread_cond_init(&t->done, NULL);
    atomic_init(&t->gen, 0);
    atomic_init(&t->quit, 0);
    atomic_init(&t->pending, 0);
    atomic_init(&t->next, 0);
    if (t->n == 1) return t;
    t->threads = calloc((size_t)t->n - 1, sizeof(pthread_t));
    if (!t->threads) goto nomem;
    /* helpers never take signals: the daemon handles them in main */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < t->n - 1; i++) {
        if (pthread_create(&t->threads[i], NULL, helper, t) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            rd_team_free(t);
            rd_err_set(err, RD_ERR_NOMEM, "cannot start helper threads");
            return NULL;
        }
        t->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return t;
nomem:
    rd_team_free(t);
    rd_err_set(err, RD_ERR_NOMEM, "out of memory creating a thread team");
    return NULL;
}

void rd_team_free(rd_team *t)
{
    if (!t) return;
    rd_team_busy(t, 0);
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->quit, 1);
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->started; i++) pthread_join(t->threads[i], NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->go);
    pthread_cond_destroy(&t->done);
    free(t->threads);
    free(t);
}

int rd_team_size(const rd_team *t) { return t ? t->n : 1; }

/* Whether t may use its helpers now: n cores free besides the other busy teams. */
static int team_fits(const rd_team *t)
{
    if (!t->cores) return 1;
    int others = atomic_load(&t->cores->busy) - (t->busy ? 1 : 0);
    return t->cores->n - others >= t->n;
}

void rd_team_run(rd_team *t, rd_team_fn fn, void *ctx, int ntasks)
{
    if (!t || t->started == 0 || ntasks <= 1 || !team_fits(t)) {
        for (int i = 0; i < ntasks; i++) fn(ctx, i);
        return;
    }
    t->fn = fn;
    t->ctx = ctx;
    t->ntasks = ntasks;
    atomic_store(&t->next, 0);
    atomic_store(&t->pending, t->started);
    atomic_fetch_add(&t->gen, 1); /* publishes fn, ctx, ntasks (seq_cst) */
    pthread_mutex_lock(&t->mu);
    if (t->sleepers) pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    work(t);
    if (!spin_until(all_done, t, 0)) {
        pthread_mutex_lock(&t->mu);
        t->waiting = 1;
        while (atomic_load(&t->pending) > 0) pthread_cond_wait(&t->done, &t->mu);
        t->waiting = 0;
        pthread_mutex_unlock(&t->mu);
    }
}

rd_cores *rd_cores_new(int ncores, rd_err *err)
{
    rd_cores *c = calloc(1, sizeof *c);
    if (!c) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->n = ncores < 1 ? 1 : ncores;
    atomic_init(&c->busy, 0);
    return c;
}

void rd_cores_free(rd_cores *c) { free(c); }

void rd_team_share(rd_team *t, rd_cores *c)
{
    if (!t) return;
    rd_team_busy(t, 0);
    t->cores = c;
}

void rd_team_busy(rd_team *t, int busy)
{
    if (!t || !t->cores || !!busy == t->busy) return;
    t->busy = !!busy;
    atomic_fetch_add(&t->cores->busy, busy ? 1 : -1);
}
