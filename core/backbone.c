/* backbone.c — loading a backbone: which family a safetensors file holds, the
 * input normalization that goes with it, and dispatch to the family's builder
 * (backbone_resnet.c, backbone_keras.c).
 *
 * The architecture comes from metadata "resadd.arch" when the exporter wrote it
 * (tools/torch2safetensors.py, tools/nsfwjs-convert.mjs); a plain state_dict
 * export without metadata is recognized from its tensor names, which is enough
 * for torchvision and timm ResNets. */
#include "backbone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

void rd_backbone_free(rd_backbone *bb)
{
    if (!bb) return;
    rd_graph_free(bb->graph);
    free(bb);
}

static int is_resnet_arch(const char *a)
{
    static const char *const names[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                        "wide_resnet50_2", "wide_resnet101_2", "resnet"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(a, names[i]) == 0) return 1;
    return 0;
}

rd_backbone *rd_backbone_load(const char *path, const char *levels_csv, rd_err *err)
{
    rd_backbone *bb = calloc(1, sizeof *bb);
    rd_st_file *f = NULL;
    const char *arch;
    rd_status st;

    if (!bb) {
        rd_err_set(err, RD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    f = rd_st_open(path, err);
    if (!f) goto fail;
    snprintf(bb->sha256, sizeof bb->sha256, "%s", rd_st_sha256(f));
    bb->default_size = 224;
    arch = rd_st_meta(f, "resadd.arch");
    if (arch && (strcmp(arch, "keras") == 0 || strcmp(arch, "mobilenet_v2") == 0)) {
        for (int c = 0; c < 3; c++) bb->mean[c] = 0.5f, bb->std[c] = 0.5f;
        snprintf(bb->arch, sizeof bb->arch, "%s", arch);
        st = rd_backbone_build_keras(bb, f, levels_csv, err);
    } else if (!arch || is_resnet_arch(arch)) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        memcpy(bb->mean, mean, sizeof mean);
        memcpy(bb->std, std, sizeof std);
        snprintf(bb->arch, sizeof bb->arch, "%s", arch ? arch : "");
        st = rd_backbone_build_resnet(bb, f, levels_csv, err);
    } else {
        st = rd_err_set(err, RD_ERR_UNSUPPORTED,
                        "unknown architecture \"%.40s\" in metadata resadd.arch (resnet18, resnet34, resnet50, "
                        "wide_resnet50_2 or keras)",
                        arch);
    }
    if (st != RD_OK) {
        rd_err_prefix(err, "%s", path);
        goto fail;
    }
    rd_st_free(f);
    return bb;
fail:
    rd_st_free(f);
    rd_backbone_free(bb);
    return NULL;
}
