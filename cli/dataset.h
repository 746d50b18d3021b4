/* dataset.h — reading anomaly-detection datasets as they are downloaded.
 *
 * MVTec AD layout (also what tools/dataset/build.py writes):
 *   DIR/CLASS/train/good/NAME.png (or .jpg)
 *   DIR/CLASS/test/good/NAME.png, DIR/CLASS/test/DEFECT/NAME.png
 *   DIR/CLASS/ground_truth/DEFECT/NAME_mask.png
 * VisA layout: DIR/split_csv/1cls.csv with columns object,split,label,image,mask
 *   (paths relative to DIR; label "normal"/"anomaly").
 * A class's lists are sorted by path, so draws with a seed are reproducible. */
#ifndef RD_DATASET_H
#define RD_DATASET_H

#include "status.h"

typedef struct rd_ds_item {
    char *image;
    char *mask; /* NULL for normal images (or a defect without a mask file) */
    int label;  /* 0 normal, 1 anomalous */
    char *kind; /* "good" or the defect folder name */
} rd_ds_item;

typedef struct rd_ds_class {
    char *name;
    char **train; /* normal training images */
    int ntrain;
    rd_ds_item *test;
    int ntest;
} rd_ds_class;

typedef struct rd_dataset {
    char *root;
    int visa;
    rd_ds_class *classes;
    int nclasses;
} rd_dataset;

/* classes_csv: NULL = every class found; a name may also be the word
 * "known" or "unseen" to take that list from DIR/split.json. */
rd_dataset *rd_dataset_open(const char *root, const char *classes_csv, rd_err *err);
void rd_dataset_free(rd_dataset *d);

#endif
