/* resad.c — the command-line tool: score images against a few references.
 *
 *   resad score [--backbone FILE] --ref IMG... --image IMG... [--heatmap DIR] ...
 *   resad info  [--backbone FILE]
 *
 * One JSON object per scored image on stdout (jq-friendly); human messages on
 * stderr.  Exit codes are documented in usage() and stable for scripts. */
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "blas.h"
#include "defaults.h"
#include "eval.h"
#include "train_cmd.h"
#include "heatmap.h"
#include "geometry.h"
#include "image.h"
#include "resad.h"

enum { EXIT_OK = 0, EXIT_IMAGE = 1, EXIT_USAGE = 2, EXIT_SETUP = 3, EXIT_ANOMALY = 4 };

#define MAX_ARGS_LIST 4096

typedef struct cli {
    rd_model_opts mo;
    const char *refs[MAX_ARGS_LIST];
    int nrefs;
    const char *images[MAX_ARGS_LIST];
    int nimages;
    const char *heatmap_dir;
    int shots;
    float threshold;
    int fail_on_anomaly;
    int verbose;
    int pretty;
    int custom; /* --levels/--metric/--residual given: no default model */
    rd_geo_opts geo; /* --size, --fit, --roi, --tile, --alpha: the class geometry */
    const char *roi_mask; /* --roi-mask FILE: the class's ROI mask image */
} cli;

static void usage(FILE *f)
{
    fputs(
        "usage: resad score [options] --ref IMG... --image IMG...\n"
        "       resad eval  --data DIR [options]   (see resad eval --help)\n"
        "       resad train --data DIR --out MODEL [options]   (see resad train --help)\n"
        "       resad info  [--backbone FILE]\n"
        "       resad --help | --version\n"
        "\n"
        "Scores images for anomalies against a few normal reference images of the same\n"
        "product (ResAD: residual features of a frozen CNN against the references).\n"
        "No training is needed for a new product: 2-8 good images are enough.\n"
        "\n"
        "score options:\n"
        "  --ref IMG...        normal reference images (JPEG/PNG), at least 2\n"
        "  --image IMG...      images to score (JPEG/PNG)\n"
        "  --shots N           use only the first N references (default: all)\n"
        "  --heatmap DIR       write DIR/<name>.overlay.png, .raw.png, .mask.png; <name> is\n"
        "                      the image's path below the directory all --image paths\n"
        "                      share (test/bent/000.jpg and test/missing_part/000.jpg\n"
        "                      give bent/000.* and missing_part/000.*), never overwritten\n"
        "  --threshold T       decision threshold (default: calibrated from the references)\n"
        "  --fail-on-anomaly   exit 4 if any image is anomalous\n"
        "  --backbone FILE     backbone weights (.safetensors); default: the shipped\n"
        "                      MobileNetV2 ($RESAD_BACKBONE overrides)\n"
        "  --model FILE|none   learned ResAD model from `resad train` (constraintor +\n"
        "                      flows; scorer \"resad\").  Default: the shipped model\n"
        "                      ($RESAD_MODEL overrides) with the default backbone;\n"
        "                      none, --backbone, --levels, --size, --metric or\n"
        "                      --residual without --model: the residual-norm scorer\n"
        "  --levels CSV        feature levels, e.g. layer1,layer2,layer3 (ResNets)\n"
        "  --size S            working short side (default 224; e.g. 320 or 448 for small\n"
        "                      defects); the long side follows the frame's aspect ratio\n"
        "  --fit P             images of another aspect ratio than the references:\n"
        "                      none (refused, default), pad, stretch, crop\n"
        "  --roi X,Y,W,H       inspect only this rectangle of the frame (reference pixels);\n"
        "                      the rest is reported as not inspected, never as clean\n"
        "  --roi-mask FILE     a PNG/JPEG of the frame's aspect ratio: white (> 127) is\n"
        "                      inspected, black not (alpha ignored); sampled at each\n"
        "                      working-grid pixel's centre inside --roi\n"
        "  --tile T            nearest-neighbour search restricted to T×T-pixel tiles of\n"
        "                      the working grid and their neighbours (aligned parts; cost\n"
        "                      linear in the working pixels); default 112 (global while\n"
        "                      the grid is small, up to 16:9 at --size 320), 0 = whole pool\n"
        "  --alpha A           RGBA inputs: composite (on mid-grey, default) or ignore\n"
        "  --metric l2|cosine  nearest-neighbour metric (default l2, as in the paper)\n"
        "  --residual diff|sq  residual x-x* (default) or (x-x*)^2 (official code)\n"
        "  --topk F            image score = mean of the top fraction F of the map\n"
        "                      (default 0: the map's maximum)\n"
        "  --threads N         threads per image (default: all cores)\n"
        "  --pretty            indented JSON\n"
        "  -v, --verbose       calibration and timing details on stderr\n"
        "\n"
        "Output: one JSON object per image: image, score, threshold, anomalous, scorer,\n"
        "width, height, inspected_fraction (of the frame's pixels; < 1 with --roi,\n"
        "--roi-mask, pad, crop), geometry {frame, work, s, fit, roi, tile, alpha},\n"
        "timings_ms {decode, preprocess, backbone, nn, score, heatmap, total}, heatmaps.\n"
        "The whole frame is inspected: the working grid is S on the short side and\n"
        "S·aspect (on the backbone's stride) on the long side; nothing is cropped\n"
        "unless --fit crop.\n"
        "Scores are in units of the references' own spread (leave-one-out calibration).\n"
        "scorer is \"resad\" (constraintor + normalizing flow on the residuals, the\n"
        "shipped model) or \"residual-norm\" (the residuals' norm, no learned parts).\n"
        "\n"
        "Exit status: 0 all images scored; 1 some image could not be read (its JSON has\n"
        "\"error\"); 2 usage error; 3 backbone or references unusable; 4 --fail-on-anomaly\n"
        "and an image was anomalous.\n"
        "\n"
        "Example:\n"
        "  resad score --ref good1.jpg good2.jpg good3.jpg good4.jpg \\\n"
        "              --image part17.jpg part18.jpg --heatmap out/\n",
        f);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int collect(int argc, char **argv, int *i, const char **list, int *n, const char *opt)
{
    int start = *n;
    while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        if (*n >= MAX_ARGS_LIST) {
            fprintf(stderr, "resad: too many files after %s (max %d)\n", opt, MAX_ARGS_LIST);
            return -1;
        }
        list[(*n)++] = argv[++*i];
    }
    if (*n == start) {
        fprintf(stderr, "resad: %s needs at least one file\n", opt);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, cli *c)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                       \
    do {                                                                   \
        if (!v) {                                                          \
            fprintf(stderr, "resad: %s needs a value (see resad --help)\n", a); \
            return -1;                                                     \
        }                                                                  \
        i++;                                                               \
    } while (0)
        if (!strcmp(a, "--ref")) {
            if (collect(argc, argv, &i, c->refs, &c->nrefs, a)) return -1;
        } else if (!strcmp(a, "--image")) {
            if (collect(argc, argv, &i, c->images, &c->nimages, a)) return -1;
        } else if (!strcmp(a, "--backbone")) {
            NEED_VALUE();
            c->mo.backbone_path = v;
        } else if (!strcmp(a, "--model")) {
            NEED_VALUE();
            c->mo.model_path = v;
        } else if (!strcmp(a, "--levels")) {
            NEED_VALUE();
            c->mo.levels_csv = v;
            c->custom = 1;
        } else if (!strcmp(a, "--heatmap")) {
            NEED_VALUE();
            c->heatmap_dir = v;
        } else if (!strcmp(a, "--shots")) {
            NEED_VALUE();
            if (rd_arg_int(v, 2, 64, &c->shots)) {
                fprintf(stderr, "resad: --shots must be an integer from 2 to 64\n");
                return -1;
            }
        } else if (!strcmp(a, "--size")) {
            NEED_VALUE();
            if (rd_arg_int(v, 32, RD_GEO_MAX_SIDE, &c->geo.s)) {
                fprintf(stderr, "resad: --size must be an integer from 32 to %d\n", RD_GEO_MAX_SIDE);
                return -1;
            }
        } else if (!strcmp(a, "--fit")) {
            NEED_VALUE();
            if (rd_fit_parse(v, &c->geo.fit)) {
                fprintf(stderr, "resad: --fit is none, pad, stretch or crop\n");
                return -1;
            }
        } else if (!strcmp(a, "--roi")) {
            NEED_VALUE();
            rd_rect *r = &c->geo.roi;
            int n = 0;
            if (sscanf(v, "%d,%d,%d,%d%n", &r->x, &r->y, &r->w, &r->h, &n) != 4 || v[n] || r->w < 1 || r->h < 1) {
                fprintf(stderr, "resad: --roi is X,Y,W,H in frame pixels (W, H >= 1)\n");
                return -1;
            }
        } else if (!strcmp(a, "--roi-mask")) {
            NEED_VALUE();
            c->roi_mask = v;
        } else if (!strcmp(a, "--tile")) {
            NEED_VALUE();
            int t;
            if (rd_arg_int(v, 0, RD_GEO_MAX_SIDE, &t)) {
                fprintf(stderr, "resad: --tile must be 0 (whole pool) or a tile side in working pixels\n");
                return -1;
            }
            c->geo.search_tile = t == 0 ? -1 : t;
        } else if (!strcmp(a, "--alpha")) {
            NEED_VALUE();
            if (!strcmp(v, "composite")) c->geo.alpha = RD_ALPHA_COMPOSITE;
            else if (!strcmp(v, "ignore")) c->geo.alpha = RD_ALPHA_IGNORE;
            else {
                fprintf(stderr, "resad: --alpha is composite or ignore\n");
                return -1;
            }
        } else if (!strcmp(a, "--threads")) {
            NEED_VALUE();
            if (rd_arg_int(v, 1, 256, &c->mo.threads)) {
                fprintf(stderr, "resad: --threads must be an integer from 1 to 256\n");
                return -1;
            }
        } else if (!strcmp(a, "--threshold")) {
            NEED_VALUE();
            if (rd_arg_float(v, -FLT_MAX, FLT_MAX, &c->threshold)) {
                fprintf(stderr, "resad: --threshold must be a number\n");
                return -1;
            }
        } else if (!strcmp(a, "--topk")) {
            NEED_VALUE();
            if (rd_arg_float(v, 0, 1, &c->mo.topk_frac)) {
                fprintf(stderr, "resad: --topk must be a fraction in [0, 1]\n");
                return -1;
            }
        } else if (!strcmp(a, "--metric")) {
            NEED_VALUE();
            c->custom = 1;
            if (!strcmp(v, "l2")) c->mo.metric = RD_POOL_L2;
            else if (!strcmp(v, "cosine")) c->mo.metric = RD_POOL_COSINE;
            else {
                fprintf(stderr, "resad: --metric is l2 or cosine\n");
                return -1;
            }
        } else if (!strcmp(a, "--residual")) {
            NEED_VALUE();
            c->custom = 1;
            if (!strcmp(v, "diff")) c->mo.resid = RD_RESID_X_MINUS_NN;
            else if (!strcmp(v, "sq")) c->mo.resid = RD_RESID_SQUARED;
            else {
                fprintf(stderr, "resad: --residual is diff or sq\n");
                return -1;
            }
        } else if (!strcmp(a, "--fail-on-anomaly")) {
            c->fail_on_anomaly = 1;
        } else if (!strcmp(a, "--pretty")) {
            c->pretty = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            c->verbose = 1;
        } else {
            fprintf(stderr, "resad: unknown option '%s' (see resad --help)\n", a);
            return -1;
        }
#undef NEED_VALUE
    }
    return 0;
}

static rd_model *load_model(cli *c)
{
    static char path[4096], mpath[4096];
    rd_err err = {0};
    rd_model *m;
    if (rd_choose_model(c->mo.model_path, !c->mo.backbone_path && !c->custom, mpath, sizeof mpath,
                        &c->mo.model_path))
        fprintf(stderr, "resad: the shipped model %s is missing; scoring with residual-norm\n", mpath);
    if (!c->mo.backbone_path) {
        if (!rd_default_backbone(path, sizeof path)) {
            fprintf(stderr,
                    "resad: the default backbone %s is missing (models/mobilenet_v2.safetensors\n"
                    "       of the source tree, installed by make install); or pass --backbone FILE\n",
                    path);
            return NULL;
        }
        c->mo.backbone_path = path;
    }
    m = rd_model_load(&c->mo, &err);
    if (!m)
        fprintf(stderr, "resad: cannot load backbone %s%s%s: %s\n", c->mo.backbone_path,
                c->mo.model_path ? " with learned model " : "", c->mo.model_path ? c->mo.model_path : "", err.msg);
    return m;
}

/* --version: the version, then the default backbone and learned model, each
 * with its path and sha256 (what `resad score` would load). */
static int cmd_version(cli *c)
{
    printf("resad %s\n", PACKAGE_VERSION);
    rd_model *m = load_model(c);
    if (!m) return EXIT_SETUP;
    const rd_model_info *in = rd_model_get_info(m);
    printf("backbone %s sha256 %s\n", c->mo.backbone_path, in->backbone_sha256);
    if (c->mo.model_path)
        printf("model %s sha256 %s\n", c->mo.model_path, in->model_sha256);
    else
        printf("model none (scorer residual-norm)\n");
    rd_model_free(m);
    return EXIT_OK;
}

static int cmd_info(cli *c)
{
    rd_model *m = load_model(c);
    if (!m) return EXIT_SETUP;
    const rd_model_info *in = rd_model_get_info(m);
    json_t *o = json_object(), *lv = json_array();
    json_object_set_new(o, "backbone", json_string(c->mo.backbone_path));
    json_object_set_new(o, "arch", json_string(in->arch));
    json_object_set_new(o, "backbone_sha256", json_string(in->backbone_sha256));
    json_object_set_new(o, "model_id", json_string(in->model_id));
    json_object_set_new(o, "scorer", json_string(in->scorer));
    if (c->mo.model_path) {
        json_object_set_new(o, "model", json_string(c->mo.model_path));
        json_object_set_new(o, "model_sha256", json_string(in->model_sha256));
        json_t *prov = in->model_meta[0] ? json_loads(in->model_meta, 0, NULL) : NULL;
        if (prov) json_object_set_new(o, "model_provenance", prov);
    }
    json_object_set_new(o, "size", json_integer(in->size));
    json_object_set_new(o, "grid_stride", json_integer(in->stride));
    for (int l = 0; l < in->nlevels; l++)
        json_array_append_new(lv, json_pack("{s:s, s:i, s:i, s:i}", "name", in->level_names[l], "h",
                                            in->level_h[l], "w", in->level_w[l], "c", in->level_c[l]));
    json_object_set_new(o, "levels", lv);
    json_object_set_new(o, "blas", json_string(rd_blas_describe()));
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
    rd_model_free(m);
    return EXIT_OK;
}

/* Length of the directory prefix (up to and including a '/') that every path shares. */
static size_t common_dir(const char *const *paths, int n)
{
    size_t len = 0;
    const char *slash = strrchr(paths[0], '/');
    if (!slash) return 0;
    len = (size_t)(slash - paths[0]) + 1;
    for (int i = 1; i < n && len; i++) {
        size_t j = 0;
        while (j < len && paths[i][j] == paths[0][j]) j++;
        while (j > 0 && paths[0][j - 1] != '/') j--; /* back to a whole directory */
        len = j;
    }
    return len;
}

/* Heatmap names: each image's path below the shared directory, without its
 * extension; "." and ".." components and leading '/' cannot leave DIR; a name
 * that still collides (a.jpg, a.png) gets "-2", "-3", ... */
static char **heatmap_names(const char *const *paths, int n)
{
    char **names = calloc((size_t)n, sizeof *names);
    size_t pre = common_dir(paths, n);
    if (!names) return NULL;
    for (int i = 0; i < n; i++) {
        char buf[2048], out[2100];
        size_t o = 0;
        snprintf(buf, sizeof buf, "%s", paths[i] + pre);
        char *dot = strrchr(buf, '.'), *sl = strrchr(buf, '/');
        if (dot && dot != buf && (!sl || dot > sl + 1)) *dot = '\0';
        for (char *tok = strtok(buf, "/"); tok; tok = strtok(NULL, "/")) {
            const char *t = !strcmp(tok, "..") ? "_up" : !strcmp(tok, ".") ? "" : tok;
            if (!*t) continue;
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", o ? "/" : "", t);
            if (o >= sizeof out) o = sizeof out - 1;
        }
        if (!o) snprintf(out, sizeof out, "image");
        for (int dup = 2;; dup++) {
            int clash = 0;
            for (int j = 0; j < i && !clash; j++) clash = !strcmp(names[j], out);
            if (!clash) break;
            char *dash = strrchr(out, '-');
            if (dup > 2 && dash) *dash = '\0';
            size_t l = strlen(out);
            snprintf(out + l, sizeof out - l, "-%d", dup);
        }
        if (!(names[i] = strdup(out))) {
            for (int j = 0; j < i; j++) free(names[j]);
            free(names);
            return NULL;
        }
    }
    return names;
}

/* mkdir -p of the directories in path (not its last component). */
static int make_parents(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

static int write_heatmaps(const cli *c, const char *img_path, const char *name, const rd_image *img,
                          const rd_result *res, json_t *o, double *ms)
{
    static const char *const kinds[RD_HEAT_COUNT] = {"raw", "overlay", "mask"};
    char path[4096];
    json_t *h = json_object();
    double t0 = now_ms();
    int rc = 0;
    for (int k = 0; k < RD_HEAT_COUNT; k++) {
        rd_png_buf png = {0};
        rd_err err = {0};
        snprintf(path, sizeof path, "%s/%s.%s.png", c->heatmap_dir, name, kinds[k]);
        if (make_parents(path) != 0) {
            fprintf(stderr, "resad: %s: heatmap directory for %s: %s\n", img_path, path, strerror(errno));
            rc = -1;
        } else if (rd_result_render(res, (rd_heat_kind)k, img, &png, &err) != RD_OK ||
                   rd_png_buf_save(&png, path, &err) != RD_OK) {
            fprintf(stderr, "resad: %s: heatmap: %s\n", img_path, err.msg);
            rc = -1;
        } else {
            json_object_set_new(h, kinds[k], json_string(path));
        }
        rd_png_buf_release(&png);
    }
    json_object_set_new(o, "heatmaps", h);
    *ms = now_ms() - t0;
    return rc;
}

static json_t *geometry_json(const rd_geometry *g)
{
    char txt[RD_GEO_TEXT_MAX];
    rd_geometry_format(g, txt, sizeof txt);
    return json_pack("{s:[i,i], s:[i,i], s:i, s:s, s:[i,i,i,i], s:i, s:s, s:s}", "frame", g->frame_w, g->frame_h,
                     "work", g->work_w, g->work_h, "s", g->s, "fit", rd_fit_name(g->fit), "roi", g->roi.x, g->roi.y,
                     g->roi.w, g->roi.h, "tile", g->search_tile, "alpha", g->alpha ? "ignore" : "composite", "text",
                     txt);
}

static int cmd_score(cli *c)
{
    rd_model *m = NULL;
    rd_worker *w = NULL;
    rd_refset *rs = NULL;
    rd_feats *feats[64] = {0};
    rd_image_limits lim = RD_IMAGE_LIMITS_DEFAULT;
    rd_decode_opts dec = {0};
    rd_geometry geo;
    rd_err err = {0};
    char **names = NULL;
    uint8_t *roi = NULL; /* --roi-mask on the working grid */
    int k, rc = EXIT_OK, any_anomalous = 0;
    size_t jflags = JSON_COMPACT | JSON_REAL_PRECISION(6);

    if (c->nrefs < 2 || c->nimages < 1) {
        fprintf(stderr, "resad: score needs --ref with at least 2 images and --image with at least 1 "
                        "(see resad --help)\n");
        return EXIT_USAGE;
    }
    k = c->shots ? c->shots : c->nrefs;
    if (k > c->nrefs) {
        fprintf(stderr, "resad: --shots %d but only %d references given\n", k, c->nrefs);
        return EXIT_USAGE;
    }
    if (k > 64) {
        fprintf(stderr, "resad: at most 64 references (got %d); use --shots\n", k);
        return EXIT_USAGE;
    }
    if (c->heatmap_dir && mkdir(c->heatmap_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "resad: cannot create heatmap directory %s: %s\n", c->heatmap_dir, strerror(errno));
        return EXIT_SETUP;
    }
    if (c->pretty) jflags = JSON_INDENT(2) | JSON_REAL_PRECISION(6);
    c->mo.max_shots = k;
    m = load_model(c);
    if (!m) return EXIT_SETUP;
    w = rd_worker_new(m, &err);
    if (!w) {
        fprintf(stderr, "resad: %s\n", err.msg);
        rc = EXIT_SETUP;
        goto out;
    }
    if (c->verbose) fprintf(stderr, "resad: %s\n", rd_blas_describe());
    if (c->heatmap_dir && !(names = heatmap_names(c->images, c->nimages))) {
        fprintf(stderr, "resad: out of memory\n");
        rc = EXIT_SETUP;
        goto out;
    }
    dec.alpha = (rd_image_alpha)c->geo.alpha;
    for (int i = 0; i < k; i++) {
        rd_image img = {0};
        if (rd_image_load_opts(c->refs[i], &lim, &dec, &img, &err) != RD_OK) goto bad_ref;
        if (i == 0) {
            /* the first reference fixes the class geometry */
            int fw, fh;
            rd_image_full_size(&img, &fw, &fh);
            if (rd_model_geometry(m, fw, fh, &c->geo, &geo, &err) != RD_OK) goto bad_ref;
            if (c->verbose) {
                char txt[RD_GEO_TEXT_MAX];
                rd_geometry_format(&geo, txt, sizeof txt);
                fprintf(stderr, "resad: geometry %s\n", txt);
            }
            if (c->roi_mask) { /* checked against the frame the first reference fixed */
                rd_decode_opts mdec = {.alpha = RD_ALPHA_IGNORE};
                rd_image mimg = {0};
                double frac = 0;
                rd_status st = rd_image_load_opts(c->roi_mask, &lim, &mdec, &mimg, &err);
                if (st == RD_OK) st = rd_geometry_roi_grid(&geo, &mimg, &roi, &frac, &err);
                rd_image_release(&mimg);
                if (st != RD_OK) {
                    fprintf(stderr, "resad: --roi-mask %s: %s\n", c->roi_mask, err.msg);
                    rd_image_release(&img);
                    rc = EXIT_SETUP;
                    goto out;
                }
                if (c->verbose) fprintf(stderr, "resad: roi mask inspects %.3f of the ROI\n", frac);
            }
        }
        if (rd_extract_geo(m, w, &geo, &img, &feats[i], NULL, &err) != RD_OK) goto bad_ref;
        rd_image_release(&img);
        continue;
    bad_ref:
        fprintf(stderr, "resad: reference %s: %s\n", c->refs[i], err.msg);
        rd_image_release(&img);
        rc = EXIT_SETUP;
        goto out;
    }
    rs = rd_refset_build_roi(m, w, feats, k, roi, &err);
    if (!rs) {
        fprintf(stderr, "resad: references: %s\n", err.msg);
        rc = EXIT_SETUP;
        goto out;
    }
    if (c->verbose) {
        fprintf(stderr, "resad: %d references, calibrated threshold %.4f, leave-one-out scores:", k,
                rd_refset_threshold(rs));
        for (int i = 0; i < k; i++) fprintf(stderr, " %.4f", rd_refset_loo_scores(rs)[i]);
        fputc('\n', stderr);
    }
    for (int i = 0; i < c->nimages; i++) {
        rd_image img = {0};
        rd_result res = {0};
        json_t *o = json_object();
        double t0 = now_ms(), tdec, theat = 0;
        json_object_set_new(o, "image", json_string(c->images[i]));
        /* without heatmaps a large JPEG may be decoded at reduced (DCT) scale:
         * still at least as many pixels as the working grid takes from it */
        dec.min_short = 0;
        if (!c->heatmap_dir) {
            double rx = (double)geo.frame_w / geo.roi.w, ry = (double)geo.frame_h / geo.roi.h;
            dec.min_short = (int)ceil((geo.work_w < geo.work_h ? geo.work_w : geo.work_h) * (rx > ry ? rx : ry));
        }
        if (rd_image_load_opts(c->images[i], &lim, &dec, &img, &err) != RD_OK) {
            json_object_set_new(o, "error", json_string(err.msg));
            rc = EXIT_IMAGE;
            goto emit;
        }
        tdec = now_ms() - t0;
        if (rd_inspect(m, w, rs, &img, c->threshold, &res, &err) != RD_OK) {
            json_object_set_new(o, "error", json_string(err.msg));
            rc = EXIT_IMAGE;
            goto emit;
        }
        res.t.decode = tdec;
        if (res.anomalous) any_anomalous = 1;
        json_object_set_new(o, "score", json_real(res.score));
        json_object_set_new(o, "threshold", json_real(res.threshold));
        json_object_set_new(o, "anomalous", json_boolean(res.anomalous));
        json_object_set_new(o, "scorer", json_string(res.scorer));
        json_object_set_new(o, "shots", json_integer(k));
        {
            int fw, fh;
            rd_image_full_size(&img, &fw, &fh);
            json_object_set_new(o, "width", json_integer(fw));
            json_object_set_new(o, "height", json_integer(fh));
        }
        json_object_set_new(o, "inspected_fraction", json_real(res.inspected_frac));
        if (res.view.left_out_frac > 0) json_object_set_new(o, "left_out_fraction", json_real(res.view.left_out_frac));
        if (res.view.fitted) json_object_set_new(o, "fitted", json_string(rd_fit_name(geo.fit)));
        json_object_set_new(o, "geometry", geometry_json(&res.geo));
        if (c->heatmap_dir && write_heatmaps(c, c->images[i], names[i], &img, &res, o, &theat) != 0) rc = EXIT_IMAGE;
        res.t.heatmap = theat;
        res.t.total = now_ms() - t0;
        json_object_set_new(o, "timings_ms",
                            json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "decode", res.t.decode, "preprocess",
                                      res.t.preprocess, "backbone", res.t.backbone, "nn", res.t.nn, "score",
                                      res.t.score, "heatmap", res.t.heatmap, "total", res.t.total));
    emit:
        json_dumpf(o, stdout, jflags);
        fputc('\n', stdout);
        fflush(stdout);
        json_decref(o);
        rd_result_release(&res);
        rd_image_release(&img);
    }
    if (rc == EXIT_OK && c->fail_on_anomaly && any_anomalous) rc = EXIT_ANOMALY;
out:
    for (int i = 0; names && i < c->nimages; i++) free(names[i]);
    free(names);
    rd_refset_unref(rs);
    free(roi);
    for (int i = 0; i < 64; i++) rd_feats_free(feats[i]);
    rd_worker_free(w);
    rd_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    static cli c;
    rd_blas_autofix(argc, argv);
    rd_model_opts_default(&c.mo);
    c.mo.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    c.threshold = NAN;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) return cmd_version(&c);
    if (!strcmp(argv[1], "eval")) return rd_cli_eval(argc, argv);
    if (!strcmp(argv[1], "train")) return rd_cli_train(argc, argv);
    if (strcmp(argv[1], "score") && strcmp(argv[1], "info")) {
        fprintf(stderr, "resad: unknown command '%s' (commands: score, eval, train, info; see resad --help)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_OK;
        }
    if (parse_args(argc, argv, &c)) return EXIT_USAGE;
    if (!strcmp(argv[1], "info")) return cmd_info(&c);
    return cmd_score(&c);
}
