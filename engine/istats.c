/* istats.c — inspection histograms (see istats.h). */
#include "istats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const rd_istats_stage_names[RD_ISTATS_STAGES] = {"queue", "preprocess", "backbone", "nn",
                                                              "score", "heatmap",    "inference", "total"};
const double rd_istats_lat_le[RD_ISTATS_LAT_BUCKETS] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
                                                        10000, 30000};
const double rd_istats_score_le[RD_ISTATS_SCORE_BUCKETS] = {0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 50};

struct rd_istats {
    pthread_mutex_t mu;
    rd_istats_snap s;
};

rd_istats *rd_istats_new(void)
{
    rd_istats *s = calloc(1, sizeof *s);
    if (s) pthread_mutex_init(&s->mu, NULL);
    return s;
}

void rd_istats_free(rd_istats *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void add(rd_hist *h, const double *le, int nb, double v)
{
    for (int i = 0; i < nb; i++)
        if (v <= le[i]) h->b[i]++;
    h->n++;
    h->sum += v;
}

void rd_istats_record(rd_istats *s, const char *cls, double score, const double ms[RD_ISTATS_STAGES])
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < RD_ISTATS_STAGES; i++) add(&s->s.stage[i], rd_istats_lat_le, RD_ISTATS_LAT_BUCKETS, ms[i]);
    int k;
    for (k = 0; k < s->s.ncls; k++)
        if (!strcmp(s->s.cls[k], cls)) break;
    if (k == s->s.ncls) {
        if (k == RD_ISTATS_CLASSES) { /* the last slot: every further class */
            for (k = 0; k < s->s.ncls && strcmp(s->s.cls[k], "_other"); k++) {
            }
            if (k == s->s.ncls) snprintf(s->s.cls[k], sizeof s->s.cls[k], "_other"), s->s.ncls++;
        } else {
            snprintf(s->s.cls[k], sizeof s->s.cls[k], "%s", cls);
            s->s.ncls++;
        }
    }
    add(&s->s.score[k], rd_istats_score_le, RD_ISTATS_SCORE_BUCKETS, score);
    pthread_mutex_unlock(&s->mu);
}

void rd_istats_snapshot(rd_istats *s, rd_istats_snap *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    *out = s->s;
    pthread_mutex_unlock(&s->mu);
}
