/* eval.c — `resad eval`: few-shot evaluation on MVTec AD / VisA-layout datasets.
 *
 * For each class, every test image's backbone features are extracted once;
 * then for each shot count k and seed, k references are drawn from
 * train/good (seeded, reproducible), each scorer builds its reference state
 * (ResAD refset or the knn memory bank) and scores all test features.  Pixel
 * metrics are over the entire frame at the masks' own geometry: each map is
 * projected from the working grid onto the frame (rd_eval_map_to_frame);
 * frame pixels the pipeline did not inspect (outside a centre crop, an ROI,
 * padding) are kept and scored as the lowest inspected value, and the
 * inspected fraction is reported per class.  Image metrics use the
 * pipeline's whole-frame image score.  Output: a table
 * per class and the mean ± std over seeds on stdout, a progress line on
 * stderr, and with --json a machine-readable file. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "dataset.h"
#include "defaults.h"
#include "eval.h"
#include "knn.h"
#include "metrics.h"
#include "resad.h"
#include "simline.h"

enum { SC_RESAD, SC_RESID, SC_KNN, SC_COUNT };
#define RD_EVAL_MAX_VARIANTS 3 /* --calib-variants: extra learned-scorer runs on the same features */
static const char *const scorer_names[SC_COUNT] = {"resad", "residual-norm", "knn"};

enum { M_IMG_AUROC, M_PIX_AUROC, M_PRO, M_IMG_F1, M_PIX_F1, M_PIX_AP, M_COUNT };
static const char *const metric_keys[M_COUNT] = {"image_auroc", "pixel_auroc", "pro",
                                                  "image_f1_max", "pixel_f1_max", "pixel_ap"};
static const char *const metric_short[M_COUNT] = {"I-AUROC", "P-AUROC", "PRO", "I-F1", "P-F1", "P-AP"};

typedef struct eval_opts {
    const char *data, *classes, *json_out, *backbone, *dump;
    int shots[8], nshots;
    int seeds;
    int scorers[SC_COUNT + RD_EVAL_MAX_VARIANTS], nscorers; /* scorer runs: kind per entry */
    int variant[SC_COUNT + RD_EVAL_MAX_VARIANTS];          /* 0: the base models; v: calibration variant v */
    rd_score_calib vcalib[RD_EVAL_MAX_VARIANTS + 1];       /* --calib-variants (index 1..) */
    float valpha[RD_EVAL_MAX_VARIANTS + 1];
    int nvariants;
    char names[SC_COUNT + RD_EVAL_MAX_VARIANTS][64];       /* each entry's scorer name */
    int max_test;
    int pixel_max; /* 0: pixel metrics at the masks' geometry; else its long side reduced to ≤ this */
    rd_model_opts mo;
    const char *model; /* learned model: adds the "resad" scorer */
} eval_opts;

double rd_eval_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void eval_usage(FILE *f)
{
    fputs("usage: resad eval --data DIR [--classes A,B|known|unseen] [--shots 2,4,8] [--seeds N]\n"
          "                  [--scorer resad|residual-norm|knn|all] [--model FILE|none]\n"
          "                  [--backbone FILE] [--json OUT] [--max-test N] [--size S]\n"
          "                  [--topk F] [--threads N] [--dump DIR] [--pixel-max N]\n"
          "                  [--calib global|position[:A]|neighbour[:A]|edge[:A]] [--calib-smooth C]\n"
          "                  [--calib-variants V1,V2,...] [--input-pad P] [--sigma S]\n"
          "\n"
          "Few-shot evaluation: for each class and seed, k references are drawn from\n"
          "train/good and every test image is scored; prints image/pixel AUROC, PRO,\n"
          "F1-max and pixel AP per class and their mean ± std over seeds.\n"
          "DIR is an MVTec AD folder (CLASS/train/good, CLASS/test/..., CLASS/ground_truth/...),\n"
          "a VisA folder (split_csv/1cls.csv), or a dataset from tools/dataset/build.py\n"
          "(--classes unseen takes its evaluation classes from DIR/split.json).\n"
          "Scorers: resad (the learned model: the shipped default, or --model FILE from\n"
          "`resad train`), residual-norm and knn (baselines); all = every one of them.\n"
          "--model none (or a --backbone/--size other than the default) leaves the\n"
          "learned model out.  --topk F: image score = mean of the top fraction F of the\n"
          "map instead of its max.\n"
          "Pixel metrics are over the whole frame at the masks' geometry; pixels the\n"
          "pipeline did not inspect count as the map's lowest inspected value, and the\n"
          "inspected share is printed.  --pixel-max N evaluates pixels on the masks'\n"
          "geometry reduced by an integer factor to a long side <= N (memory on large\n"
          "frames, e.g. VisA).  --dump DIR writes each run's image scores and\n"
          "whole-frame maps (DIR/CLASS.SCORER.kK.sSEED.{json,maps.f32,gt.u8}).\n"
          "--calib: how level maps are calibrated against the references (core/score.h):\n"
          "global (default), position (per-position statistics of the references'\n"
          "leave-one-out maps, blurred by --calib-smooth C level cells, default 1),\n"
          "neighbour (each position discounted by the leave-one-out score of the\n"
          "reference feature it matched) or edge (statistics per ring of distance to the\n"
          "frame's edge, the outer quarter of each level; inner rings pooled);\n"
          "A in [0, 1] weighs it against global (default 1).\n"
          "--calib-variants: up to 3 more runs of the learned scorer with those\n"
          "calibrations, on the same features and reference draws (scorer \"resad+MODE:A\").\n"
          "--sigma S: the anomaly map's Gaussian blur, in working-grid pixels (default 4).\n"
          "--input-pad P: mirror P pixels (a multiple of the backbone's stride, 16) around\n"
          "every working image before the backbone and crop them off its levels, so border\n"
          "features see the surface continued instead of zero padding (default: the\n"
          "model file's resadd.input_pad, 0 without).\n"
          "After each table: image AUROC of defects whose mask centroid is within 24 px of\n"
          "the frame border vs central ones, each against all goods.\n"
          "--simulate-line N,N,... [--refs R] [--fpr RATE]: a line that learns from its\n"
          "operators instead (cli/simline.c): R references (default 4), then the first N\n"
          "good test images confirmed and joining the pool; AUROC and recall at the loo\n"
          "and fpr:RATE (default 0.01) thresholds by N (resad eval --simulate-line 0 --help).\n"
          "Defaults: every class, --shots 4, --seeds 1, --scorer = the shipped model's\n"
          "(resad; residual-norm without a model).\n",
          f);
}

static int parse_list(const char *s, int *v, int max)
{
    int n = 0;
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long x = strtol(t, &end, 10);
        if (*end || x < 1 || x > 64 || n == max) return -1;
        v[n++] = (int)x;
    }
    return n;
}

/* splitmix64 for reproducible reference draws */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rd_eval_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

/* Border vs central defects: a defect image is "border" when the centroid of
 * its mask lies within RD_EVAL_BORDER_PX frame pixels (at the mask's own
 * geometry) of the nearest frame edge, else "central"; defects without a mask
 * are in neither group.  Each group's image AUROC is against all of the
 * class's good images. */
#define RD_EVAL_BORDER_PX 24.0
enum { G_GOOD, G_BORDER, G_CENTRAL, G_NOMASK };

typedef struct class_result {
    double m[SC_COUNT + RD_EVAL_MAX_VARIANTS][8][M_COUNT][16]; /* scorer entry, shot index, metric, seed */
    double inspected;                   /* mean fraction of each test frame's pixels inspected */
    double bc[SC_COUNT + RD_EVAL_MAX_VARIANTS][8][2][16]; /* image AUROC of border [0] / central [1] defects vs all goods */
    int n_good, n_border, n_central;
} class_result;

/* Distance in pixels from the centroid of mask pixels (channel 0 > 127) of a
 * w×h RGB mask to the nearest frame edge; -1 for an empty mask. */
static double mask_border_dist(const uint8_t *rgb, int w, int h)
{
    double sx = 0, sy = 0;
    size_t n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (rgb[((size_t)y * w + x) * 3] > 127) {
                sx += x + 0.5;
                sy += y + 0.5;
                n++;
            }
    if (!n) return -1;
    const double cx = sx / (double)n, cy = sy / (double)n;
    return fmin(fmin(cx, w - cx), fmin(cy, h - cy));
}

/* Image AUROC of the images in group g against the good ones (NaN if either is empty). */
static rd_status group_auroc(const float *scores, const uint8_t *grp, int n, int g, double *auroc, rd_err *err)
{
    rd_metrics_acc *acc = NULL;
    rd_metrics_result r;
    rd_status st = rd_metrics_acc_new(1, &acc, err);
    for (int i = 0; st == RD_OK && i < n; i++)
        if (grp[i] == G_GOOD || grp[i] == g) st = rd_metrics_image_add(acc, scores[i], grp[i] == g, err);
    if (st == RD_OK) st = rd_metrics_compute(acc, &r, err);
    rd_metrics_acc_free(acc);
    *auroc = st == RD_OK ? r.image_auroc : NAN;
    return st;
}

static double mean_of(const double *v, int n, double *sd)
{
    double m = 0, s = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    *sd = n > 1 ? sqrt(s / (n - 1)) : 0;
    return m;
}

/* Border vs central table of one scorer and shot count (see RD_EVAL_BORDER_PX):
 * per class the counts and the mean ± std over seeds of each group's AUROC;
 * "pooled" weighs each class by its (defect, good) pairs, i.e. the share of
 * within-class pairs ranked right, per seed, then mean ± std over seeds. */
static json_t *border_report(const class_result *cr, const rd_dataset *ds, int sc, int si, int seeds)
{
    json_t *j = json_object(), *per = json_object(), *pooled = json_object();
    static const char *const gname[2] = {"border", "central"};
    int tot[2] = {0, 0}, totg = 0;
    printf("\n-- border vs central defects (mask centroid within %.0f px of the frame edge or not), image AUROC "
           "against all goods\n%-20s %6s %8s %9s %15s %15s\n",
           RD_EVAL_BORDER_PX, "class", "goods", "border", "central", "border", "central");
    for (int ci = 0; ci < ds->nclasses; ci++) {
        const class_result *c = &cr[ci];
        json_t *cj = json_object();
        printf("%-20s %6d %8d %9d", ds->classes[ci].name, c->n_good, c->n_border, c->n_central);
        json_object_set_new(cj, "n_good", json_integer(c->n_good));
        for (int b = 0; b < 2; b++) {
            double sd, mu = mean_of(c->bc[sc][si][b], seeds, &sd);
            char key[64];
            if (isnan(mu)) printf(" %15s", "-");
            else printf("   %5.1f ± %4.1f ", 100 * mu, 100 * sd);
            snprintf(key, sizeof key, "n_%s", gname[b]);
            json_object_set_new(cj, key, json_integer(b ? c->n_central : c->n_border));
            snprintf(key, sizeof key, "%s_image_auroc", gname[b]);
            json_object_set_new(cj, key, isnan(mu) ? json_null() : json_real(mu));
            snprintf(key, sizeof key, "%s_image_auroc_std", gname[b]);
            json_object_set_new(cj, key, isnan(mu) ? json_null() : json_real(sd));
        }
        printf("\n");
        json_object_set_new(per, ds->classes[ci].name, cj);
        tot[0] += c->n_border, tot[1] += c->n_central, totg += c->n_good;
    }
    printf("%-20s %6d %8d %9d", "pooled", totg, tot[0], tot[1]);
    json_object_set_new(pooled, "n_good", json_integer(totg));
    for (int b = 0; b < 2; b++) {
        double per_seed[16], sd;
        int ok = 1;
        for (int s = 0; s < seeds; s++) {
            double num = 0, den = 0;
            for (int ci = 0; ci < ds->nclasses; ci++) {
                const double pairs = (double)(b ? cr[ci].n_central : cr[ci].n_border) * cr[ci].n_good;
                const double a = cr[ci].bc[sc][si][b][s];
                if (pairs > 0 && !isnan(a)) num += a * pairs, den += pairs;
            }
            per_seed[s] = den > 0 ? num / den : NAN;
            ok = ok && den > 0;
        }
        double mu = ok ? mean_of(per_seed, seeds, &sd) : NAN;
        char key[64];
        if (isnan(mu)) printf(" %15s", "-");
        else printf("   %5.1f ± %4.1f ", 100 * mu, 100 * sd);
        snprintf(key, sizeof key, "n_%s", gname[b]);
        json_object_set_new(pooled, key, json_integer(tot[b]));
        snprintf(key, sizeof key, "%s_image_auroc", gname[b]);
        json_object_set_new(pooled, key, isnan(mu) ? json_null() : json_real(mu));
        snprintf(key, sizeof key, "%s_image_auroc_std", gname[b]);
        json_object_set_new(pooled, key, isnan(mu) ? json_null() : json_real(sd));
    }
    printf("\n");
    json_object_set_new(j, "radius_px", json_real(RD_EVAL_BORDER_PX));
    json_object_set_new(j, "classes", per);
    json_object_set_new(j, "pooled", pooled);
    return j;
}

/* The working grid of f's maps and where it lies in the frame: the whole
 * frame (geometry.h's view) once the pipeline inspects it, else the S×S centre
 * crop of torchvision's Resize + CenterCrop. */
static void grid_of(const rd_feats *f, int S, rd_eval_grid *g)
{
#ifdef RD_GEOMETRY_H
    const rd_view *v = &f->view;
    (void)S;
    g->map_w = f->geo.work_w;
    g->map_h = f->geo.work_h;
    g->src_x = v->src_x, g->src_y = v->src_y, g->src_w = v->src_w, g->src_h = v->src_h;
    g->dst_x = v->dst_x, g->dst_y = v->dst_y, g->dst_w = v->dst_w, g->dst_h = v->dst_h;
#else
    const rd_crop *c = &f->crop;
    g->map_w = g->map_h = S;
    g->src_x = c->x / f->img_w, g->src_y = c->y / f->img_h, g->src_w = c->w / f->img_w, g->src_h = c->h / f->img_h;
    g->dst_x = g->dst_y = 0, g->dst_w = g->dst_h = S;
#endif
}

/* --dump: one run's image scores and whole-frame maps for checking the
 * metrics outside (tests/test_eval.py recomputes them with sklearn):
 * DIR/CLASS.SCORER.kK.sSEED.json (scores, labels, per-image w/h, inspected
 * fraction, metrics) + .maps.f32 and .gt.u8 (concatenated, row-major). */
static rd_status dump_run(const char *dir, const char *cls, const char *scorer, int k, int seed, int n,
                          const float *scores, const uint8_t *labels, const int *fw, const int *fh,
                          const double *insp, const double *bdist, const float *maps, const uint8_t *gt, size_t total,
                          const double *mv, rd_err *err)
{
    char base[4096], path[4200];
    snprintf(base, sizeof base, "%s/%s.%s.k%d.s%d", dir, cls, scorer, k, seed);
    json_t *j = json_object(), *js = json_array(), *jl = json_array(), *jw = json_array(), *jh = json_array(),
           *ji = json_array(), *jm = json_object(), *jb = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(js, json_real(scores[i]));
        json_array_append_new(jl, json_integer(labels[i]));
        json_array_append_new(jw, json_integer(fw[i]));
        json_array_append_new(jh, json_integer(fh[i]));
        json_array_append_new(ji, json_real(insp[i]));
        json_array_append_new(jb, json_real(bdist[i]));
    }
    for (int mi = 0; mi < M_COUNT; mi++) json_object_set_new(jm, metric_keys[mi], json_real(mv[mi]));
    json_object_set_new(j, "scores", js);
    json_object_set_new(j, "labels", jl);
    json_object_set_new(j, "w", jw);
    json_object_set_new(j, "h", jh);
    json_object_set_new(j, "inspected", ji);
    json_object_set_new(j, "defect_border_px", jb); /* mask centroid to the nearest edge; -1: good / no mask */
    json_object_set_new(j, "metrics", jm);
    snprintf(path, sizeof path, "%s.json", base);
    int bad = json_dump_file(j, path, JSON_REAL_PRECISION(9)) != 0;
    json_decref(j);
    snprintf(path, sizeof path, "%s.maps.f32", base);
    FILE *f = bad ? NULL : fopen(path, "wb");
    bad = !f || fwrite(maps, sizeof(float), total, f) != total;
    if (f && fclose(f) != 0) bad = 1;
    snprintf(path, sizeof path, "%s.gt.u8", base);
    f = bad ? NULL : fopen(path, "wb");
    bad = bad || !f || fwrite(gt, 1, total, f) != total;
    if (f && fclose(f) != 0) bad = 1;
    return bad ? rd_err_set(err, RD_ERR_IO, "--dump: cannot write %s", path) : RD_OK;
}

static rd_status eval_class(const eval_opts *o, const rd_model *m, rd_worker *w, rd_model *const *mlv,
                            rd_worker *const *wlv, const rd_ds_class *c, class_result *cr, int ci, int nclasses,
                            double t_start, rd_err *err)
{
    const rd_model_info *in = rd_model_get_info(m);
    const int S = in->size;
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    /* images decoded at reduced scale where much larger than the working size */
    const rd_decode_opts dopt = {S, RD_ALPHA_COMPOSITE, 0};
    int nt = c->ntest < o->max_test || o->max_test <= 0 ? c->ntest : o->max_test;
    rd_feats **tf = calloc((size_t)nt, sizeof *tf);
    rd_feats **trf = calloc((size_t)c->ntrain, sizeof *trf);
    /* whole-frame geometry of each test image: its mask's, else its own (displayed, full scale) */
    int *fw = calloc((size_t)nt, sizeof(int)), *fh = calloc((size_t)nt, sizeof(int));
    size_t *off = calloc((size_t)nt + 1, sizeof(size_t));
    double *insp = calloc((size_t)nt, sizeof(double));
    double *bdist = malloc((size_t)nt * sizeof(double));
    uint8_t *grp = malloc((size_t)nt);
    uint8_t *gt = NULL;
    uint8_t *labels = malloc((size_t)nt);
    float *maps = NULL, *gmap = NULL;
    size_t gmax = 0;
    float *iscores = malloc((size_t)nt * sizeof(float));
    rd_status st = RD_OK;
    if (!tf || !trf || !fw || !fh || !off || !insp || !bdist || !grp || !labels || !iscores) goto nomem;
    for (int i = 0; i < nt; i++) {
        rd_image img = {0}, mk = {0};
        const rd_ds_item *it = &c->test[i];
        st = rd_image_load_opts(it->image, &lim, &dopt, &img, err);
        if (st == RD_OK) st = rd_extract(m, w, &img, &tf[i], NULL, err);
        rd_image_full_size(&img, &fw[i], &fh[i]);
        rd_image_release(&img);
        if (st != RD_OK) goto out;
        labels[i] = (uint8_t)it->label;
        grp[i] = it->label ? G_NOMASK : G_GOOD;
        bdist[i] = -1;
        rd_eval_grid g;
        grid_of(tf[i], S, &g);
        if ((size_t)g.map_w * g.map_h > gmax) gmax = (size_t)g.map_w * g.map_h;
        if (it->label && it->mask) {
            st = rd_image_load(it->mask, &lim, &mk, err);
            if (st != RD_OK) goto out;
            fw[i] = mk.w, fh[i] = mk.h;
            bdist[i] = mask_border_dist(mk.rgb, mk.w, mk.h);
            if (bdist[i] >= 0) grp[i] = bdist[i] <= RD_EVAL_BORDER_PX ? G_BORDER : G_CENTRAL;
        }
        cr->n_good += grp[i] == G_GOOD;
        cr->n_border += grp[i] == G_BORDER;
        cr->n_central += grp[i] == G_CENTRAL;
        const int mw = fw[i], mh = fh[i]; /* the mask's (or image's) own geometry */
        if (o->pixel_max > 0 && (mw > o->pixel_max || mh > o->pixel_max)) {
            const int f = ((mw > mh ? mw : mh) + o->pixel_max - 1) / o->pixel_max;
            fw[i] = (mw + f - 1) / f, fh[i] = (mh + f - 1) / f;
        }
        off[i + 1] = off[i] + (size_t)fw[i] * fh[i];
        uint8_t *ng = realloc(gt, off[i + 1]);
        if (!ng) {
            rd_image_release(&mk);
            goto nomem;
        }
        gt = ng;
        if (mk.rgb) { /* nearest at each evaluated pixel's centre (identity at the mask's own size) */
            for (int y = 0; y < fh[i]; y++) {
                const size_t sy = (size_t)((y + 0.5) * mh / fh[i]);
                for (int x = 0; x < fw[i]; x++) {
                    const size_t sx = (size_t)((x + 0.5) * mw / fw[i]);
                    gt[off[i] + (size_t)y * fw[i] + x] = mk.rgb[(sy * (size_t)mw + sx) * 3] > 127;
                }
            }
            rd_image_release(&mk);
        } else {
            /* a defect without a mask counts as fully anomalous; normals as clean */
            memset(gt + off[i], it->label ? 1 : 0, off[i + 1] - off[i]);
        }
        if (isatty(2) || i % 16 == 0)
            fprintf(stderr, "\reval: class %d/%d %s: features %d/%d  (%.0f s)   ", ci + 1, nclasses, c->name, i + 1,
                    nt, rd_eval_now_s() - t_start);
    }
    maps = malloc(off[nt] * sizeof(float) + 1);
    gmap = malloc(gmax * sizeof(float) + 1);
    if (!maps || !gmap) goto nomem;
    for (int si = 0; si < o->nshots; si++) {
        int k = o->shots[si];
        if (k > c->ntrain) {
            st = rd_err_set(err, RD_ERR_ARG, "%s: %d shots but only %d train/good images", c->name, k, c->ntrain);
            goto out;
        }
        for (int seed = 0; seed < o->seeds; seed++) {
            int perm[4096];
            rd_feats *refs[64];
            uint64_t rs = rd_eval_hash_str(c->name) ^ ((uint64_t)seed * 0x100000001b3ull) ^ (uint64_t)k;
            int n = c->ntrain < 4096 ? c->ntrain : 4096;
            for (int i = 0; i < n; i++) perm[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(mix(&rs) % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            for (int r = 0; r < k; r++) {
                int idx = perm[r];
                if (!trf[idx]) {
                    rd_image img = {0};
                    st = rd_image_load_opts(c->train[idx], &lim, &dopt, &img, err);
                    if (st == RD_OK) st = rd_extract(m, w, &img, &trf[idx], NULL, err);
                    rd_image_release(&img);
                    if (st != RD_OK) goto out;
                }
                refs[r] = trf[idx];
            }
            for (int sci = 0; sci < o->nscorers; sci++) {
                int sc = o->scorers[sci];
                rd_refset *rset = NULL;
                rd_knn *bank = NULL;
                const rd_model *sm = sc == SC_RESAD ? mlv[o->variant[sci]] : m;
                rd_worker *sw = sc == SC_RESAD ? wlv[o->variant[sci]] : w;
                if (sc == SC_KNN) bank = rd_knn_new(m, refs, k, err);
                else rset = rd_refset_build(sm, sw, refs, k, err);
                if (!rset && !bank) {
                    st = err->code;
                    goto out;
                }
                double insp_sum = 0;
                for (int i = 0; i < nt && st == RD_OK; i++) {
                    rd_eval_grid g;
                    grid_of(tf[i], S, &g);
                    if (sc != SC_KNN) {
                        rd_result res;
                        st = rd_inspect_feats(sm, sw, rset, tf[i], NAN, &res, err);
                        if (st == RD_OK) {
                            insp[i] = rd_eval_map_to_frame(res.map, &g, fw[i], fh[i], maps + off[i]);
                            iscores[i] = res.score;
                            rd_result_release(&res);
                        }
                    } else {
                        st = rd_knn_score(m, bank, tf[i], gmap, g.map_w, g.map_h, &iscores[i], err);
                        if (st == RD_OK) insp[i] = rd_eval_map_to_frame(gmap, &g, fw[i], fh[i], maps + off[i]);
                    }
                    insp_sum += insp[i];
                }
                rd_refset_unref(rset);
                rd_knn_free(bank);
                if (st != RD_OK) goto out;
                double mv[M_COUNT];
                st = rd_eval_metrics(iscores, labels, maps, gt, nt, fh, fw, mv, err);
                if (st == RD_OK && o->dump)
                    st = dump_run(o->dump, c->name, o->names[sci], k, seed, nt, iscores, labels, fw, fh, insp, bdist,
                                  maps, gt, off[nt], mv, err);
                for (int b = 0; b < 2 && st == RD_OK; b++)
                    st = group_auroc(iscores, grp, nt, b ? G_CENTRAL : G_BORDER, &cr->bc[sci][si][b][seed], err);
                if (st != RD_OK) goto out;
                for (int mi = 0; mi < M_COUNT; mi++) cr->m[sci][si][mi][seed] = mv[mi];
                cr->inspected = insp_sum / nt;
                fprintf(stderr, "\reval: class %d/%d %s: %s k=%d seed %d: image AUROC %.3f  (%.0f s)      ", ci + 1,
                        nclasses, c->name, o->names[sci], k, seed, mv[M_IMG_AUROC], rd_eval_now_s() - t_start);
            }
        }
    }
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory evaluating %s", c->name);
out:
    if (tf)
        for (int i = 0; i < nt; i++) rd_feats_free(tf[i]);
    if (trf)
        for (int i = 0; i < c->ntrain; i++) rd_feats_free(trf[i]);
    free(tf);
    free(trf);
    free(fw);
    free(fh);
    free(off);
    free(insp);
    free(bdist);
    free(grp);
    free(gt);
    free(labels);
    free(maps);
    free(gmap);
    free(iscores);
    return st;
}

int rd_cli_eval(int argc, char **argv)
{
    eval_opts o;
    rd_err err = {0};
    memset(&o, 0, sizeof o);
    rd_model_opts_default(&o.mo);
    o.mo.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o.shots[0] = 4;
    o.nshots = 1;
    o.seeds = 1;
    const char *scorer = NULL; /* NULL: the model's own */
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--simulate-line")) return rd_cli_simline(argc, argv); /* cli/simline.c */
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "resad eval: %s needs a value (see resad eval --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data")) o.data = v;
        else if (!strcmp(a, "--classes")) o.classes = v;
        else if (!strcmp(a, "--json")) o.json_out = v;
        else if (!strcmp(a, "--dump")) o.dump = v;
        else if (!strcmp(a, "--backbone")) o.mo.backbone_path = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--shots")) {
            if ((o.nshots = parse_list(v, o.shots, 8)) <= 0) {
                fprintf(stderr, "resad eval: --shots takes up to 8 numbers from 1 to 64, e.g. 2,4,8\n");
                return 2;
            }
        } else if (!strcmp(a, "--seeds")) {
            if (rd_arg_int(v, 1, 16, &o.seeds)) {
                fprintf(stderr, "resad eval: --seeds is 1 to 16\n");
                return 2;
            }
        } else if (!strcmp(a, "--max-test")) {
            if (rd_arg_int(v, 0, 1000000, &o.max_test)) {
                fprintf(stderr, "resad eval: --max-test is 0 (all) to 1000000 images\n");
                return 2;
            }
        } else if (!strcmp(a, "--pixel-max")) {
            if (rd_arg_int(v, 16, 65536, &o.pixel_max)) {
                fprintf(stderr, "resad eval: --pixel-max is a side of 16 to 65536 pixels\n");
                return 2;
            }
        } else if (!strcmp(a, "--size")) {
            if (rd_arg_int(v, 32, RD_GEO_MAX_SIDE, &o.mo.size)) {
                fprintf(stderr, "resad eval: --size is 32 to %d pixels\n", RD_GEO_MAX_SIDE);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if (rd_arg_int(v, 1, 256, &o.mo.threads)) {
                fprintf(stderr, "resad eval: --threads is 1 to 256\n");
                return 2;
            }
        } else if (!strcmp(a, "--topk")) {
            if (rd_arg_float(v, 0, 1, &o.mo.topk_frac)) {
                fprintf(stderr, "resad eval: --topk is a fraction in [0, 1]\n");
                return 2;
            }
        } else if (!strcmp(a, "--calib")) {
            if (rd_score_calib_parse(v, &o.mo.calib, &o.mo.calib_alpha)) {
                fprintf(stderr, "resad eval: --calib is global, position[:ALPHA], neighbour[:ALPHA] or edge[:ALPHA], ALPHA in [0, 1]\n");
                return 2;
            }
        } else if (!strcmp(a, "--calib-variants")) {
            char buf[256], *save = NULL;
            snprintf(buf, sizeof buf, "%s", v);
            o.nvariants = 0;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o.nvariants == RD_EVAL_MAX_VARIANTS ||
                    rd_score_calib_parse(t, &o.vcalib[o.nvariants + 1], &o.valpha[o.nvariants + 1])) {
                    fprintf(stderr, "resad eval: --calib-variants takes up to %d of global, position[:ALPHA], "
                                    "neighbour[:ALPHA], edge[:ALPHA]\n", RD_EVAL_MAX_VARIANTS);
                    return 2;
                }
                o.nvariants++;
            }
        } else if (!strcmp(a, "--sigma")) {
            if (rd_arg_float(v, 0, 64, &o.mo.sigma)) {
                fprintf(stderr, "resad eval: --sigma is 0 to 64 grid pixels\n");
                return 2;
            }
        } else if (!strcmp(a, "--input-pad")) {
            if (rd_arg_int(v, 0, RD_MAX_INPUT_PAD, &o.mo.input_pad)) {
                fprintf(stderr, "resad eval: --input-pad is 0 to %d pixels (a multiple of the backbone's stride)\n",
                        RD_MAX_INPUT_PAD);
                return 2;
            }
        } else if (!strcmp(a, "--calib-smooth")) {
            if (rd_arg_float(v, 0, 16, &o.mo.calib_smooth)) {
                fprintf(stderr, "resad eval: --calib-smooth is 0 to 16 level cells\n");
                return 2;
            }
        } else if (!strcmp(a, "--scorer")) {
            if (strcmp(v, "all") && strcmp(v, "resad") && strcmp(v, "residual-norm") && strcmp(v, "knn")) {
                fprintf(stderr, "resad eval: --scorer is resad, residual-norm, knn or all\n");
                return 2;
            }
            scorer = v;
        } else {
            fprintf(stderr, "resad eval: unknown option '%s' (see resad eval --help)\n", a);
            return 2;
        }
    }
    if (!o.data) {
        fprintf(stderr, "resad eval: --data DIR is required (see resad eval --help)\n");
        return 2;
    }
    /* the learned model: --model FILE, none, or the shipped one (only with the
     * default backbone and size it was trained for) */
    static char mpath[4096];
    if (rd_choose_model(o.model, !o.mo.backbone_path && !o.mo.size, mpath, sizeof mpath, &o.model) && scorer &&
        !strcmp(scorer, "resad")) {
        fprintf(stderr, "resad eval: the shipped model %s is missing; pass --model FILE\n", mpath);
        return 3;
    }
    if (scorer && !strcmp(scorer, "resad") && !o.model) {
        fprintf(stderr, "resad eval: --scorer resad needs a learned model (--model FILE from resad train)\n");
        return 2;
    }
    if (!scorer) scorer = o.model ? "resad" : "residual-norm";
    if (!strcmp(scorer, "all")) { /* the learned model first, beside both baselines */
        if (o.model) o.scorers[o.nscorers++] = SC_RESAD;
        o.scorers[o.nscorers++] = SC_RESID;
        o.scorers[o.nscorers++] = SC_KNN;
    } else {
        o.scorers[o.nscorers++] = !strcmp(scorer, "resad") ? SC_RESAD : !strcmp(scorer, "knn") ? SC_KNN : SC_RESID;
        if (o.scorers[0] != SC_RESAD) o.model = NULL; /* not needed */
    }
    if (o.nvariants && !o.model) {
        fprintf(stderr, "resad eval: --calib-variants needs the learned scorer (resad)\n");
        return 2;
    }
    for (int e = 0; e < o.nscorers; e++) snprintf(o.names[e], sizeof o.names[e], "%s", scorer_names[o.scorers[e]]);
    for (int v = 1; v <= o.nvariants; v++) { /* after the base scorers, each on the same features */
        o.scorers[o.nscorers] = SC_RESAD;
        o.variant[o.nscorers] = v;
        snprintf(o.names[o.nscorers++], sizeof o.names[0], "resad+%s:%.2f", rd_score_calib_name(o.vcalib[v]),
                 o.valpha[v]);
    }
    static char bpath[4096];
    if (!o.mo.backbone_path) {
        if (!rd_default_backbone(bpath, sizeof bpath)) {
            fprintf(stderr, "resad eval: default backbone %s missing; run make or pass --backbone\n", bpath);
            return 3;
        }
        o.mo.backbone_path = bpath;
    }
    int maxk = 2;
    for (int i = 0; i < o.nshots; i++) maxk = o.shots[i] > maxk ? o.shots[i] : maxk;
    o.mo.max_shots = maxk;
    rd_dataset *ds = rd_dataset_open(o.data, o.classes, &err);
    if (!ds) {
        fprintf(stderr, "resad eval: %s\n", err.msg);
        return 3;
    }
    if (o.model && o.mo.input_pad < 0) { /* the shared features are extracted with the learned model's input pad */
        rd_model_opts lo = o.mo;
        lo.model_path = o.model;
        rd_model *peek = rd_model_load(&lo, &err);
        if (peek) o.mo.input_pad = rd_model_get_info(peek)->input_pad;
        rd_model_free(peek);
    }
    rd_model *m = rd_model_load(&o.mo, &err);
    rd_worker *w = m ? rd_worker_new(m, &err) : NULL;
    rd_model *mlv[RD_EVAL_MAX_VARIANTS + 1] = {0};
    rd_worker *wlv[RD_EVAL_MAX_VARIANTS + 1] = {0};
    rd_model *ml = NULL;
    int models_ok = 1;
    for (int v = 0; w && o.model && v <= o.nvariants && models_ok; v++) {
        rd_model_opts lo = o.mo;
        lo.model_path = o.model;
        if (v) lo.calib = o.vcalib[v], lo.calib_alpha = o.valpha[v];
        mlv[v] = rd_model_load(&lo, &err);
        wlv[v] = mlv[v] ? rd_worker_new(mlv[v], &err) : NULL;
        if (wlv[v] && strcmp(rd_model_get_info(mlv[v])->model_id, rd_model_get_info(m)->model_id)) {
            rd_err_set(&err, RD_ERR_MISMATCH, "the model's levels/size differ from the backbone's defaults; "
                                              "pass the same --size as in training");
            rd_worker_free(wlv[v]);
            wlv[v] = NULL;
        }
        models_ok = wlv[v] != NULL;
    }
    ml = mlv[0];
    if (!w || (o.model && !models_ok)) {
        fprintf(stderr, "resad eval: %s\n", err.msg);
        for (int v = 0; v <= o.nvariants; v++) {
            rd_worker_free(wlv[v]);
            rd_model_free(mlv[v]);
        }
        rd_worker_free(w);
        rd_model_free(m);
        rd_dataset_free(ds);
        return 3;
    }
    class_result *cr = calloc((size_t)ds->nclasses, sizeof *cr);
    double t0 = rd_eval_now_s();
    int rc = 0;
    for (int ci = 0; ci < ds->nclasses; ci++) {
        if (eval_class(&o, m, w, mlv, wlv, &ds->classes[ci], &cr[ci], ci, ds->nclasses, t0, &err) != RD_OK) {
            fprintf(stderr, "\nresad eval: %s: %s\n", ds->classes[ci].name, err.msg);
            rc = 1;
            goto done;
        }
    }
    fprintf(stderr, "\reval: %d classes in %.1f s%40s\n", ds->nclasses, rd_eval_now_s() - t0, "");
    {
        const rd_model_info *in = rd_model_get_info(m);
        json_t *root = json_object(), *runs = json_array();
        json_object_set_new(root, "data", json_string(o.data));
        json_object_set_new(root, "backbone", json_string(in->arch));
        json_object_set_new(root, "backbone_sha256", json_string(in->backbone_sha256));
        json_object_set_new(root, "size", json_integer(in->size));
        json_object_set_new(root, "seeds", json_integer(o.seeds));
        json_object_set_new(root, "calib", json_string(rd_score_calib_name(o.mo.calib)));
        json_object_set_new(root, "calib_alpha", json_real(o.mo.calib_alpha));
        json_object_set_new(root, "calib_smooth", json_real(o.mo.calib_smooth));
        json_object_set_new(root, "input_pad", json_integer(in->input_pad));
        json_object_set_new(root, "sigma", json_real(o.mo.sigma));
        json_object_set_new(root, "wall_s", json_real(rd_eval_now_s() - t0));
        if (ml) {
            json_object_set_new(root, "model", json_string(o.model));
            json_object_set_new(root, "model_sha256", json_string(rd_model_get_info(ml)->model_sha256));
        }
        printf("backbone %s, S=%d, %d seed(s); mean ± std over seeds; pixel metrics over the whole frame at the "
               "masks' geometry, \"inspected\" = share of frame pixels the pipeline inspected\n",
               in->arch, in->size, o.seeds);
        if (in->input_pad) printf("input pad %d px mirrored around each frame\n", in->input_pad);
        if (o.mo.calib != RD_SCORE_CALIB_GLOBAL)
            printf("calibration %s, alpha %.2f, smoothing %.1f level cells (position only)\n",
                   rd_score_calib_name(o.mo.calib), o.mo.calib_alpha, o.mo.calib_smooth);
        for (int sci = 0; sci < o.nscorers; sci++) {
            for (int si = 0; si < o.nshots; si++) {
                json_t *run = json_object(), *per = json_object(), *overall = json_object();
                double cls_mean[M_COUNT][256];
                printf("\n== scorer %s, %d-shot\n%-20s", o.names[sci], o.shots[si], "class");
                for (int mi = 0; mi < M_COUNT; mi++) printf(" %15s", metric_short[mi]);
                printf(" %9s\n", "inspected");
                for (int ci = 0; ci < ds->nclasses; ci++) {
                    json_t *cj = json_object();
                    printf("%-20s", ds->classes[ci].name);
                    for (int mi = 0; mi < M_COUNT; mi++) {
                        double sd, mu = mean_of(cr[ci].m[sci][si][mi], o.seeds, &sd);
                        if (ci < 256) cls_mean[mi][ci] = mu;
                        printf("   %5.1f ± %4.1f ", 100 * mu, 100 * sd);
                        json_object_set_new(cj, metric_keys[mi], json_real(mu));
                        char key[64];
                        snprintf(key, sizeof key, "%s_std", metric_keys[mi]);
                        json_object_set_new(cj, key, json_real(sd));
                    }
                    printf(" %8.1f%%\n", 100 * cr[ci].inspected);
                    json_object_set_new(cj, "inspected_frac", json_real(cr[ci].inspected));
                    json_object_set_new(per, ds->classes[ci].name, cj);
                }
                printf("%-20s", "mean");
                for (int mi = 0; mi < M_COUNT; mi++) {
                    /* mean over classes per seed, then mean ± std over seeds */
                    double per_seed[16], sd;
                    for (int s = 0; s < o.seeds; s++) {
                        per_seed[s] = 0;
                        for (int ci = 0; ci < ds->nclasses; ci++) per_seed[s] += cr[ci].m[sci][si][mi][s];
                        per_seed[s] /= ds->nclasses;
                    }
                    double mu = mean_of(per_seed, o.seeds, &sd);
                    printf("   %5.1f ± %4.1f ", 100 * mu, 100 * sd);
                    json_object_set_new(overall, metric_keys[mi], json_real(mu));
                    char key[64];
                    snprintf(key, sizeof key, "%s_std", metric_keys[mi]);
                    json_object_set_new(overall, key, json_real(sd));
                }
                double insp = 0;
                for (int ci = 0; ci < ds->nclasses; ci++) insp += cr[ci].inspected / ds->nclasses;
                printf(" %8.1f%%\n", 100 * insp);
                json_object_set_new(overall, "inspected_frac", json_real(insp));
                (void)cls_mean;
                json_object_set_new(run, "scorer", json_string(o.names[sci]));
                if (o.variant[sci])
                    json_object_set_new(run, "calib", json_string(rd_score_calib_name(o.vcalib[o.variant[sci]]))),
                        json_object_set_new(run, "calib_alpha", json_real(o.valpha[o.variant[sci]]));
                json_object_set_new(run, "shots", json_integer(o.shots[si]));
                json_object_set_new(run, "classes", per);
                json_object_set_new(run, "overall", overall);
                json_object_set_new(run, "border_vs_central", border_report(cr, ds, sci, si, o.seeds));
                json_array_append_new(runs, run);
            }
        }
        json_object_set_new(root, "runs", runs);
        if (o.json_out && json_dump_file(root, o.json_out, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "resad eval: cannot write %s\n", o.json_out);
            rc = 1;
        }
        json_decref(root);
    }
done:
    free(cr);
    for (int v = 0; v <= o.nvariants; v++) {
        rd_worker_free(wlv[v]);
        rd_model_free(mlv[v]);
    }
    rd_worker_free(w);
    rd_model_free(m);
    rd_dataset_free(ds);
    return rc;
}
