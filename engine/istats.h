/* istats.h — inspection histograms for /metrics: latency per pipeline stage
 * (milliseconds, fixed buckets) and image scores per class (score units,
 * fixed buckets; at most RD_ISTATS_CLASSES classes, then "_other").
 * Thread-safe; recording is a few additions under a mutex. */
#ifndef RD_ISTATS_H
#define RD_ISTATS_H

#define RD_ISTATS_STAGES 8  /* queue preprocess backbone nn score heatmap inference total */
#define RD_ISTATS_LAT_BUCKETS 14
#define RD_ISTATS_SCORE_BUCKETS 14
#define RD_ISTATS_CLASSES 64

extern const char *const rd_istats_stage_names[RD_ISTATS_STAGES];
extern const double rd_istats_lat_le[RD_ISTATS_LAT_BUCKETS];     /* ms, upper bounds */
extern const double rd_istats_score_le[RD_ISTATS_SCORE_BUCKETS]; /* score units */

typedef struct rd_hist {
    unsigned long b[RD_ISTATS_LAT_BUCKETS > RD_ISTATS_SCORE_BUCKETS ? RD_ISTATS_LAT_BUCKETS : RD_ISTATS_SCORE_BUCKETS];
    unsigned long n; /* = the +Inf bucket */
    double sum;
} rd_hist;

typedef struct rd_istats_snap {
    rd_hist stage[RD_ISTATS_STAGES];
    char cls[RD_ISTATS_CLASSES + 1][72];
    rd_hist score[RD_ISTATS_CLASSES + 1];
    int ncls;
} rd_istats_snap;

typedef struct rd_istats rd_istats;
rd_istats *rd_istats_new(void);
void rd_istats_free(rd_istats *s);
/* ms[i] for stage i (rd_istats_stage_names order). */
void rd_istats_record(rd_istats *s, const char *cls, double score, const double ms[RD_ISTATS_STAGES]);
void rd_istats_snapshot(rd_istats *s, rd_istats_snap *out);

#endif
