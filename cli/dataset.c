/* dataset.c — MVTec AD / VisA folder readers for `resad eval` (see dataset.h). */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *n)
{
    const char *dot = strrchr(n, '.');
    return n[0] != '.' && dot &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Sorted list of image files (full paths) or subfolders (names) of dir. */
static char **list_dir(const char *dir, int want_dirs, int *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    int cap = 0;
    *n = 0;
    if (!d) return NULL;
    while ((e = readdir(d))) {
        char *full;
        if (e->d_name[0] == '.') continue;
        full = join(dir, e->d_name);
        if (!full) break;
        if (want_dirs ? !is_dir(full) : (!is_image_name(e->d_name) || !is_file(full))) {
            free(full);
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(full);
                break;
            }
            v = nv;
        }
        if (want_dirs) {
            free(full);
            full = strdup(e->d_name);
        }
        v[(*n)++] = full;
    }
    closedir(d);
    if (*n) qsort(v, (size_t)*n, sizeof *v, cmpstr);
    return v;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void class_free(rd_ds_class *c)
{
    free(c->name);
    free_list(c->train, c->ntrain);
    for (int i = 0; i < c->ntest; i++) {
        free(c->test[i].image);
        free(c->test[i].mask);
        free(c->test[i].kind);
    }
    free(c->test);
}

void rd_dataset_free(rd_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->nclasses; i++) class_free(&d->classes[i]);
    free(d->classes);
    free(d->root);
    free(d);
}

static int push_test(rd_ds_class *c, int *cap, const char *image, const char *mask, int label, const char *kind)
{
    if (c->ntest == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        rd_ds_item *nv = realloc(c->test, (size_t)*cap * sizeof *nv);
        if (!nv) return -1;
        c->test = nv;
    }
    rd_ds_item *it = &c->test[c->ntest++];
    it->image = strdup(image);
    it->mask = mask ? strdup(mask) : NULL;
    it->label = label;
    it->kind = strdup(kind);
    return it->image && it->kind && (!mask || it->mask) ? 0 : -1;
}

static rd_status load_mvtec_class(const char *root, const char *name, rd_ds_class *c, rd_err *err)
{
    char *cdir = join(root, name), *tr = NULL, *td = NULL;
    char **kinds = NULL;
    int nk = 0, cap = 0;
    rd_status st = RD_OK;
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    if (!cdir || !c->name) goto nomem;
    tr = join(cdir, "train/good");
    td = join(cdir, "test");
    if (!tr || !td) goto nomem;
    c->train = list_dir(tr, 0, &c->ntrain);
    kinds = list_dir(td, 1, &nk);
    for (int k = 0; k < nk; k++) {
        char *kd = join(td, kinds[k]);
        int ni = 0;
        char **imgs = kd ? list_dir(kd, 0, &ni) : NULL;
        int good = !strcmp(kinds[k], "good");
        for (int i = 0; i < ni && st == RD_OK; i++) {
            char *mask = NULL;
            if (!good) {
                /* ground_truth/KIND/<stem>_mask.png */
                const char *base = strrchr(imgs[i], '/') + 1;
                char stem[512], rel[1200];
                snprintf(stem, sizeof stem, "%s", base);
                char *dot = strrchr(stem, '.');
                if (dot) *dot = '\0';
                snprintf(rel, sizeof rel, "ground_truth/%s/%s_mask.png", kinds[k], stem);
                mask = join(cdir, rel);
                if (mask && !is_file(mask)) {
                    free(mask);
                    mask = NULL;
                }
            }
            if (push_test(c, &cap, imgs[i], mask, !good, kinds[k]) != 0) st = RD_ERR_NOMEM;
            free(mask);
        }
        free_list(imgs, ni);
        free(kd);
    }
    if (st != RD_OK) goto nomem;
    if (c->ntrain == 0 || c->ntest == 0)
        st = rd_err_set(err, RD_ERR_FORMAT, "%s: no train/good or test images (not MVTec AD layout?)", cdir);
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory reading %s", name);
out:
    free_list(kinds, nk);
    free(cdir);
    free(tr);
    free(td);
    return st;
}

/* Minimal CSV line split (VisA's files have no quoted fields). */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        f[n++] = p;
        p = strchr(p, ',');
        if (!p) break;
        *p++ = '\0';
    }
    return n;
}

static rd_ds_class *find_or_add(rd_dataset *d, const char *name, int *cap)
{
    for (int i = 0; i < d->nclasses; i++)
        if (!strcmp(d->classes[i].name, name)) return &d->classes[i];
    if (d->nclasses == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        rd_ds_class *nv = realloc(d->classes, (size_t)*cap * sizeof *nv);
        if (!nv) return NULL;
        d->classes = nv;
    }
    rd_ds_class *c = &d->classes[d->nclasses++];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    return c->name ? c : NULL;
}

static rd_status load_visa(rd_dataset *d, rd_err *err)
{
    char *csv = join(d->root, "split_csv/1cls.csv");
    FILE *f = csv ? fopen(csv, "r") : NULL;
    char line[4096];
    int cap = 0, lineno = 0;
    int *tcap = NULL, *trcap = NULL, ccap = 0;
    rd_status st = RD_OK;
    if (!f) {
        st = rd_err_set(err, RD_ERR_IO, "%s: %s", csv ? csv : d->root, strerror(errno));
        goto out;
    }
    (void)cap;
    while (fgets(line, sizeof line, f)) {
        char *fl[8];
        if (lineno++ == 0) continue; /* header: object,split,label,image,mask */
        int n = split_csv(line, fl, 8);
        if (n < 4) continue;
        int oldn = d->nclasses;
        rd_ds_class *c = find_or_add(d, fl[0], &ccap);
        if (!c) goto nomem;
        if (d->nclasses != oldn) {
            int *a = realloc(tcap, (size_t)ccap * sizeof(int)), *b = a ? realloc(trcap, (size_t)ccap * sizeof(int)) : NULL;
            if (!a || !b) {
                if (a) tcap = a;
                goto nomem;
            }
            tcap = a;
            trcap = b;
            tcap[d->nclasses - 1] = trcap[d->nclasses - 1] = 0;
        }
        int ci = (int)(c - d->classes);
        char *img = join(d->root, fl[3]);
        char *mask = n >= 5 && fl[4][0] ? join(d->root, fl[4]) : NULL;
        int anom = !strcmp(fl[2], "anomaly");
        if (!img) goto nomem;
        if (!strcmp(fl[1], "train")) {
            if (!anom) {
                if (c->ntrain == trcap[ci]) {
                    trcap[ci] = trcap[ci] ? 2 * trcap[ci] : 64;
                    char **nv = realloc(c->train, (size_t)trcap[ci] * sizeof *nv);
                    if (!nv) {
                        free(img);
                        free(mask);
                        goto nomem;
                    }
                    c->train = nv;
                }
                c->train[c->ntrain++] = img;
                img = NULL;
            }
        } else if (push_test(c, &tcap[ci], img, anom ? mask : NULL, anom, anom ? "anomaly" : "good") != 0) {
            free(img);
            free(mask);
            goto nomem;
        }
        free(img);
        free(mask);
    }
    for (int i = 0; i < d->nclasses; i++)
        if (d->classes[i].ntrain > 1) qsort(d->classes[i].train, (size_t)d->classes[i].ntrain, sizeof(char *), cmpstr);
    goto out;
nomem:
    st = rd_err_set(err, RD_ERR_NOMEM, "out of memory reading the VisA split");
out:
    if (f) fclose(f);
    free(csv);
    free(tcap);
    free(trcap);
    return st;
}

/* Names from DIR/split.json's "known"/"unseen" list. */
static int split_names(const char *root, const char *which, char ***out)
{
    char *p = join(root, "split.json");
    json_error_t je;
    json_t *j = p ? json_load_file(p, 0, &je) : NULL, *arr;
    int n = 0;
    free(p);
    *out = NULL;
    if (!j) return -1;
    arr = json_object_get(j, which);
    if (json_is_array(arr)) {
        *out = calloc(json_array_size(arr) + 1, sizeof(char *));
        for (size_t i = 0; *out && i < json_array_size(arr); i++)
            if (json_is_string(json_array_get(arr, i))) (*out)[n++] = strdup(json_string_value(json_array_get(arr, i)));
    }
    json_decref(j);
    return *out ? n : -1;
}

static int wanted(const char *name, char **names, int n)
{
    if (!names) return 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

rd_dataset *rd_dataset_open(const char *root, const char *classes_csv, rd_err *err)
{
    rd_dataset *d = calloc(1, sizeof *d);
    char **names = NULL;
    int nnames = 0;
    char *visa_csv = NULL;
    if (!d || !(d->root = strdup(root))) goto nomem;
    if (!is_dir(root)) {
        rd_err_set(err, RD_ERR_IO, "%s: not a directory", root);
        goto fail;
    }
    if (classes_csv) {
        char *dup = strdup(classes_csv), *save = NULL;
        if (!dup) goto nomem;
        for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!strcmp(t, "known") || !strcmp(t, "unseen")) {
                char **sn;
                int k = split_names(root, t, &sn);
                if (k < 0) {
                    rd_err_set(err, RD_ERR_FORMAT, "%s/split.json has no \"%s\" list", root, t);
                    free(dup);
                    goto fail;
                }
                char **nv = realloc(names, (size_t)(nnames + k + 1) * sizeof *nv);
                if (!nv) {
                    free_list(sn, k);
                    free(dup);
                    goto nomem;
                }
                names = nv;
                for (int i = 0; i < k; i++) names[nnames++] = sn[i];
                free(sn);
            } else {
                char **nv = realloc(names, (size_t)(nnames + 1) * sizeof *nv);
                if (!nv) {
                    free(dup);
                    goto nomem;
                }
                names = nv;
                names[nnames++] = strdup(t);
            }
        }
        free(dup);
    }
    visa_csv = join(root, "split_csv/1cls.csv");
    if (visa_csv && is_file(visa_csv)) {
        d->visa = 1;
        if (load_visa(d, err) != RD_OK) goto fail;
        /* keep the wanted classes only */
        int k = 0;
        for (int i = 0; i < d->nclasses; i++) {
            if (wanted(d->classes[i].name, names, nnames)) d->classes[k++] = d->classes[i];
            else class_free(&d->classes[i]);
        }
        d->nclasses = k;
    } else {
        int nk = 0, cap = 0;
        char **dirs = list_dir(root, 1, &nk);
        for (int i = 0; i < nk; i++) {
            char *t = join(root, dirs[i]), *tg = t ? join(t, "train/good") : NULL;
            int ok = tg && is_dir(tg) && wanted(dirs[i], names, nnames);
            free(t);
            free(tg);
            if (!ok) continue;
            if (d->nclasses == cap) {
                cap = cap ? 2 * cap : 16;
                rd_ds_class *nv = realloc(d->classes, (size_t)cap * sizeof *nv);
                if (!nv) {
                    free_list(dirs, nk);
                    goto nomem;
                }
                d->classes = nv;
            }
            if (load_mvtec_class(root, dirs[i], &d->classes[d->nclasses], err) != RD_OK) {
                class_free(&d->classes[d->nclasses]);
                free_list(dirs, nk);
                goto fail;
            }
            d->nclasses++;
        }
        free_list(dirs, nk);
    }
    for (int i = 0; i < nnames; i++) {
        int found = 0;
        for (int j = 0; j < d->nclasses; j++) found |= !strcmp(d->classes[j].name, names[i]);
        if (!found) {
            rd_err_set(err, RD_ERR_ARG, "class '%s' not found under %s", names[i], root);
            goto fail;
        }
    }
    if (d->nclasses == 0) {
        rd_err_set(err, RD_ERR_FORMAT, "%s: no classes found (expected MVTec AD folders CLASS/train/good or "
                                       "VisA's split_csv/1cls.csv)", root);
        goto fail;
    }
    free_list(names, nnames);
    free(visa_csv);
    return d;
nomem:
    rd_err_set(err, RD_ERR_NOMEM, "out of memory reading the dataset");
fail:
    free_list(names, nnames);
    free(visa_csv);
    rd_dataset_free(d);
    return NULL;
}
