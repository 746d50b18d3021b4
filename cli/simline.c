/* simline.c — `resad eval --simulate-line N,...`: a production line that learns from its operators.
 *
 * Per class and seed: R references (default 4) drawn from train/good; the
 * class's good test images, shuffled by the seed, arrive in order on the
 * line; each is inspected against the pool as it is then (its score is the
 * one recorded), confirmed good by the operator and joins the pool.  The
 * pool (and its leave-one-out calibration) is rebuilt at each N asked for, so
 * a part is scored against the pool as of the last N (e.g. with 0,4,8,12: goods
 * 1-4 against 4 references, 5-8 against 8, 9-12 against 12).  After N
 * confirmed goods (for each N asked) the pool holds R + N images and is
 * evaluated on the held-out rest: every test image that is not one of the
 * first max(N) line goods (the same set for every N, so the figures compare),
 * giving image AUROC and recall at each policy's threshold (threshold.h):
 * loo (the pool's own) and fpr:RATE (from the pool's leave-one-out image
 * scores, which stand for the confirmed goods that joined it — their recorded
 * scores are on the smaller pools' scale — as engine/labels.c does; loo while
 * there are fewer than RD_TP_MIN_GOODS confirmed goods).  The false-reject rate is
 * measured on every held-out good image: the held-out test goods and the
 * train/good images not among the R references.  For comparison, the R + max(N)
 * shot figure on the same held-out images, its references all from
 * train/good (what `resad eval --shots 16` does on the whole test set). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "dataset.h"
#include "eval.h"
#include "defaults.h"
#include "metrics.h"
#include "resad.h"
#include "rng.h"
#include "simline.h"
#include "threshold.h"

#define SIM_MAX_N 8
#define SIM_MAX_SEEDS 16

enum { P_LOO, P_FPR, P_COUNT };
/* per N and seed: what one class gives */
enum { V_AUROC, V_REC_LOO, V_FRR_LOO, V_REC_FPR, V_FRR_FPR, V_FPR_APPLIED, V_AUROC_REF, V_COUNT };
static const char *const v_keys[V_COUNT] = {"image_auroc", "recall_loo",  "frr_loo",  "recall_fpr",
                                            "frr_fpr",     "fpr_applied", "image_auroc_full_shots"};

typedef struct sim_opts {
    const char *data, *classes, *json_out, *model;
    int ns[SIM_MAX_N], nn, nmax;
    int seeds, refs, max_test;
    double rate;
    rd_model_opts mo;
} sim_opts;

typedef struct sim_class {
    double v[SIM_MAX_N][V_COUNT][SIM_MAX_SEEDS];
} sim_class;

static void sim_usage(FILE *f)
{
    fputs("usage: resad eval --data DIR --simulate-line N,N,... [--classes A,B|known|unseen]\n"
          "                  [--seeds S] [--refs R] [--fpr RATE] [--model FILE|none]\n"
          "                  [--backbone FILE] [--threads T] [--max-test M] [--json OUT]\n"
          "\n"
          "A line that learns: per class and seed, R references (default 4) from train/good,\n"
          "then the class's good test images in a seeded order, each inspected against the\n"
          "pool as it then is and confirmed good (joining the pool).  For each N (e.g.\n"
          "0,4,8,12): image AUROC and recall at the loo and fpr:RATE thresholds (default\n"
          "RATE 0.01, from the pool's leave-one-out scores, which stand for the N confirmed\n"
          "goods that joined it, as the daemon does; loo when too\n"
          "few) on the held-out test images (all but the first max(N) line goods), and\n"
          "each threshold's false-reject rate on every held-out good image (held-out test\n"
          "goods + train/good images not among the references).  Also the R+max(N)-shot\n"
          "AUROC with references all from train/good on the same held-out images.\n",
          f);
}

static void shuffle(int *v, int n, rd_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rd_rng_u64(r) % (uint64_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static double share_ge(const float *s, const int *idx, int n, double t)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += s[idx[i]] >= t;
    return n ? (double)c / n : NAN;
}

static rd_status load_feats(const rd_model *m, rd_worker *w, const char *path, rd_feats **out, rd_err *err)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    const rd_decode_opts dopt = {rd_model_get_info(m)->size, RD_ALPHA_COMPOSITE, 0};
    rd_image img = {0};
    rd_status st = rd_image_load_opts(path, &lim, &dopt, &img, err);
    if (st == RD_OK) st = rd_extract(m, w, &img, out, NULL, err);
    rd_image_release(&img);
    if (st != RD_OK) rd_err_prefix(err, "%s", path);
    return st;
}

/* scores f[idx[i]] against r into out[idx[i]], i < n */
static rd_status score_some(const rd_model *m, rd_worker *w, const rd_refset *r, rd_feats *const *f, const int *idx,
                            int n, float *out, rd_err *err)
{
    for (int i = 0; i < n; i++) {
        rd_result res;
        rd_status st = rd_inspect_feats(m, w, r, f[idx[i]], NAN, &res, err);
        if (st != RD_OK) return st;
        out[idx[i]] = res.score;
        rd_result_release(&res);
    }
    return RD_OK;
}

static rd_status auroc_of(const float *s, const uint8_t *lab, const int *idx, int n, double *out, rd_err *err)
{
    rd_metrics_acc *acc = NULL;
    rd_metrics_result mr;
    rd_status st = rd_metrics_acc_new(1, &acc, err);
    for (int i = 0; i < n && st == RD_OK; i++) st = rd_metrics_image_add(acc, s[idx[i]], lab[idx[i]], err);
    if (st == RD_OK) st = rd_metrics_compute(acc, &mr, err);
    if (st == RD_OK) *out = mr.image_auroc;
    rd_metrics_acc_free(acc);
    return st;
}

/* One seed of one class.  tf: test features (nt), trf: train features (ntr). */
static rd_status sim_seed(const sim_opts *o, const rd_model *m, rd_worker *w, const rd_ds_class *c, int nt,
                          rd_feats **tf, const uint8_t *lab, rd_feats **trf, int seed, sim_class *sc, rd_err *err)
{
    const int R = o->refs, ntr = c->ntrain;
    int *tperm = malloc((size_t)ntr * sizeof(int)), *line = malloc((size_t)nt * sizeof(int));
    int *held = malloc((size_t)nt * sizeof(int)), *hgood = malloc((size_t)nt * sizeof(int));
    int *hdef = malloc((size_t)nt * sizeof(int)), *trhold = malloc((size_t)ntr * sizeof(int));
    uint8_t *online = calloc((size_t)nt, 1);
    float *ts = malloc((size_t)nt * sizeof(float) + 1), *trs = malloc((size_t)ntr * sizeof(float) + 1);
    double *recorded = malloc((size_t)nt * sizeof(double) + 1);
    rd_feats **pool = malloc((size_t)(R + nt + 16) * sizeof *pool);
    rd_refset *rs = NULL;
    rd_status st = RD_OK;
    if (!tperm || !line || !held || !hgood || !hdef || !trhold || !online || !ts || !trs || !recorded || !pool) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory simulating %s", c->name);
        goto out;
    }
    rd_rng rng;
    rd_rng_seed(&rng, rd_eval_hash_str(c->name) ^ ((uint64_t)seed * 0x100000001b3ull));
    for (int i = 0; i < ntr; i++) tperm[i] = i;
    shuffle(tperm, ntr, &rng);
    int ngood = 0;
    for (int i = 0; i < nt; i++)
        if (!lab[i]) line[ngood++] = i;
    shuffle(line, ngood, &rng);
    if (ngood <= o->nmax || ntr < R + o->nmax || ntr <= R) {
        st = rd_err_set(err, RD_ERR_ARG,
                        "%s: %d good test and %d train/good images; --simulate-line %d with --refs %d needs more than "
                        "%d good test and at least %d train/good images",
                        c->name, ngood, ntr, o->nmax, R, o->nmax, R + o->nmax > R + 1 ? R + o->nmax : R + 1);
        goto out;
    }
    for (int j = 0; j < o->nmax; j++) online[line[j]] = 1;
    int nh = 0, nhg = 0, nhd = 0, ntrh = 0;
    for (int i = 0; i < nt; i++)
        if (!online[i]) {
            held[nh++] = i;
            if (lab[i]) hdef[nhd++] = i;
            else hgood[nhg++] = i;
        }
    for (int i = R; i < ntr; i++) trhold[ntrh++] = tperm[i];
    for (int r = 0; r < R; r++) pool[r] = trf[tperm[r]];
    for (int j = 0, ni = 0; j <= o->nmax; j++) {
        const int eval_here = ni < o->nn && o->ns[ni] == j;
        if (j == 0 || eval_here) { /* the pool is rebuilt (with its calibration) where it is evaluated */
            rd_refset_unref(rs);
            if (!(rs = rd_refset_build(m, w, pool, R + j, err))) {
                st = err->code;
                goto out;
            }
        }
        if (eval_here) { /* evaluate the pool of R + j */
            rd_tpolicy pf = {RD_TP_FPR, o->rate};
            rd_tpolicy_result pr;
            const double tloo = rd_refset_threshold(rs);
            /* as the daemon does (rd_tpolicy_apply_pool): the j confirmed goods all
             * joined the pool, whose leave-one-out scores stand for them */
            rd_calib cal;
            double lg[RD_CALIB_MAX_SHOTS];
            rd_refset_get_calib(rs, &cal);
            for (int q = 0; q < cal.k; q++) lg[q] = cal.loo[q];
            rd_tpolicy_apply_pool(&pf, tloo, recorded, j, j, lg, cal.k, NULL, 0, &pr);
            st = score_some(m, w, rs, tf, held, nh, ts, err);
            if (st == RD_OK) st = score_some(m, w, rs, trf, trhold, ntrh, trs, err);
            double au = NAN;
            if (st == RD_OK) st = auroc_of(ts, lab, held, nh, &au, err);
            if (st != RD_OK) goto out;
            /* false rejects over the held-out test goods and unused train goods together */
            const double frr_loo = (share_ge(ts, hgood, nhg, tloo) * nhg + share_ge(trs, trhold, ntrh, tloo) * ntrh) /
                                   (nhg + ntrh);
            const double frr_fpr =
                (share_ge(ts, hgood, nhg, pr.threshold) * nhg + share_ge(trs, trhold, ntrh, pr.threshold) * ntrh) /
                (nhg + ntrh);
            double *v[V_COUNT];
            for (int k = 0; k < V_COUNT; k++) v[k] = &sc->v[ni][k][seed];
            *v[V_AUROC] = au;
            *v[V_REC_LOO] = share_ge(ts, hdef, nhd, tloo);
            *v[V_FRR_LOO] = frr_loo;
            *v[V_REC_FPR] = share_ge(ts, hdef, nhd, pr.threshold);
            *v[V_FRR_FPR] = frr_fpr;
            *v[V_FPR_APPLIED] = pr.applied == RD_TP_FPR;
            ni++;
        }
        if (j < o->nmax) { /* the next good part on the line: inspected, recorded, confirmed, joins */
            int one = line[j];
            st = score_some(m, w, rs, tf, &one, 1, ts, err);
            if (st != RD_OK) goto out;
            recorded[j] = ts[one];
            pool[R + j] = tf[line[j]];
        }
    }
    rd_refset_unref(rs);
    rs = NULL;
    /* the same pool size, references all from train/good, on the same held-out images */
    const int K = R + o->nmax;
    for (int r = 0; r < K; r++) pool[r] = trf[tperm[r]];
    rs = rd_refset_build(m, w, pool, K, err);
    if (!rs) {
        st = err->code;
        goto out;
    }
    double au = NAN;
    st = score_some(m, w, rs, tf, held, nh, ts, err);
    if (st == RD_OK) st = auroc_of(ts, lab, held, nh, &au, err);
    for (int ni = 0; ni < o->nn; ni++) sc->v[ni][V_AUROC_REF][seed] = au;
out:
    rd_refset_unref(rs);
    free(tperm);
    free(line);
    free(held);
    free(hgood);
    free(hdef);
    free(trhold);
    free(online);
    free(ts);
    free(trs);
    free(recorded);
    free(pool);
    return st;
}

static rd_status sim_class_run(const sim_opts *o, const rd_model *m, rd_worker *w, const rd_ds_class *c,
                               sim_class *sc, int ci, int nclasses, double t0, rd_err *err)
{
    int nt = o->max_test > 0 && o->max_test < c->ntest ? o->max_test : c->ntest;
    rd_feats **tf = calloc((size_t)nt + 1, sizeof *tf), **trf = calloc((size_t)c->ntrain + 1, sizeof *trf);
    uint8_t *lab = malloc((size_t)nt + 1);
    rd_status st = RD_OK;
    if (!tf || !trf || !lab) {
        st = rd_err_set(err, RD_ERR_NOMEM, "out of memory simulating %s", c->name);
        goto out;
    }
    for (int i = 0; i < nt && st == RD_OK; i++) {
        lab[i] = (uint8_t)c->test[i].label;
        st = load_feats(m, w, c->test[i].image, &tf[i], err);
    }
    for (int i = 0; i < c->ntrain && st == RD_OK; i++) st = load_feats(m, w, c->train[i], &trf[i], err);
    for (int s = 0; s < o->seeds && st == RD_OK; s++) {
        st = sim_seed(o, m, w, c, nt, tf, lab, trf, s, sc, err);
        if (st == RD_OK)
            fprintf(stderr, "\rsimulate-line: class %d/%d %s seed %d: AUROC N=%d %.3f, N=%d %.3f  (%.0f s)     ",
                    ci + 1, nclasses, c->name, s, o->ns[0], sc->v[0][V_AUROC][s], o->ns[o->nn - 1],
                    sc->v[o->nn - 1][V_AUROC][s], rd_eval_now_s() - t0);
    }
out:
    if (tf)
        for (int i = 0; i < nt; i++) rd_feats_free(tf[i]);
    if (trf)
        for (int i = 0; i < c->ntrain; i++) rd_feats_free(trf[i]);
    free(tf);
    free(trf);
    free(lab);
    return st;
}

/* mean over classes per seed, then mean ± std over seeds */
static double over_seeds(const sim_class *sc, int nc, int ni, int k, int seeds, double *sd)
{
    double per[SIM_MAX_SEEDS], mu = 0, ss = 0;
    for (int s = 0; s < seeds; s++) {
        per[s] = 0;
        for (int c = 0; c < nc; c++) per[s] += sc[c].v[ni][k][s] / nc;
        mu += per[s] / seeds;
    }
    for (int s = 0; s < seeds; s++) ss += (per[s] - mu) * (per[s] - mu);
    *sd = seeds > 1 ? sqrt(ss / (seeds - 1)) : 0;
    return mu;
}

static int parse_ns(const char *s, sim_opts *o)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    o->nn = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long x = strtol(t, &end, 10);
        if (*end || x < 0 || x > 48 || o->nn == SIM_MAX_N || (o->nn && x <= o->ns[o->nn - 1])) return -1;
        o->ns[o->nn++] = (int)x;
    }
    if (o->nn) o->nmax = o->ns[o->nn - 1];
    return o->nn;
}

static void report(const sim_opts *o, const rd_dataset *ds, const sim_class *sc, const rd_model_info *in,
                   double wall, json_t *root)
{
    const int nc = ds->nclasses, K = o->refs + o->nmax;
    char pol[32];
    rd_tpolicy_format(&(rd_tpolicy){RD_TP_FPR, o->rate}, pol, sizeof pol);
    printf("simulated line: %d references + N confirmed goods, %d seed(s), %d classes, backbone %s, scorer %s; "
           "mean ± std over seeds of the mean over classes, percent\n",
           o->refs, o->seeds, nc, in->arch, in->model_sha256[0] ? "resad" : "residual-norm");
    printf("held out: every test image but the first %d line goods; FRR over held-out test goods + unused "
           "train/good images\n\n",
           o->nmax);
    printf("%4s %15s %15s %15s %15s %15s %10s %15s\n", "N", "I-AUROC", "recall@loo", "FRR@loo", "recall@fpr",
           "FRR@fpr", "fpr used", "I-AUROC@K");
    json_t *rows = json_array();
    for (int ni = 0; ni < o->nn; ni++) {
        json_t *row = json_object(), *per = json_object();
        printf("%4d", o->ns[ni]);
        json_object_set_new(row, "n", json_integer(o->ns[ni]));
        for (int k = 0; k < V_COUNT; k++) {
            double sd, mu = over_seeds(sc, nc, ni, k, o->seeds, &sd);
            if (k == V_FPR_APPLIED) printf(" %9.0f%%", 100 * mu);
            else printf("   %5.1f ± %4.1f ", 100 * mu, 100 * sd);
            json_object_set_new(row, v_keys[k], json_real(mu));
            char key[64];
            snprintf(key, sizeof key, "%s_std", v_keys[k]);
            json_object_set_new(row, key, json_real(sd));
        }
        printf("\n");
        for (int c = 0; c < nc; c++) {
            json_t *cj = json_object();
            for (int k = 0; k < V_COUNT; k++) {
                double m = 0;
                for (int s = 0; s < o->seeds; s++) m += sc[c].v[ni][k][s] / o->seeds;
                json_object_set_new(cj, v_keys[k], json_real(m));
            }
            json_object_set_new(per, ds->classes[c].name, cj);
        }
        json_object_set_new(row, "classes", per);
        json_array_append_new(rows, row);
    }
    printf("\nrecall@fpr / FRR@fpr: policy %s from the pool's leave-one-out scores (the N confirmed goods joined it; loo where it fell back; "
           "\"fpr used\" = share of class-seed runs where it applied); I-AUROC@K: %d references all from "
           "train/good on the same held-out images\n",
           pol, K);
    json_object_set_new(root, "refs", json_integer(o->refs));
    json_object_set_new(root, "policy", json_string(pol));
    json_object_set_new(root, "seeds", json_integer(o->seeds));
    json_object_set_new(root, "wall_s", json_real(wall));
    json_object_set_new(root, "full_shots", json_integer(K));
    json_object_set_new(root, "rows", rows);
}

int rd_cli_simline(int argc, char **argv)
{
    sim_opts o;
    rd_err err = {0};
    memset(&o, 0, sizeof o);
    rd_model_opts_default(&o.mo);
    o.mo.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o.seeds = 1;
    o.refs = 4;
    o.rate = 0.01;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sim_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "resad eval: %s needs a value (see resad eval --simulate-line 0 --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data")) o.data = v;
        else if (!strcmp(a, "--classes")) o.classes = v;
        else if (!strcmp(a, "--json")) o.json_out = v;
        else if (!strcmp(a, "--backbone")) o.mo.backbone_path = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--threads")) {
            if (rd_arg_int(v, 1, 256, &o.mo.threads)) {
                fprintf(stderr, "resad eval: --threads is 1 to 256\n");
                return 2;
            }
        } else if (!strcmp(a, "--max-test")) {
            if (rd_arg_int(v, 0, 1000000, &o.max_test)) {
                fprintf(stderr, "resad eval: --max-test is 0 (all) to 1000000 images\n");
                return 2;
            }
        }
        else if (!strcmp(a, "--simulate-line")) {
            if (parse_ns(v, &o) <= 0) {
                fprintf(stderr, "resad eval: --simulate-line takes up to 8 increasing counts 0..48, e.g. 0,4,8,12\n");
                return 2;
            }
        } else if (!strcmp(a, "--seeds")) {
            if (rd_arg_int(v, 1, SIM_MAX_SEEDS, &o.seeds)) {
                fprintf(stderr, "resad eval: --seeds is 1 to 16\n");
                return 2;
            }
        } else if (!strcmp(a, "--refs")) {
            if (rd_arg_int(v, 2, 16, &o.refs)) {
                fprintf(stderr, "resad eval: --refs is 2 to 16\n");
                return 2;
            }
        } else if (!strcmp(a, "--fpr")) {
            if (rd_arg_double(v, 0, 0.5, &o.rate) || o.rate == 0 || o.rate == 0.5) {
                fprintf(stderr, "resad eval: --fpr is a rate in (0, 0.5), e.g. 0.01\n");
                return 2;
            }
        } else {
            fprintf(stderr, "resad eval: '%s' is not an option of --simulate-line (see resad eval --simulate-line 0 "
                            "--help)\n",
                    a);
            return 2;
        }
    }
    if (!o.data || !o.nn) {
        fprintf(stderr, "resad eval: --simulate-line needs --data DIR and the counts N (see --help)\n");
        return 2;
    }
    static char mpath[4096], bpath[4096];
    if (rd_choose_model(o.model, !o.mo.backbone_path, mpath, sizeof mpath, &o.model)) {
        fprintf(stderr, "resad eval: the shipped model %s is missing; pass --model FILE or none\n", mpath);
        return 3;
    }
    if (!o.mo.backbone_path) {
        if (!rd_default_backbone(bpath, sizeof bpath)) {
            fprintf(stderr, "resad eval: default backbone %s missing; run make or pass --backbone\n", bpath);
            return 3;
        }
        o.mo.backbone_path = bpath;
    }
    o.mo.model_path = o.model;
    o.mo.max_shots = o.refs + o.nmax > 16 ? o.refs + o.nmax : 16;
    rd_dataset *ds = rd_dataset_open(o.data, o.classes, &err);
    rd_model *m = ds ? rd_model_load(&o.mo, &err) : NULL;
    rd_worker *w = m ? rd_worker_new(m, &err) : NULL;
    sim_class *sc = w ? calloc((size_t)ds->nclasses + 1, sizeof *sc) : NULL;
    int rc = 0;
    if (!sc) {
        fprintf(stderr, "resad eval: %s\n", w ? "out of memory" : err.msg);
        rc = 3;
        goto done;
    }
    double t0 = rd_eval_now_s();
    for (int ci = 0; ci < ds->nclasses; ci++)
        if (sim_class_run(&o, m, w, &ds->classes[ci], &sc[ci], ci, ds->nclasses, t0, &err) != RD_OK) {
            fprintf(stderr, "\nresad eval: %s\n", err.msg);
            rc = 1;
            goto done;
        }
    fprintf(stderr, "\rsimulate-line: %d classes in %.1f s%60s\n", ds->nclasses, rd_eval_now_s() - t0, "");
    json_t *root = json_object();
    json_object_set_new(root, "data", json_string(o.data));
    if (o.model) json_object_set_new(root, "model", json_string(o.model));
    report(&o, ds, sc, rd_model_get_info(m), rd_eval_now_s() - t0, root);
    if (o.json_out && json_dump_file(root, o.json_out, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "resad eval: cannot write %s\n", o.json_out);
        rc = 1;
    }
    json_decref(root);
done:
    free(sc);
    rd_worker_free(w);
    rd_model_free(m);
    rd_dataset_free(ds);
    return rc;
}
