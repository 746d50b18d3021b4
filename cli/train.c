/* train.c — `resad train`: trains the learned ResAD model (constraintor + flow
 * per level) on the known classes of a dataset and writes the model file the
 * pipeline loads (rd_model_opts.model_path).  Features are extracted once with
 * the frozen backbone; the loop itself is core/train.c. */
#include "train.h" /* core/train.h */
#include "train_cmd.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "blas.h"
#include "dataset.h"
#include "defaults.h"
#include "image.h"
#include "resad.h"
#include "sha256.h"
#include "synth.h"

static void train_usage(FILE *f)
{
    fputs("usage: resad train --data DIR --out MODEL.safetensors [options]\n"
          "  --classes known|A,B      classes to train on (default: \"known\" from DIR/split.json)\n"
          "  --backbone FILE          backbone safetensors (default: the shipped MobileNetV2)\n"
          "  --epochs N               epochs (default 20)\n"
          "  --normal-epochs N        first epochs on normal images only (default 2)\n"
          "  --shots K                references per image (default 4)\n"
          "  --batch B                images per batch (default 8)\n"
          "  --flow-blocks K          coupling blocks per flow (default 8)\n"
          "  --flow-hidden H          subnet width (default 0 = 2*(C/2+256) as the paper's code)\n"
          "  --cstr-kernel 1|3        constraintor kernel (default 3)\n"
          "  --frame centre|whole     train on the S x S centre square of each image (default, as the\n"
          "                           shipped model) or on the whole frame at the working grid a class\n"
          "                           gets (short side S, long side by the aspect): every pixel and\n"
          "                           border defect counts; all images of the run need one aspect\n"
          "                           ratio, and a non-square grid needs --flow-pos none or shift\n"
          "  --input-pad P            mirror P pixels (a multiple of 16) around every image before the\n"
          "                           backbone and crop them off its levels (border features see the\n"
          "                           surface, not zero padding); stored in the model, which then\n"
          "                           inspects with it (default 0)\n"
          "  --flow-pos MODE          the flow's positional condition: abs (absolute (y, x), default),\n"
          "                           none (no position), shift[:F] (randomly translated by up to\n"
          "                           F x the grid per image in training, default F 1)\n"
          "  --no-constraintor        flow directly on the residuals\n"
          "  --residual diff|sq       x-x* (default) or (x-x*)^2\n"
          "  --metric l2|cosine       nearest-neighbour metric (default l2)\n"
          "  --ml logsigmoid|nll      flow likelihood loss (default logsigmoid)\n"
          "  --lr X  --wd X           Adam learning rate (2e-4) and weight decay (5e-4)\n"
          "  --synth-local N          N synthesized local anomalies per class (GLASS's LAS: Perlin masks\n"
          "                           filled with another class's or the image's own warped texture;\n"
          "                           default 0 = off)\n"
          "  --synth-match P          share of them colour-matched to the surface (low contrast; 0.5)\n"
          "  --synth-global F         global anomalies (GLASS's GAS): share F of each flow chunk's normal\n"
          "                           rows gets a noisy twin pushed by gradient ascent on the flow's NLL\n"
          "                           into a shell around it (default 0 = off)\n"
          "  --gas-steps K            its ascent steps (2)\n"
          "  --gas-shell R1,R2        its shell, in units of the rows' RMS norm (0.5,1)\n"
          "  --gas-step X             its step length, same unit (0.1)\n"
          "  --seed S                 random seed (default 0)\n"
          "  --threads N              threads (default: all cores)\n"
          "  --max-minutes M          stop cleanly after M minutes and still write the model\n"
          "  --checkpoint FILE        write a checkpoint after every epoch\n"
          "  --resume FILE            continue bit-exactly from a checkpoint\n"
          "  --stop-after N           stop after N epochs in this run (checkpoint tests)\n",
          f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int file_sha(const char *path, char out[RD_SHA256_HEX])
{
    FILE *f = fopen(path, "rb");
    unsigned char buf[65536];
    size_t n;
    if (!f) return -1;
    rd_sha256 *h = rd_sha256_new();
    if (!h) {
        fclose(f);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) rd_sha256_update(h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (rd_sha256_final_hex(h, out) != 0 || bad) return -1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* sha256 of DIR/manifest.json if present, else over the sorted lines
 * "relative/path<TAB>sha256" of every image and mask used. */
static int manifest_sha(const rd_dataset *ds, char out[RD_SHA256_HEX])
{
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", ds->root);
    if (access(mpath, R_OK) == 0) return file_sha(mpath, out);
    size_t n = 0, k = 0, rootlen = strlen(ds->root);
    for (int c = 0; c < ds->nclasses; c++) {
        n += (size_t)ds->classes[c].ntrain;
        for (int i = 0; i < ds->classes[c].ntest; i++) n += ds->classes[c].test[i].mask ? 2 : 1;
    }
    char **lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines) return -1;
    int rc = 0;
    for (int c = 0; c < ds->nclasses && !rc; c++) {
        const rd_ds_class *cl = &ds->classes[c];
        for (int i = 0; i < cl->ntrain + 2 * cl->ntest && !rc; i++) {
            const char *p = i < cl->ntrain ? cl->train[i]
                            : (i - cl->ntrain) % 2 == 0 ? cl->test[(i - cl->ntrain) / 2].image
                                                        : cl->test[(i - cl->ntrain) / 2].mask;
            if (!p) continue;
            char sha[RD_SHA256_HEX];
            const char *rel = strncmp(p, ds->root, rootlen) == 0 ? p + rootlen : p;
            while (*rel == '/') rel++;
            if (file_sha(p, sha) != 0 || k >= n) {
                rc = -1;
                break;
            }
            size_t len = strlen(rel) + RD_SHA256_HEX + 3;
            lines[k] = malloc(len);
            if (!lines[k]) {
                rc = -1;
                break;
            }
            snprintf(lines[k], len, "%s\t%s\n", rel, sha);
            k++;
        }
    }
    if (!rc) {
        qsort(lines, k, sizeof *lines, cmp_str);
        rd_sha256 *h = rd_sha256_new();
        if (!h) rc = -1;
        for (size_t i = 0; i < k && h; i++) rd_sha256_update(h, lines[i], strlen(lines[i]));
        if (h && rd_sha256_final_hex(h, out) != 0) rc = -1;
    }
    for (size_t i = 0; i < k; i++) free(lines[i]);
    free(lines);
    return rc;
}

static void fmt_dur(double s, char *buf, size_t len)
{
    if (s < 0 || !isfinite(s)) s = 0;
    long x = (long)(s + 0.5);
    if (x >= 3600)
        snprintf(buf, len, "%ldh%02ldm", x / 3600, x / 60 % 60);
    else if (x >= 60)
        snprintf(buf, len, "%ldm%02lds", x / 60, x % 60);
    else
        snprintf(buf, len, "%lds", x);
}

typedef struct prog_ctx {
    int tty;
    double last;
} prog_ctx;

static int on_progress(void *ctx, const rd_train_progress *p)
{
    prog_ctx *c = ctx;
    double t = now_s();
    if (!p->epoch_done && !(c->tty && t - c->last >= 0.5)) return 0;
    c->last = t;
    char el[32], eta[32];
    fmt_dur(p->elapsed_s, el, sizeof el);
    fmt_dur(p->eta_s, eta, sizeof eta);
    fprintf(stderr, "%strain: epoch %d/%d %s batch %d/%d  occ %.4f  ml %.4f  bgad %.4f  elapsed %s  eta %s%s",
            c->tty ? "\r" : "", p->epoch + 1, p->epochs, p->normal_stage ? "[normal]" : "[mixed] ", p->batch,
            p->nbatches, p->cur.occ, p->cur.ml, p->cur.bgad, el, eta, p->epoch_done || !c->tty ? "" : "   ");
    if (p->epoch_done || !c->tty)
        fprintf(stderr, "  [nn %.0fs cstr %.0fs flow %.0fs]\n", p->nn_s, p->cstr_s, p->flow_s);
    return 0;
}

typedef struct synth_opts {
    int local;      /* per class; 0 = off */
    rd_synth_cfg cfg;
    uint64_t seed;
} synth_opts;

/* One training image's features: the S×S centre square (rd_extract_center) or
 * the whole frame at its default geometry (rd_extract). */
static rd_status train_extract(const rd_model *m, rd_worker *w, const rd_image *img, int whole, rd_feats **f,
                               rd_err *err)
{
    return whole ? rd_extract(m, w, img, f, NULL, err) : rd_extract_center(m, w, img, f, NULL, err);
}

/* Its mask as the S×S array rd_train_add_image takes: the centre crop's, or
 * for a whole frame the frame resampled to S×S (nearest; the trainer samples
 * it back at each level's h×w, so a level pixel sees the frame pixel it covers). */
static void train_mask(const rd_image *mk, const rd_feats *f, int whole, int s, uint8_t *out)
{
    rd_crop all = {.s = s, .resized_w = s, .resized_h = s};
    rd_mask_to_crop(mk, whole ? &all : &f->crop, out);
}

/* `so->local` synthesized anomalies of class ci (core/synth.c): base images
 * cycle through its train/good images; foreign texture from a random train
 * image of another class.  Their own random stream, so the training stream
 * does not move. */
static rd_status synth_class(const rd_model *m, rd_worker *w, const rd_dataset *ds, int ci, int idx, rd_train *t,
                             const synth_opts *so, int whole, rd_rng *rng, uint8_t *crop_mask, size_t *done,
                             rd_err *err)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    const rd_ds_class *c = &ds->classes[ci];
    rd_status st = RD_OK;
    if (c->ntrain < 1) return RD_OK;
    for (int j = 0; j < so->local && st == RD_OK; j++) {
        rd_image base = {0}, foreign = {0}, out = {0}, mk = {0};
        rd_feats *f = NULL;
        uint8_t *mask = NULL;
        st = rd_image_load(c->train[j % c->ntrain], &lim, &base, err);
        if (st == RD_OK && ds->nclasses > 1) {
            int oc = (int)(rd_rng_u64(rng) % (uint64_t)(ds->nclasses - 1));
            if (oc >= ci) oc++;
            const rd_ds_class *o = &ds->classes[oc];
            if (o->ntrain > 0) st = rd_image_load(o->train[rd_rng_u64(rng) % (uint64_t)o->ntrain], &lim, &foreign, err);
        }
        if (st == RD_OK && !(mask = malloc((size_t)base.w * base.h)))
            st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        if (st == RD_OK)
            st = rd_synth_local(&so->cfg, rng, &base, foreign.rgb ? &foreign : NULL, &out, mask, NULL, err);
        if (st == RD_OK) st = train_extract(m, w, &out, whole, &f, err);
        if (st == RD_OK) { /* the mask as a one-channel-in-three image for rd_mask_to_crop */
            mk.w = base.w;
            mk.h = base.h;
            mk.rgb = malloc((size_t)base.w * base.h * 3);
            if (!mk.rgb) st = rd_err_set(err, RD_ERR_NOMEM, "out of memory");
            for (size_t i = 0; st == RD_OK && i < (size_t)base.w * base.h; i++)
                mk.rgb[3 * i] = mk.rgb[3 * i + 1] = mk.rgb[3 * i + 2] = mask[i] ? 255 : 0;
            if (st == RD_OK) train_mask(&mk, f, whole, rd_model_get_info(m)->size, crop_mask);
        }
        rd_image_release(&base);
        rd_image_release(&foreign);
        rd_image_release(&out);
        rd_image_release(&mk);
        free(mask);
        if (st != RD_OK) {
            rd_feats_free(f);
            break;
        }
        st = rd_train_add_image(t, idx, f, 0, 1, crop_mask, err);
        (*done)++;
    }
    return st;
}

/* --frame whole: the level sizes of the first class's first image at its
 * whole frame, into mi (the trainer's level geometry); "WxH" of its working grid. */
static rd_status probe_grid(const rd_model *m, rd_worker *w, const rd_dataset *ds, rd_model_info *mi, char *grid,
                            size_t len, rd_err *err)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_image img = {0};
    rd_feats *f = NULL;
    const rd_ds_class *c = &ds->classes[0];
    const char *path = c->ntrain ? c->train[0] : c->ntest ? c->test[0].image : NULL;
    if (!path) return rd_err_set(err, RD_ERR_ARG, "class %s has no images", c->name);
    rd_status st = rd_image_load(path, &lim, &img, err);
    if (st == RD_OK) st = rd_extract(m, w, &img, &f, NULL, err);
    rd_image_release(&img);
    if (st != RD_OK) return st;
    for (int l = 0; l < mi->nlevels; l++) {
        mi->level_h[l] = f->h[l];
        mi->level_w[l] = f->w[l];
    }
    snprintf(grid, len, "whole %dx%d", f->geo.work_w, f->geo.work_h);
    rd_feats_free(f);
    return RD_OK;
}

/* Extracts every image of the chosen classes into the trainer. */
static rd_status load_data(const rd_model *m, rd_worker *w, const rd_dataset *ds, rd_train *t, int s, int whole,
                           const synth_opts *so, rd_err *err)
{
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    uint8_t *mask = malloc((size_t)s * s);
    size_t total = 0, done = 0;
    double t0 = now_s();
    rd_status st = RD_OK;
    if (!mask) return rd_err_set(err, RD_ERR_NOMEM, "out of memory");
    for (int c = 0; c < ds->nclasses; c++) total += (size_t)(ds->classes[c].ntrain + ds->classes[c].ntest);
    rd_rng srng;
    rd_rng_seed(&srng, so->seed ^ 0x51A7E5u);
    size_t nsynth = 0;
    int tty = isatty(2);
    size_t step = total / 4 > 1 ? total / 4 : 1; /* a few lines in logs, a live counter on a terminal */
    for (int ci = 0; ci < ds->nclasses && st == RD_OK; ci++) {
        const rd_ds_class *c = &ds->classes[ci];
        int idx = rd_train_add_class(t, c->name, err);
        if (idx < 0) {
            st = (rd_status)idx;
            break;
        }
        for (int i = 0; i < c->ntrain + c->ntest; i++) {
            const char *path = i < c->ntrain ? c->train[i] : c->test[i - c->ntrain].image;
            const rd_ds_item *it = i < c->ntrain ? NULL : &c->test[i - c->ntrain];
            rd_image img = {0}, mk = {0};
            rd_feats *f = NULL;
            const uint8_t *mp = NULL;
            st = rd_image_load(path, &lim, &img, err);
            if (st == RD_OK) st = train_extract(m, w, &img, whole, &f, err);
            rd_image_release(&img);
            if (st == RD_OK && it && it->label && it->mask) {
                st = rd_image_load(it->mask, &lim, &mk, err);
                if (st == RD_OK) {
                    train_mask(&mk, f, whole, s, mask);
                    mp = mask;
                }
                rd_image_release(&mk);
            }
            if (st != RD_OK) {
                rd_feats_free(f);
                break;
            }
            const int gw = f->geo.work_w, gh = f->geo.work_h; /* f is taken by the trainer */
            st = rd_train_add_image(t, idx, f, it == NULL, it ? it->label : 0, mp, err);
            if (st != RD_OK && whole)
                rd_err_prefix(err, "%s: whole frame at a %dx%d grid, not the run's (--frame whole takes one aspect "
                                   "ratio per run)", path, gw, gh);
            if (st != RD_OK) break;
            done++;
            if (tty ? done % 16 == 0 || done == total : done % step == 0 || done == total)
                fprintf(stderr, "train: features %zu/%zu (%.0f s)%s", done, total, now_s() - t0,
                        tty && done < total ? "\r" : "\n");
        }
        if (st == RD_OK && so->local > 0) st = synth_class(m, w, ds, ci, idx, t, so, whole, &srng, mask, &nsynth, err);
    }
    if (st == RD_OK && nsynth)
        fprintf(stderr, "train: %zu synthesized local anomalies (%.0f s in all)\n", nsynth, now_s() - t0);
    free(mask);
    return st;
}

int rd_cli_train(int argc, char **argv)
{
    rd_train_cfg cfg;
    rd_model_opts mo;
    rd_err err = {0};
    const char *data = NULL, *classes = "known", *out = NULL, *resume = NULL;
    int whole = 0;          /* --frame whole */
    char frame[64] = "centre"; /* resadd.train_frame: "centre" or "whole WxH" */
    double max_minutes = 0;
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    synth_opts so = {0};
    rd_train_cfg_default(&cfg);
    rd_model_opts_default(&mo);
    rd_synth_cfg_default(&so.cfg);
    if (threads < 1) threads = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-constraintor")) {
            cfg.use_cstr = 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "resad train: unexpected argument '%s' (see resad train --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "resad train: %s needs a value (see resad train --help)\n", a);
            return 2;
        }
        i++;
#define INTOPT(name, field, lo, hi)                                                              \
    else if (!strcmp(a, name)) {                                                                 \
        if (rd_arg_int(v, lo, hi, &field)) {                                                       \
            fprintf(stderr, "resad train: %s takes a whole number from %d to %d (got '%s')\n", a, \
                    lo, hi, v);                                                                  \
            return 2;                                                                            \
        }                                                                                        \
    }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--classes")) classes = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--backbone")) mo.backbone_path = v;
        else if (!strcmp(a, "--checkpoint")) cfg.checkpoint_path = v;
        else if (!strcmp(a, "--resume")) resume = v;
        INTOPT("--epochs", cfg.epochs, 1, 100000)
        INTOPT("--normal-epochs", cfg.normal_epochs, 0, 100000)
        INTOPT("--shots", cfg.shots, 1, 64)
        INTOPT("--batch", cfg.batch, 1, 1024)
        INTOPT("--flow-blocks", cfg.flow_blocks, 1, RD_FLOW_MAX_K)
        INTOPT("--flow-hidden", cfg.flow_hidden, 0, RD_FLOW_MAX_HID)
        INTOPT("--threads", threads, 1, 256)
        INTOPT("--stop-after", cfg.stop_after, 1, 100000)
        INTOPT("--synth-local", so.local, 0, 100000)
        INTOPT("--gas-steps", cfg.gas.steps, 0, 100)
        else if (!strcmp(a, "--cstr-kernel")) {
            if (strcmp(v, "1") && strcmp(v, "3")) {
                fprintf(stderr, "resad train: --cstr-kernel is 1 or 3 (got '%s')\n", v);
                return 2;
            }
            cfg.cstr_kernel = v[0] - '0';
        } else if (!strcmp(a, "--frame")) {
            if (!strcmp(v, "centre") || !strcmp(v, "center")) whole = 0;
            else if (!strcmp(v, "whole")) whole = 1;
            else {
                fprintf(stderr, "resad train: --frame is centre or whole (got '%s')\n", v);
                return 2;
            }
        }
        INTOPT("--input-pad", mo.input_pad, 0, RD_MAX_INPUT_PAD) /* a multiple of 16: checked by rd_model_load */
        else if (!strcmp(a, "--flow-pos")) {
            rd_flow_cfg fc;
            rd_flow_cfg_default(&fc, 2, 1);
            if (!rd_flow_pos_parse(v, &fc)) {
                fprintf(stderr, "resad train: --flow-pos is abs, none, shift or shift:F with 0 < F <= 4 (got '%s')\n",
                        v);
                return 2;
            }
            cfg.flow_pos = fc.pos;
            cfg.flow_shift = fc.shift;
        } else if (!strcmp(a, "--residual")) {
            if (!strcmp(v, "diff")) cfg.resid = RD_RESID_X_MINUS_NN;
            else if (!strcmp(v, "sq")) cfg.resid = RD_RESID_SQUARED;
            else {
                fprintf(stderr, "resad train: --residual is diff or sq (got '%s')\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--metric")) {
            if (!strcmp(v, "l2")) cfg.metric = RD_POOL_L2;
            else if (!strcmp(v, "cosine")) cfg.metric = RD_POOL_COSINE;
            else {
                fprintf(stderr, "resad train: --metric is l2 or cosine (got '%s')\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--ml")) {
            if (!strcmp(v, "logsigmoid")) cfg.ml = RD_ML_LOGSIGMOID;
            else if (!strcmp(v, "nll")) cfg.ml = RD_ML_NLL;
            else {
                fprintf(stderr, "resad train: --ml is logsigmoid or nll (got '%s')\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--lr") || !strcmp(a, "--wd")) {
            int lr = !strcmp(a, "--lr");
            if (rd_arg_double(v, 0, 1, &d) || d == 1 || (lr && d == 0)) {
                fprintf(stderr, "resad train: %s takes a number in %s (got '%s')\n", a, lr ? "(0, 1)" : "[0, 1)",
                        v);
                return 2;
            }
            if (lr) cfg.lr = (float)d;
            else cfg.wd = (float)d;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "resad train: --seed takes a non-negative whole number (got '%s')\n", v);
                return 2;
            }
            cfg.seed = (uint64_t)s;
        } else if (!strcmp(a, "--synth-match") || !strcmp(a, "--synth-global") || !strcmp(a, "--gas-step")) {
            double hi = !strcmp(a, "--gas-step") ? 100 : 1;
            if (rd_arg_double(v, 0, hi, &d)) {
                fprintf(stderr, "resad train: %s takes a number from 0 to %g (got '%s')\n", a, hi, v);
                return 2;
            }
            if (!strcmp(a, "--synth-match")) so.cfg.p_match = (float)d;
            else if (!strcmp(a, "--synth-global")) cfg.gas_share = (float)d;
            else cfg.gas.eta = (float)d;
        } else if (!strcmp(a, "--gas-shell")) {
            char *end, *end2;
            errno = 0;
            double r1 = strtod(v, &end), r2 = *end == ',' ? strtod(end + 1, &end2) : NAN;
            if (errno || end == v || *end != ',' || *end2 || !(r1 > 0 && r1 <= r2 && r2 <= 100)) {
                fprintf(stderr, "resad train: --gas-shell takes R1,R2 with 0 < R1 <= R2 <= 100 (got '%s')\n", v);
                return 2;
            }
            cfg.gas.r1 = (float)r1;
            cfg.gas.r2 = (float)r2;
        } else if (!strcmp(a, "--max-minutes")) {
            if (rd_arg_double(v, 0, DBL_MAX, &max_minutes) || max_minutes == 0) {
                fprintf(stderr, "resad train: --max-minutes takes a positive number (got '%s')\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "resad train: unknown option '%s' (see resad train --help)\n", a);
            return 2;
        }
#undef INTOPT
    }
    if (!data || !out) {
        fprintf(stderr, "resad train: --data DIR and --out MODEL.safetensors are required (see resad train --help)\n");
        return 2;
    }
    if (cfg.normal_epochs > cfg.epochs) cfg.normal_epochs = cfg.epochs;
    cfg.threads = threads;
    cfg.max_seconds = max_minutes * 60.0;
    mo.threads = threads;
    mo.max_shots = cfg.shots > 2 ? cfg.shots : 2;

    static char bpath[4096];
    if (!mo.backbone_path) {
        if (!rd_default_backbone(bpath, sizeof bpath)) {
            fprintf(stderr, "resad train: default backbone %s missing; run make or pass --backbone\n", bpath);
            return 3;
        }
        mo.backbone_path = bpath;
    }
    double t_start = now_s();
    int rc = 3;
    rd_dataset *ds = NULL;
    rd_model *m = NULL;
    rd_worker *w = NULL;
    rd_train *t = NULL;
    char msha[RD_SHA256_HEX] = "";
    ds = rd_dataset_open(data, classes, &err);
    if (!ds) goto fail;
    if (ds->nclasses < 1) {
        rd_err_set(&err, RD_ERR_ARG, "%s: no classes to train on", data);
        goto fail;
    }
    if (manifest_sha(ds, msha) != 0) {
        rd_err_set(&err, RD_ERR_IO, "%s: cannot hash the training images", data);
        goto fail;
    }
    /* synthesized local anomalies are training data too: a checkpoint made without them does not resume with */
    static char data_id[RD_SHA256_HEX + 96];
    snprintf(data_id, sizeof data_id, "%s", msha);
    if (so.local)
        snprintf(data_id, sizeof data_id, "%s+synth-local=%d,match=%a", msha, so.local, (double)so.cfg.p_match);
    cfg.data_id = data_id;
    m = rd_model_load(&mo, &err);
    if (!m) goto fail;
    w = rd_worker_new(m, &err);
    if (!w) goto fail;
    const rd_model_info *mi = rd_model_get_info(m);
    rd_model_info tmi = *mi; /* --frame whole: the levels at the first image's working grid */
    if (whole && probe_grid(m, w, ds, &tmi, frame, sizeof frame, &err) != RD_OK) goto fail;
    if (whole && cfg.flow_pos == RD_FLOW_POS_ABS && tmi.level_h[0] != tmi.level_w[0]) {
        rd_err_set(&err, RD_ERR_ARG,
                   "--frame whole on a non-square grid (%s) needs --flow-pos none or shift: an absolute "
                   "condition is mapped onto the model's S x S levels at inference", frame);
        goto fail;
    }
    t = rd_train_new(&cfg, &tmi, &err);
    if (!t) goto fail;
    so.seed = cfg.seed;
    if (load_data(m, w, ds, t, mi->size, whole, &so, &err) != RD_OK) goto fail;
    rd_worker_free(w);
    w = NULL;
    if (resume) {
        if (rd_train_resume(t, resume, &err) != RD_OK) goto fail;
        fprintf(stderr, "train: resumed from %s at epoch %d\n", resume, rd_train_epochs_done(t));
    }
    if (cfg.max_seconds > 0) { /* the budget covers feature extraction too */
        double left = cfg.max_seconds - (now_s() - t_start);
        rd_train_set_max_seconds(t, left > 1 ? left : 1);
    }
    /* OpenBLAS stays at one thread (as rd_model_load sets it): the team runs
     * the NN search per query block and the levels' flows side by side.  The
     * result is bit-exact for a seed, a --threads value and an OpenBLAS kernel
     * set (OPENBLAS_CORETYPE) together; another thread count or kernel set can
     * round differently (README, "bit-exact for a fixed seed"). */
    rd_blas_set_threads(1);
    prog_ctx pc = {isatty(2), 0};
    int stopped = 0;
    if (rd_train_run(t, on_progress, &pc, &stopped, &err) != RD_OK) goto fail;
    if (stopped) fprintf(stderr, "train: stopped early after %d complete epochs\n", rd_train_epochs_done(t));

    /* metadata from the pipeline */
    char levels[512] = "", size[16], pad[16], created[32], synth_l[160], synth_g[160];
    char *cls_csv = NULL;
    size_t cl_len = 1;
    for (int c = 0; c < ds->nclasses; c++) cl_len += strlen(ds->classes[c].name) + 1;
    cls_csv = calloc(1, cl_len);
    if (!cls_csv) {
        rd_err_set(&err, RD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int c = 0; c < ds->nclasses; c++) {
        if (c) strcat(cls_csv, ",");
        strcat(cls_csv, ds->classes[c].name);
    }
    for (int l = 0; l < mi->nlevels; l++) {
        size_t n = strlen(levels);
        snprintf(levels + n, sizeof levels - n, "%s%s", l ? "," : "", mi->level_names[l]);
    }
    snprintf(size, sizeof size, "%d", mi->size);
    snprintf(pad, sizeof pad, "%d", mi->input_pad);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(synth_l, sizeof synth_l, "off");
    snprintf(synth_g, sizeof synth_g, "off");
    if (so.local)
        snprintf(synth_l, sizeof synth_l, "%d per class, colour-matched share %g", so.local, (double)so.cfg.p_match);
    if (cfg.gas_share > 0)
        snprintf(synth_g, sizeof synth_g, "share %g, %d steps, shell [%g, %g], step %g", (double)cfg.gas_share,
                 cfg.gas.steps, (double)cfg.gas.r1, (double)cfg.gas.r2, (double)cfg.gas.eta);
    const char *meta[] = {"resadd.kind", "resad-model", "resadd.version", "1", "resadd.backbone_arch", mi->arch,
                          "resadd.backbone_sha256", mi->backbone_sha256, "resadd.levels", levels, "resadd.size", size,
                          "resadd.train_manifest_sha256", msha, "resadd.train_classes", cls_csv, "resadd.created",
                          created, "resadd.stopped_early", stopped ? "yes" : "no", "resadd.synth_local", synth_l,
                          "resadd.synth_global", synth_g, "resadd.train_frame", frame, "resadd.input_pad", pad, NULL};
    rd_status st = rd_train_write_model(t, out, meta, &err);
    free(cls_csv);
    if (st != RD_OK) goto fail;
    const rd_train_losses *fl = rd_train_last_losses(t);
    fprintf(stderr, "train: wrote %s (%d epochs, occ %.4f ml %.4f bgad %.4f) in %.0f s\n", out,
            rd_train_epochs_done(t), fl->occ, fl->ml, fl->bgad, now_s() - t_start);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "resad train: %s\n", err.msg[0] ? err.msg : "failed");
out:
    rd_train_free(t);
    rd_worker_free(w);
    rd_model_free(m);
    rd_dataset_free(ds);
    return rc;
}
