/* team.c — persistent helper threads with a generation-counted rendezvous (see team.h). */
#include "team.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

struct rd_team {
    int n; /* threads including the caller */
    pthread_t *threads;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen; /* incremented per job */
    int quit;
    int busy;          /* helpers still working on the current job */
    rd_team_fn fn;
    void *ctx;
    int ntasks;
    atomic_int next;
};

static void work(rd_team *t)
{
    int i;
    while ((i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed)) < t->ntasks) t->fn(t->ctx, i);
}

static void *helper(void *arg)
{
    rd_team *t = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->quit && t->gen == seen) pthread_cond_wait(&t->go, &t->mu);
        if (t->quit) break;
        seen = t->gen;
        pthread_mutex_unlock(&t->mu);
        work(t);
        pthread_mutex_lock(&t->mu);
        if (--t->busy == 0) pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->mu);
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
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
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

void rd_team_run(rd_team *t, rd_team_fn fn, void *ctx, int ntasks)
{
    if (!t || t->n == 1 || ntasks <= 1) {
        for (int i = 0; i < ntasks; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->fn = fn;
    t->ctx = ctx;
    t->ntasks = ntasks;
    atomic_store(&t->next, 0);
    t->busy = t->started;
    t->gen++;
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    work(t);
    pthread_mutex_lock(&t->mu);
    while (t->busy > 0) pthread_cond_wait(&t->done, &t->mu);
    pthread_mutex_unlock(&t->mu);
}
