/* train_tool.c — test driver for `resad train` until the lead wires it into
 * cli/resad.c: `train_tool train ARGS...` runs rd_cli_train; `train_tool check
 * MODEL` imports every level's constraintor and flow back from a model file
 * and prints its metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "constraintor.h"
#include "flow.h"
#include "safetensors.h"
#include "cli/train_cmd.h"

static int check(const char *path)
{
    rd_err err = {0};
    rd_st_file *f = rd_st_open(path, &err);
    if (!f) {
        fprintf(stderr, "check: %s\n", err.msg);
        return 1;
    }
    const char *nl = rd_st_meta(f, "resadd.nlevels"), *cs = rd_st_meta(f, "resadd.constraintor");
    int n = nl ? atoi(nl) : 0, rc = 0;
    if (n < 1 || !cs) {
        fprintf(stderr, "check: missing resadd.nlevels/constraintor\n");
        rc = 1;
    }
    for (int l = 0; l < n && !rc; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "level%d.flow", l);
        rd_flow *fl = rd_flow_import(f, prefix, &err);
        if (!fl) {
            fprintf(stderr, "check: %s\n", err.msg);
            rc = 1;
            break;
        }
        printf("level%d flow c=%d k=%d hid=%d nparams=%zu\n", l, fl->cfg.c, fl->cfg.k, fl->cfg.hid, fl->nparams);
        rd_flow_free(fl);
        snprintf(prefix, sizeof prefix, "level%d.cstr", l);
        if (!strcmp(cs, "on")) {
            rd_cstr *c = rd_cstr_import(f, prefix, &err);
            if (!c) {
                fprintf(stderr, "check: %s\n", err.msg);
                rc = 1;
                break;
            }
            printf("level%d cstr c=%d k=%d nparams=%zu\n", l, c->c, c->k, c->nparams);
            rd_cstr_free(c);
        }
    }
    rd_st_free(f);
    if (!rc) printf("check ok\n");
    return rc;
}

int main(int argc, char **argv)
{
    rd_blas_autofix(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "check")) return check(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "train")) return rd_cli_train(argc, argv);
    fprintf(stderr, "usage: train_tool train ARGS | check MODEL\n");
    return 2;
}
